package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// shared is one MinIO for the tests that do not stop it; each test has a
// bucket of its own.
var shared *s3test.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dpcap-minio")
	if err != nil {
		panic(err)
	}
	shared, err = s3test.New(dir, s3test.Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func sharedServer(*testing.T) *s3test.Server { return shared }

var bucketSeq int

func newBucket(t *testing.T, srv *s3test.Server) (*s3.Client, archive.Location) {
	t.Helper()
	c := srv.Client(t)
	bucketSeq++
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	name = strings.Trim(name[:min(len(name), 50)], "-") + "-" + string(rune('a'+bucketSeq%26))
	srv.MakeBucket(t, c, name)
	return c, archive.Location{Bucket: name, Prefix: "captures/dc1"}
}

// logBuffer collects an uploader's log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func config(c *s3.Client, loc archive.Location, spool string, log io.Writer) Config {
	return Config{
		Client: c, Target: loc, Spool: spool, Sink: "sink-a", Host: "host-a",
		PartSize: 5 << 20, MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// openUploader starts an uploader with cfg, or fails the test.
func openUploader(t *testing.T, cfg Config) *Uploader {
	t.Helper()
	u := New(cfg)
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	return u
}

// capture writes rotated capture files of random frames through pcapout,
// each announced to sub as it closes, and returns their contents by name
// as they were when closed; set adjusts the rotator's options.
func capture(t *testing.T, dir string, format pcapout.Format, files, perFile, frameLen int, sub func(pcapout.ClosedFile), set ...func(*pcapout.Options)) map[string][]byte {
	t.Helper()
	ext := ".pcap"
	if format == pcapout.FormatPcapng {
		ext = ".pcapng"
	}
	opts := pcapout.Options{Path: filepath.Join(dir, "cap"+ext), Format: format, LinkType: layers.LinkTypeEthernet, Application: "test"}
	for _, f := range set {
		f(&opts)
	}
	r, err := pcapout.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	closed := 0
	r.OnClose(func(f pcapout.ClosedFile) {
		b, err := os.ReadFile(f.Name)
		if err != nil {
			t.Error(err)
		}
		key := f.Name
		if _, ok := got[key]; ok { // a ring reuses names
			key = fmt.Sprintf("%s (closed %d)", f.Name, closed)
		}
		got[key] = b
		closed++
		sub(f)
	})
	iface := r.AddInterface(pcapout.Interface{Name: "vm-1", Description: "test port"})
	rng := rand.New(rand.NewPCG(1, uint64(files)))
	frame := make([]byte, frameLen)
	ts := time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC)
	for f := 0; f < files; f++ {
		for i := 0; i < perFile; i++ {
			for j := range frame {
				frame[j] = byte(rng.Uint32())
			}
			r.WritePacket(iface, ts, frame, len(frame))
			ts = ts.Add(time.Millisecond)
		}
		if f < files-1 {
			r.Rotate()
		}
	}
	r.Close()
	if len(got) != files {
		t.Fatalf("%d files closed, want %d", len(got), files)
	}
	return got
}

// objects reads every object under loc: key → content.
func objects(t *testing.T, c *s3.Client, loc archive.Location) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ctx := context.Background()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &loc.Bucket, Prefix: aws.String(loc.Root())})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &loc.Bucket, Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[*o.Key] = b
		}
	}
	return out
}

// sameContents checks the store holds exactly the files, byte for byte:
// each file once.
func sameContents(t *testing.T, stored map[string][]byte, files map[string][]byte) {
	t.Helper()
	if len(stored) != len(files) {
		t.Fatalf("the store holds %d objects, want %d", len(stored), len(files))
	}
	want := map[string]int{}
	for _, b := range files {
		want[string(b)]++
	}
	for k, b := range stored {
		if want[string(b)] == 0 {
			t.Errorf("object %s (%d bytes) is not one of the files, or a second copy of one", k, len(b))
		}
		want[string(b)]--
	}
}

