package upload

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/pcapout"
)

// TestPlantedSpoolFiles starts on a spool holding what sinkd never put
// there: a file with a name that is no spool ID and no description, a
// description that is not JSON, a symbolic link, a directory, and
// descriptions that name other files for --upload-delete, with their
// devices and inodes: one beside other bytes, one beside a copy of the
// very bytes the other file holds. Start-up does not fail; regular files
// are uploaded, links are not followed, and neither other file is removed.
func TestPlantedSpoolFiles(t *testing.T) {
	srv := sharedServer(t)
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	spool := filepath.Join(dir, ".spool")
	for _, d := range []string{"files", "meta", filepath.Join("files", "a-directory")} {
		if err := os.MkdirAll(filepath.Join(spool, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(spool, "files", "x"), "a short name, not a capture")
	valid := newID(time.Date(2026, 11, 23, 10, 3, 0, 0, time.UTC), "cap.pcap7")
	write(filepath.Join(spool, "files", valid), "not a capture either")
	write(filepath.Join(spool, "meta", valid+".json"), "{not json")
	secret := filepath.Join(dir, "secret")
	write(secret, "do not upload")
	if err := os.Symlink(secret, filepath.Join(spool, "files", "0000000000000001-link")); err != nil {
		t.Fatal(err)
	}
	// A description naming a victim file of the same size as the planted
	// file, with the victim's device and inode.
	victim := filepath.Join(dir, "victim")
	write(victim, "victim's bytes!")
	planted := newID(time.Date(2026, 11, 23, 10, 4, 0, 0, time.UTC), "cap.pcap8")
	write(filepath.Join(spool, "files", planted), "planted bytes!!")
	describeVictim := func(id, victim string) {
		t.Helper()
		fi, err := os.Stat(victim)
		if err != nil {
			t.Fatal(err)
		}
		dev, ino := devIno(fi)
		sc, _ := json.Marshal(sidecar{Meta: archive.Meta{Sink: "sink-a", File: victim, Format: "pcap",
			First: time.Date(2026, 11, 23, 10, 4, 0, 0, time.UTC), Last: time.Date(2026, 11, 23, 10, 4, 0, 0, time.UTC)}, Dev: dev, Ino: ino})
		write(filepath.Join(spool, "meta", id+".json"), string(sc))
	}
	describeVictim(planted, victim)
	twin := filepath.Join(dir, "twin")
	write(twin, "the twin's bytes")
	copied := newID(time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC), "cap.pcap9")
	write(filepath.Join(spool, "files", copied), "the twin's bytes")
	describeVictim(copied, twin)

	var log logBuffer
	cfg := config(c, loc, spool, &log)
	cfg.Delete = true
	u := openUploader(t, cfg)
	if st := u.Stats(); st.PendingFiles != 4 || st.OldestPending.IsZero() {
		t.Fatalf("queued %+v, want the four regular files", st)
	}
	waitUploaded(t, u, 4)
	st := u.Close(time.Second)
	stored := objects(t, c, loc)
	var contents []string
	for _, b := range stored {
		contents = append(contents, string(b))
	}
	want := map[string]bool{"a short name, not a capture": true, "not a capture either": true, "planted bytes!!": true, "the twin's bytes": true}
	if len(stored) != 4 {
		t.Errorf("stored %q, want the four regular files", contents)
	}
	for _, b := range contents {
		if !want[b] {
			t.Errorf("stored %q", b)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "victim's bytes!" || st.Deleted != 0 {
		t.Errorf("the victim was touched (%q, %v), %d deleted", b, err, st.Deleted)
	}
	if b, err := os.ReadFile(twin); err != nil || string(b) != "the twin's bytes" {
		t.Errorf("the file whose bytes were planted was removed: %q %v", b, err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "do not upload" {
		t.Errorf("the link's target was touched: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(spool, "files", "0000000000000001-link")); err != nil {
		t.Errorf("the link was removed: %v", err)
	}
}

// TestSpoolOnAnotherFileSystem: the spool on a tmpfs, the captures on the
// disk, a -W 2 ring reusing names while the store is down. Files are
// copied into the spool, reach the store as they were when they closed,
// and --upload-delete removes the files still named as they were
// uploaded, nothing else.
func TestSpoolOnAnotherFileSystem(t *testing.T) {
	dir := t.TempDir()
	spoolFS := otherFS(t, dir)
	srv := s3test.Start(t, s3test.Options{})
	c, loc := newBucket(t, srv)
	var log logBuffer
	cfg := config(c, loc, filepath.Join(spoolFS, "spool"), &log)
	cfg.Delete = true
	u := openUploader(t, cfg)
	srv.Stop()
	files := capture(t, dir, pcapout.FormatPcapng, 5, 200, 300, u.Handle, func(o *pcapout.Options) {
		o.FileSize, o.FileCount = 1<<30, 2
	})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	st := waitUploaded(t, u, 5)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), files)
	// The ring's two names hold the last two files, each uploaded as it is:
	// both removed; the three before were replaced, not removed again.
	if left, _ := filepath.Glob(filepath.Join(dir, "cap.pcapng*")); len(left) != 0 || st.Deleted != 2 {
		t.Errorf("left %v, %d deleted; want none left, 2 deleted", left, st.Deleted)
	}
	if st.DroppedFiles != 0 || strings.Contains(log.String(), "cannot be copied") {
		t.Errorf("files given up: %+v\n%s", st, log.String())
	}
}

// TestHugeMetadata uploads a file with a long path and more sources than
// S3's 2 KiB of metadata can name: the object's metadata stays within the
// bound, says the list is truncated, and keeps the file's name.
func TestHugeMetadata(t *testing.T) {
	srv := sharedServer(t)
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	deep := dir
	for i := 0; len(deep) < 1500; i++ {
		deep = filepath.Join(deep, fmt.Sprintf("a-rather-long-directory-name-%02d", i))
	}
	if err := os.MkdirAll(deep, 0o750); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(deep, "cap.pcapng")
	if err := os.WriteFile(name, []byte("content"), 0o640); err != nil {
		t.Fatal(err)
	}
	var sources []string
	for i := range 200 {
		sources = append(sources, fmt.Sprintf("ports-%03d-with-a-long-ünïcode-name", i))
	}
	var log logBuffer
	u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
	now := time.Now()
	u.Add(archive.Meta{File: name, Format: "pcapng", First: now, Last: now, Sources: sources})
	waitUploaded(t, u, 1)
	u.Close(time.Second)
	for key := range objects(t, c, loc) {
		h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &loc.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for k, v := range h.Metadata {
			size += len("x-amz-meta-") + len(k) + len(v)
		}
		m, err := archive.ParseMeta(h.Metadata)
		if err != nil || size > archive.MetaLimit || !m.SourcesTruncated || len(m.Sources) < 10 ||
			m.Sources[9] != sources[9] || !strings.HasSuffix(m.File, "/cap.pcapng") {
			t.Errorf("metadata of %d bytes: %+v %v", size, m, err)
		}
	}
}

// TestCredentialsRotated: the shared credentials file holds wrong
// credentials when sinkd starts (a wrong secret, a wrong key, a session
// token the store does not know, which MinIO refuses as InvalidTokenId)
// and the right ones later, as a rotation agent would write them. The
// refusals count as credential failures, and without a restart the
// uploader reads the file again and the files that waited go up.
func TestCredentialsRotated(t *testing.T) {
	for _, tt := range []struct{ name, key, secret, token, code string }{
		{"secret", s3test.AccessKey, "an-old-secret", "", "SignatureDoesNotMatch"},
		{"key", "an-old-key", s3test.SecretKey, "", "InvalidAccessKeyId"},
		{"session-token", s3test.AccessKey, s3test.SecretKey, "an-expired-session", "InvalidTokenId"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := sharedServer(t)
			good, loc := newBucket(t, srv)
			dir := t.TempDir()
			creds := filepath.Join(dir, "credentials")
			writeCreds := func(key, secret, token string) {
				t.Helper()
				s := "[default]\naws_access_key_id = " + key + "\naws_secret_access_key = " + secret + "\n"
				if token != "" {
					s += "aws_session_token = " + token + "\n"
				}
				if err := os.WriteFile(creds, []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			writeCreds(tt.key, tt.secret, tt.token)
			for k, v := range map[string]string{"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": "/dev/null", "AWS_PROFILE": "",
				"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1"} {
				t.Setenv(k, v)
			}
			newClient := func(ctx context.Context) (*s3.Client, error) {
				return archive.NewClient(ctx, archive.ClientOptions{Endpoint: srv.Endpoint(), PathStyle: true, MaxAttempts: 1})
			}
			c, err := newClient(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var log logBuffer
			cfg := config(c, loc, filepath.Join(dir, ".spool"), &log)
			cfg.Refresh = newClient
			u := openUploader(t, cfg)
			files := capture(t, dir, pcapout.FormatPcap, 2, 100, 300, u.Handle)
			for deadline := time.Now().Add(20 * time.Second); u.Stats().Failures[FailCredentials] < 3; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("credential failures not counted: %+v\n%s", u.Stats(), log.String())
				}
			}
			if st := u.Stats(); st.Failures[FailStore] != 0 || !strings.Contains(log.String(), tt.code) {
				t.Fatalf("want only credential failures, %s logged: %+v\n%s", tt.code, st.Failures, log.String())
			}
			writeCreds(s3test.AccessKey, s3test.SecretKey, "")
			waitUploaded(t, u, 2)
			u.Close(time.Second)
			sameContents(t, objects(t, good, loc), files)
			if n := strings.Count(log.String(), "refused the credentials"); n != 1 || !strings.Contains(log.String(), "uploads resumed") {
				t.Errorf("want the refusal logged once, then the recovery:\n%s", log.String())
			}
		})
	}
}

// TestRefusedFileHoldsUpNone: the store refuses one file (a proxy in
// front of MinIO answers its PUTs with an error) and takes the others;
// they go up while the refused file waits and is tried again, and it goes
// up too once the store takes it.
func TestRefusedFileHoldsUpNone(t *testing.T) {
	srv := sharedServer(t)
	_, loc := newBucket(t, srv)
	target, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	refuse.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "_refused.pcap") {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRequest</Code><Message>refused for the test</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	c, err := archive.NewClient(context.Background(), archive.ClientOptions{Endpoint: front.URL, PathStyle: true, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log logBuffer
	u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
	defer u.Close(0)
	now := time.Now()
	for _, n := range []string{"refused.pcap", "good-1.pcap", "good-2.pcap", "good-3.pcap"} {
		name := filepath.Join(dir, n)
		if err := os.WriteFile(name, []byte("the bytes of "+n), 0o640); err != nil {
			t.Fatal(err)
		}
		u.Add(archive.Meta{File: name, Format: "pcap", First: now, Last: now})
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := u.Stats()
		if st.UploadedFiles == 3 && st.PendingFiles == 1 && st.Failures[FailStore] >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused file holds up the others: %+v\n%s", st, log.String())
		}
	}
	refuse.Store(false)
	waitUploaded(t, u, 4)
	if n := len(objects(t, srv.Client(t), loc)); n != 4 {
		t.Errorf("%d objects stored, want 4", n)
	}
}

// otherFS returns a directory on another file system than dir's: /dev/shm,
// a tmpfs.
func otherFS(t *testing.T, dir string) string {
	t.Helper()
	other, err := os.MkdirTemp("/dev/shm", "dpcap-spool")
	if err != nil {
		t.Fatalf("a second file system for the spool: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat(other, &b) != nil || a.Dev == b.Dev {
		t.Fatalf("%s and %s are on one file system", dir, other)
	}
	return other
}

// TestCopyFinishedAfterCrash: a run with its spool on another file system
// ended (SIGKILL) after writing two files' descriptions and before copying
// them. The next run copies the first, whose name still leads to it, and
// uploads it; the second's name now leads to another file: that one is
// counted as given up, and its stranger is not uploaded.
func TestCopyFinishedAfterCrash(t *testing.T) {
	srv := sharedServer(t)
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	spool := filepath.Join(otherFS(t, dir), "spool")
	if err := os.MkdirAll(filepath.Join(spool, "meta"), 0o750); err != nil {
		t.Fatal(err)
	}
	closed := time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC)
	describe := func(name, content string, replaced bool) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		dev, ino := devIno(fi)
		if replaced {
			os.Remove(name)
			os.WriteFile(name, []byte("a stranger"), 0o640)
		}
		closed = closed.Add(time.Second)
		b, _ := json.Marshal(sidecar{Meta: archive.Meta{Sink: "sink-a", File: name, Format: "pcap", First: closed, Last: closed,
			Bytes: uint64(len(content))}, Dev: dev, Ino: ino, Copy: true, MTime: fi.ModTime().UnixNano()})
		if err := os.WriteFile(filepath.Join(spool, "meta", newID(closed, name)+".json"), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	describe(filepath.Join(dir, "cap.pcap1"), "the first file's bytes", false)
	describe(filepath.Join(dir, "cap.pcap2"), "the second file's bytes", true)
	var log logBuffer
	u := openUploader(t, config(c, loc, spool, &log))
	st := waitUploaded(t, u, 1)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), map[string][]byte{"cap.pcap1": []byte("the first file's bytes")})
	if st.DroppedFiles != 1 || !strings.Contains(log.String(), "is lost to the upload") {
		t.Errorf("the replaced file is not counted: %+v\n%s", st, log.String())
	}
	if left, _ := os.ReadDir(filepath.Join(spool, "meta")); len(left) != 0 {
		t.Errorf("descriptions left in the spool: %v", left)
	}
}

// TestDroppedMultipartAborted: a large file's multipart upload breaks off
// when the store dies; while it is down, the full spool drops that file
// (drop-oldest). Once the store is back, the dropped file's parts do not
// linger in the bucket, and the files kept are uploaded.
func TestDroppedMultipartAborted(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	var log logBuffer
	cfg := config(c, loc, filepath.Join(dir, ".spool"), &log)
	cfg.Parallel, cfg.MinBackoff, cfg.MaxBackoff = 1, 3*time.Second, 3*time.Second
	var closed []pcapout.ClosedFile
	files := capture(t, dir, pcapout.FormatPcap, 3, 20000, 1400, func(f pcapout.ClosedFile) { closed = append(closed, f) }) // 28 MB each: 6 parts
	cfg.SpoolLimit = int64(closed[0].Bytes*2 + closed[0].Bytes/2)                                                           // room for two
	u := openUploader(t, cfg)
	defer u.Close(0)
	u.Handle(closed[0])
	ctx := context.Background()
	droppedKey := killMidMultipart(t, srv, c, loc.Bucket, 1)
	// The attempt fails; the uploader waits out its backoff.
	for deadline := time.Now().Add(20 * time.Second); u.Stats().Failures[FailNetwork] == 0 || inFlight(u); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt: %+v", u.Stats())
		}
	}
	u.Handle(closed[1])
	u.Handle(closed[2])
	if st := u.Stats(); st.DroppedFiles != 1 || st.PendingFiles != 2 {
		t.Fatalf("the first file not dropped: %+v", st)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 2)
	delete(files, closed[0].Name)
	sameContents(t, objects(t, c, loc), files)
	// MinIO lists the multipart uploads of one key.
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &loc.Bucket, Prefix: &droppedKey})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("unfinished multipart uploads left: %v %d", err, len(ups.Uploads))
	}
}