func waitUploaded(t *testing.T, u *Uploader, n uint64) Stats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := u.Stats()
		if s.UploadedFiles >= n && s.PendingFiles == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploaded %d files, want %d; stats %+v", s.UploadedFiles, n, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUploadIdentical uploads rotated pcap and pcapng files, small ones in
// one request and large ones in parts, and reads them back byte for byte,
// with keys and metadata as package archive lays them out.
func TestUploadIdentical(t *testing.T) {
	srv := sharedServer(t)
	for _, tc := range []struct {
		name             string
		format           pcapout.Format
		perFile, frameSz int
		parts            int
	}{
		{"pcap", pcapout.FormatPcap, 200, 600, 0},
		{"pcapng", pcapout.FormatPcapng, 200, 600, 0},
		{"pcapng-multipart", pcapout.FormatPcapng, 9000, 1400, 3}, // 12.9 MB: 3 parts of 5 MiB
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, loc := newBucket(t, srv)
			dir := t.TempDir()
			var log logBuffer
			u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
			files := capture(t, dir, tc.format, 3, tc.perFile, tc.frameSz, u.Handle)
			st := waitUploaded(t, u, 3)
			u.Close(time.Second)
			stored := objects(t, c, loc)
			sameContents(t, stored, files)
			var total uint64
			for _, b := range files {
				total += uint64(len(b))
			}
			if st.UploadedBytes != total || st.PendingBytes != 0 {
				t.Errorf("stats %+v, want %d bytes uploaded", st, total)
			}
			for key, b := range stored {
				ki, err := archive.ParseKey(key)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(key, "captures/dc1/2026/11/23/10/sink-a/") || ki.Sink != "sink-a" {
					t.Errorf("key %s", key)
				}
				h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &loc.Bucket, Key: &key, ChecksumMode: types.ChecksumModeEnabled})
				if err != nil {
					t.Fatal(err)
				}
				m, err := archive.ParseMeta(h.Metadata)
				if err != nil {
					t.Fatalf("metadata %v: %v", h.Metadata, err)
				}
				if m.Sink != "sink-a" || m.Host != "host-a" || m.Bytes != uint64(len(b)) || m.Packets != uint64(tc.perFile) ||
					!m.First.Equal(ki.First) || !m.Last.Equal(ki.Last) || !ki.Last.After(ki.First) ||
					len(m.Sources) != 1 || m.Sources[0] != "vm-1" || m.Format != strings.TrimSuffix(tc.name, "-multipart") {
					t.Errorf("metadata %+v of %s", m, key)
				}
				// The store keeps the checksum it verified: of the file, or
				// of its parts' checksums.
				sum := sha256.Sum256(b)
				want := base64.StdEncoding.EncodeToString(sum[:])
				if tc.parts > 0 {
					var all []byte
					for off := 0; off < len(b); off += 5 << 20 {
						s := sha256.Sum256(b[off:min(off+5<<20, len(b))])
						all = append(all, s[:]...)
					}
					s := sha256.Sum256(all)
					want = fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(s[:]), tc.parts)
				}
				if got := aws.ToString(h.ChecksumSHA256); got != want && got != strings.Split(want, "-")[0] {
					t.Errorf("the store's SHA-256 of %s is %q, want %q", key, got, want)
				}
			}
			if left, _ := os.ReadDir(filepath.Join(dir, ".spool", "files")); len(left) != 0 {
				t.Errorf("%d files left in the spool", len(left))
			}
			if strings.Contains(log.String(), "level=ERROR") {
				t.Errorf("errors logged:\n%s", log.String())
			}
		})
	}
}

// TestStoreDownAndBack stops the store while files close: attempts fail
// and are counted, files wait, and once the store is back everything is
// uploaded.
func TestStoreDownAndBack(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	var log logBuffer
	u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
	srv.Stop()
	files := capture(t, dir, pcapout.FormatPcapng, 4, 300, 500, u.Handle)
	for deadline := time.Now().Add(20 * time.Second); u.Stats().Failures[FailNetwork] < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempts counted: %+v", u.Stats())
		}
	}
	if st := u.Stats(); st.PendingFiles != 4 || st.UploadedFiles != 0 || st.OldestPending.IsZero() {
		t.Fatalf("while the store is down: %+v", st)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 4)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), files)
	if n := strings.Count(log.String(), "the store cannot be reached"); n != 1 {
		t.Errorf("the outage was logged %d times, want once:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "uploads resumed") {
		t.Errorf("the recovery was not logged:\n%s", log.String())
	}
}

// TestRingNeverOverwritesAWaitingFile writes a -W 2 ring of six files
// while the store is down: every name is reused, yet each file reaches the
// store as it was when it closed.
func TestRingNeverOverwritesAWaitingFile(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	var log logBuffer
	u := openUploader(t, config(c, loc, filepath.Join(dir, ".spool"), &log))
	srv.Stop()
	files := capture(t, dir, pcapout.FormatPcap, 6, 200, 300, u.Handle, func(o *pcapout.Options) {
		o.FileSize, o.FileCount = 1<<30, 2
	})
	if names, _ := filepath.Glob(filepath.Join(dir, "cap.pcap*")); len(names) != 2 {
		t.Fatalf("the ring holds %v, want 2 files", names)
	}
	if st := u.Stats(); st.PendingFiles != 6 {
		t.Fatalf("%d files wait, want 6", st.PendingFiles)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 6)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), files)
}

// TestStoreKilledMidMultipart kills the store while a large file's parts
// are going up; after its restart the upload completes, identical, and no
// unfinished multipart upload is left in the bucket.
func TestStoreKilledMidMultipart(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	var log logBuffer
	cfg := config(c, loc, filepath.Join(dir, ".spool"), &log)
	cfg.Parallel = 1
	u := openUploader(t, cfg)
	// Hold the file back until the store is being watched.
	var closed []pcapout.ClosedFile
	files := capture(t, dir, pcapout.FormatPcap, 1, 60000, 1400, func(f pcapout.ClosedFile) { closed = append(closed, f) }) // 85 MB: 17 parts
	u.Handle(closed[0])
	ctx := context.Background()
	// Kill once the store holds some parts of the upload, not all.
	key := killMidMultipart(t, srv, c, loc.Bucket, 2)
	for deadline := time.Now().Add(20 * time.Second); u.Stats().Failures[FailNetwork] == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt counted: %+v", u.Stats())
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 1)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), files)
	// MinIO lists the multipart uploads of one key.
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &loc.Bucket, Prefix: &key})
	if err != nil || len(ups.Uploads) != 0 {
		t.Errorf("unfinished multipart uploads left: %v %v", err, ups.Uploads)
	}
}

// TestWrongCredentials: one clear error, every attempt counted, the files
// kept in the spool for when the credentials are fixed.
func TestWrongCredentials(t *testing.T) {
	srv := sharedServer(t)
	good, loc := newBucket(t, srv)
	bad := srv.ClientAs(t, s3test.AccessKey, "not-the-secret")
	dir := t.TempDir()
	spool := filepath.Join(dir, ".spool")
	var log logBuffer
	u := openUploader(t, config(bad, loc, spool, &log))
	files := capture(t, dir, pcapout.FormatPcap, 3, 100, 300, u.Handle)
	for deadline := time.Now().Add(20 * time.Second); u.Stats().Failures[FailCredentials] < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("credential failures not counted: %+v\n%s", u.Stats(), log.String())
		}
	}
	st := u.Close(0)
	if st.PendingFiles != 3 || st.UploadedFiles != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := strings.Count(log.String(), "level=ERROR"); n != 1 || !strings.Contains(log.String(), "refused the credentials") || !strings.Contains(log.String(), "SignatureDoesNotMatch") {
		t.Errorf("want one clear error, got %d:\n%s", n, log.String())
	}
	// The credentials fixed, the next run uploads what waited.
	u = openUploader(t, config(good, loc, spool, &log))
	waitUploaded(t, u, 3)
	u.Close(time.Second)
	sameContents(t, objects(t, good, loc), files)
}