// A spool others can write to, that another user holds, or whose own
// directories or lock are symbolic links, is refused: what lands there is
// uploaded under this sink's name, and its lock is never created through
// a link.
func TestSpoolMustBePrivate(t *testing.T) {
	elsewhere := t.TempDir()
	tests := []struct {
		name  string
		setup func(t *testing.T, spool string)
		want  string // "" for accepted
	}{
		{"new", func(*testing.T, string) {}, ""},
		{"existing 0700", func(t *testing.T, spool string) { mkdir(t, spool, 0o700) }, ""},
		{"top level a link to a private directory", func(t *testing.T, spool string) {
			target := filepath.Join(elsewhere, "private")
			mkdir(t, target, 0o750)
			if err := os.Symlink(target, spool); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"world-writable", func(t *testing.T, spool string) { mkdir(t, spool, 0o777) }, "writable by others (mode 0777)"},
		{"group-writable files", func(t *testing.T, spool string) {
			mkdir(t, spool, 0o750)
			mkdir(t, filepath.Join(spool, "files"), 0o770)
		}, "files is writable by others (mode 0770)"},
		{"meta a link", func(t *testing.T, spool string) {
			mkdir(t, spool, 0o750)
			if err := os.Symlink(elsewhere, filepath.Join(spool, "meta")); err != nil {
				t.Fatal(err)
			}
		}, "meta is a symbolic link"},
		{"another user's", func(t *testing.T, spool string) {
			mkdir(t, spool, 0o750)
			if err := os.Chown(spool, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534, not to uid 0"},
		{"another user's tmp", func(t *testing.T, spool string) {
			mkdir(t, spool, 0o750)
			mkdir(t, filepath.Join(spool, "tmp"), 0o750)
			if err := os.Chown(filepath.Join(spool, "tmp"), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "tmp belongs to uid 65534"},
		{"lock a link", func(t *testing.T, spool string) {
			mkdir(t, spool, 0o750)
			if err := os.Symlink(filepath.Join(elsewhere, "created"), filepath.Join(spool, "lock")); err != nil {
				t.Fatal(err)
			}
		}, "lock is a symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := filepath.Join(t.TempDir(), "spool")
			tt.setup(t, spool)
			sp, err := openSpool(spool)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("openSpool: %v", err)
				}
				sp.close()
				return
			}
			if err == nil {
				sp.close()
				t.Fatalf("openSpool accepted it, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("openSpool: %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(elsewhere, "created")); err == nil {
		t.Errorf("a file was created through the link at the lock's name")
	}
}

// mkdir makes dir with exactly mode, whatever the umask.
func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// TestSlowUploadNotCut: a multipart upload through a link far slower
// than the stall time allows for the whole transfer (a proxy passing
// 1.5 MB/s per connection, a stall time of 300 ms, a 12 MB file) goes up
// at the first attempt: the stall time bounds silence, not transfers.
func TestSlowUploadNotCut(t *testing.T) {
	srv := sharedServer(t)
	good, loc := newBucket(t, srv)
	addr := serveTCP(t, func(c net.Conn) {
		up, err := net.Dial("tcp", srv.Endpoint()[len("http://"):])
		if err != nil {
			c.Close()
			return
		}
		go throttle(up, c, 1500<<10)
		go throttle(c, up, 1500<<10)
	})
	c, err := archive.NewClient(context.Background(), archive.ClientOptions{Endpoint: "http://" + addr, PathStyle: true, MaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""), Stall: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log logBuffer
	u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
	start := time.Now()
	files := capture(t, dir, pcapout.FormatPcap, 1, 8000, 1500, u.Handle)
	st := waitUploaded(t, u, 1)
	took := time.Since(start)
	u.Close(time.Second)
	if st.Failures != [NumFailures]uint64{} || took < time.Second {
		t.Fatalf("failures %v after %v (want none, and a transfer of seconds):\n%s", st.Failures, took, log.String())
	}
	t.Logf("%d bytes in %v through the slow link", st.UploadedBytes, took)
	sameContents(t, objects(t, good, loc), files)
}

// throttle copies src to dst at about rate bytes a second.
func throttle(dst, src net.Conn, rate int) {
	defer dst.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
		}
		if err != nil {
			return
		}
	}
}