// TestSpoolRecovery: files a run could not upload, and a file linked into
// the spool by a run killed before it wrote the file's description, are
// found and uploaded by the next run, described from their content.
func TestSpoolRecovery(t *testing.T) {
	srv := sharedServer(t)
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	spool := filepath.Join(dir, ".spool")
	var log logBuffer
	down := config(c, archive.Location{Bucket: loc.Bucket, Prefix: loc.Prefix}, spool, &log)
	down.Client = s3test.Start(t, s3test.Options{}).Client(t)
	u := openUploader(t, down)
	files := capture(t, dir, pcapout.FormatPcapng, 3, 100, 300, u.Handle)
	if st := u.Close(0); st.PendingFiles != 3 {
		t.Fatalf("stats %+v", st)
	}
	// A crash between the link and the sidecar.
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	ids, _ := os.ReadDir(filepath.Join(spool, "files"))
	if len(ids) != 3 {
		t.Fatalf("%d files in the spool", len(ids))
	}
	os.Remove(filepath.Join(spool, "meta", ids[0].Name()+".json"))

	u = openUploader(t, config(c, loc, spool, &log))
	waitUploaded(t, u, 3)
	u.Close(time.Second)
	stored := objects(t, c, loc)
	sameContents(t, stored, files)
	for key := range stored {
		h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &loc.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		m, err := archive.ParseMeta(h.Metadata)
		if err != nil || m.Packets != 100 || len(m.Sources) != 1 || m.Sources[0] != "vm-1" || m.Format != "pcapng" {
			t.Errorf("%s: metadata %+v %v", key, m, err)
		}
	}
	if !strings.Contains(log.String(), "files left in the upload spool by an earlier run are queued") {
		t.Errorf("recovery not logged:\n%s", log.String())
	}
}

// TestSpoolFull fills a bounded spool while the store is unreachable:
// each policy keeps the files it says, counts and logs the others, and
// never touches the capture files themselves.
func TestSpoolFull(t *testing.T) {
	// A store that takes requests and never answers: the first file stays
	// in flight, which no policy drops.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	addr := serveTCP(t, func(c net.Conn) { held = append(held, c) })
	c, err := archive.NewClient(context.Background(), archive.ClientOptions{Endpoint: "http://" + addr, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []FullPolicy{DropOldest, DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			var log logBuffer
			cfg := config(c, archive.Location{Bucket: "nowhere"}, filepath.Join(dir, ".spool"), &log)
			cfg.Full = policy
			var sizes []uint64
			var order []string
			files := capture(t, dir, pcapout.FormatPcap, 5, 100, 1000, func(f pcapout.ClosedFile) {
				sizes = append(sizes, f.Bytes)
				order = append(order, f.Name)
			})
			cfg.SpoolLimit = int64(sizes[0]*3 + sizes[0]/2) // room for three
			u := openUploader(t, cfg)
			for i, n := range order {
				u.Add(archive.Meta{File: n, Format: "pcap"})
				if i == 0 { // wait until it is in flight
					for deadline := time.Now().Add(5 * time.Second); !inFlight(u); time.Sleep(time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatal("the first file never went in flight")
						}
					}
				}
			}
			st := u.Close(0)
			if st.PendingFiles != 3 || st.DroppedFiles != 2 || st.DroppedBytes != 2*sizes[0] || !st.Full {
				t.Errorf("stats %+v", st)
			}
			if n := strings.Count(log.String(), "upload spool full"); n != 2 {
				t.Errorf("%d spool-full errors logged, want 2:\n%s", n, log.String())
			}
			var left []string
			ids, _ := os.ReadDir(filepath.Join(dir, ".spool", "files"))
			for _, id := range ids {
				left = append(left, id.Name()[17:])
			}
			want := []string{"cap.pcap", "cap.pcap3", "cap.pcap4"}
			if policy == DropNewest {
				want = []string{"cap.pcap", "cap.pcap1", "cap.pcap2"}
			}
			if strings.Join(left, " ") != strings.Join(want, " ") {
				t.Errorf("spool holds %v, want %v", left, want)
			}
			for n := range files {
				if _, err := os.Stat(n); err != nil {
					t.Errorf("capture file touched: %v", err)
				}
			}
		})
	}
}

// TestUploadDelete removes a capture file after its upload, but not a
// file that took its name meanwhile (a -W ring).
func TestUploadDelete(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	var log logBuffer
	cfg := config(c, loc, filepath.Join(dir, ".spool"), &log)
	cfg.Delete = true
	srv.Stop()
	u := openUploader(t, cfg)
	var closed []pcapout.ClosedFile
	files := capture(t, dir, pcapout.FormatPcap, 2, 100, 300, func(f pcapout.ClosedFile) {
		closed = append(closed, f)
		u.Handle(f)
	})
	// While the store is down, the first name gets a new file.
	if err := os.Remove(closed[0].Name); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(closed[0].Name, []byte("a newer file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	st := waitUploaded(t, u, 2)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), files)
	if _, err := os.Stat(closed[1].Name); !os.IsNotExist(err) {
		t.Errorf("the uploaded file was not removed: %v", err)
	}
	if b, err := os.ReadFile(closed[0].Name); err != nil || string(b) != "a newer file" {
		t.Errorf("the newer file under a reused name was touched: %q %v", b, err)
	}
	if st.Deleted != 1 {
		t.Errorf("deleted %d, want 1", st.Deleted)
	}
}

func inFlight(u *Uploader) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queue) > 0 && u.queue[0].inFlight
}

// killMidMultipart kills the store once a multipart upload in bucket has
// parts parts stored, and returns the upload's key.
func killMidMultipart(t *testing.T, srv *s3test.Server, c *s3.Client, bucket string, parts int) string {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no multipart upload seen")
		}
		ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
		if err != nil || len(ups.Uploads) == 0 {
			continue
		}
		ps, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: &bucket, Key: ups.Uploads[0].Key, UploadId: ups.Uploads[0].UploadId})
		if err == nil && len(ps.Parts) >= parts {
			srv.Kill()
			t.Logf("killed the store with %d parts stored", len(ps.Parts))
			return aws.ToString(ups.Uploads[0].Key)
		}
	}
}

// TestThenGetsUnsharedFiles: with Config.Then (sinkd -z), each closed file
// goes on in the order it closed, with no link but its name, and a
// command that then changes it in place (here: empties it) leaves what is
// uploaded alone: the store holds the files as they closed.
func TestThenGetsUnsharedFiles(t *testing.T) {
	srv := sharedServer(t)
	c, loc := newBucket(t, srv)
	dir := t.TempDir()
	var log logBuffer
	cfg := config(c, loc, filepath.Join(dir, ".spool"), &log)
	var mu sync.Mutex
	var order []string
	cfg.Then = func(f pcapout.ClosedFile) {
		fi, err := os.Stat(f.Name)
		if err != nil {
			t.Error(err)
			return
		}
		if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
			t.Errorf("%s goes on with %d links", f.Name, n)
		}
		if err := os.Truncate(f.Name, 0); err != nil {
			t.Error(err)
		}
		mu.Lock()
		order = append(order, filepath.Base(f.Name))
		mu.Unlock()
	}
	u := openUploader(t, cfg)
	files := capture(t, dir, pcapout.FormatPcapng, 4, 100, 300, u.Handle)
	u.PassedOn()
	waitUploaded(t, u, 4)
	u.Close(time.Second)
	sameContents(t, objects(t, c, loc), files)
	if want := []string{"cap.pcapng", "cap.pcapng1", "cap.pcapng2", "cap.pcapng3"}; !slices.Equal(order, want) {
		t.Errorf("passed on %v, want %v", order, want)
	}
}

// serveTCP listens on a port of the loopback until the test ends and
// hands each connection to handle, one after the other; it returns the
// address.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return ln.Addr().String()
}
