package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/internal/testkit"
)

// nobody is the -Z user of these tests.
const nobody = 65534

// zUpload is a MinIO with a bucket "captures" in a namespace of its own, a
// capture directory that belongs to nobody, and a directory of root's
// beside it that nobody cannot enter: the stage for sinkd -Z nobody
// --upload, and for what nobody might plant in its spool.
type zUpload struct {
	ns     *testkit.NetNS
	store  *s3test.Server
	client *s3.Client
	dir    string // the capture directory, nobody's
	spool  string // sinkd's default spool in it
	root   string // root's, mode 0700
}

func newZUpload(t *testing.T) *zUpload {
	t.Helper()
	z := &zUpload{ns: testkit.NewNetNS(t)}
	z.store = s3test.Start(t, s3test.Options{
		Command: func(name string, args ...string) *exec.Cmd {
			cmd := z.ns.Cmd(name, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{} // no Pdeathsig: see TestUploadAndFetch
			return cmd
		},
		Dial: z.ns.Dial,
	})
	z.client = z.store.Client(t)
	z.store.MakeBucket(t, z.client, "captures")
	for _, kv := range z.store.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	z.dir, z.root = filepath.Join(base, "captures"), filepath.Join(base, "root")
	z.spool = filepath.Join(z.dir, ".sinkd-spool")
	mkdirOwned(t, z.dir, nobody)
	mkdirOwned(t, z.root, 0)
	if err := os.Chmod(z.root, 0o700); err != nil {
		t.Fatal(err)
	}
	return z
}

// args are sinkd's flags: -Z nobody, writing name in the capture
// directory, uploading to the bucket.
func (z *zUpload) args(name string, more ...string) []string {
	return append([]string{"-Z", "nobody", "-w", filepath.Join(z.dir, name), "-C", "100m",
		"--upload", "s3://captures/e2e", "--upload-endpoint", z.store.Endpoint(), "--upload-path-style",
		"--upload-sink-id", "sink-z", "--upload-retry-max", "1s"}, more...)
}

// plantSpool makes the spool's directories as nobody would: its own.
func (z *zUpload) plantSpool(t *testing.T) {
	t.Helper()
	mkdirOwned(t, z.spool, nobody)
	for _, d := range []string{"files", "meta", "tmp"} {
		mkdirOwned(t, filepath.Join(z.spool, d), nobody)
	}
}

// plantCopyDescription writes, as nobody could, the description sinkd
// leaves in its spool before copying a closed file into it (a spool on
// another file system), for the file name: its size, device, inode and
// modification time. It returns the spool ID.
func (z *zUpload) plantCopyDescription(t *testing.T, name string) string {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	now := time.Now()
	id := fmt.Sprintf("%016x-%s", now.UnixNano(), filepath.Base(name))
	b, _ := json.Marshal(map[string]any{
		"meta": archive.Meta{Sink: "sink-z", File: name, Format: "pcap", First: now, Last: now, Bytes: uint64(fi.Size())},
		"dev":  st.Dev, "ino": st.Ino, "copy": true, "mtime": fi.ModTime().UnixNano(),
	})
	writeOwned(t, filepath.Join(z.spool, "meta", id+".json"), string(b), nobody)
	return id
}

// stored downloads every object of the bucket, in key order (the order of
// the files' first packets), into files of their own.
func (z *zUpload) stored(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var names []string
	for i, key := range listKeys(t, z.client, "captures") {
		o, err := z.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("captures"), Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(o.Body)
		o.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, fmt.Sprintf("%03d-%s", i, filepath.Base(key)))
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// storedFrames reads the frames of every object, in key order; capinfos,
// tcpdump and tshark must read each object with frames whole. (tcpdump
// refuses a pcapng file without interfaces, such as the empty file a run
// stopped at once leaves.)
func (z *zUpload) storedFrames(t *testing.T) [][]byte {
	t.Helper()
	var frames [][]byte
	for _, name := range z.stored(t) {
		f := readFrames(t, name)
		if len(f) > 0 {
			checkWithTools(t, name, len(f))
		}
		frames = append(frames, f...)
	}
	return frames
}

func mkdirOwned(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func writeOwned(t *testing.T, name, content string, uid int) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(name, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestZUserLockLinkMakesNothing: nobody, who holds the spool of sinkd -Z
// nobody, leaves a symbolic link at the spool's lock naming a file in a
// directory only root may write. sinkd refuses the spool, saying why, and
// nothing is created there: the spool is opened as nobody, and the lock
// never through a link.
func TestZUserLockLinkMakesNothing(t *testing.T) {
	z := newZUpload(t)
	z.plantSpool(t)
	target := filepath.Join(z.root, "made-by-root")
	if err := os.Symlink(target, filepath.Join(z.spool, "lock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(z.spool, "lock"), nobody, nobody); err != nil {
		t.Fatal(err)
	}
	d := startSinkdNoWait(t, z.ns, z.args("cap.pcap")...)
	made := func() bool { _, err := os.Lstat(target); return err == nil }
	testkit.Eventually(t, 10*time.Second, "sinkd to exit", func() bool {
		select {
		case <-d.done:
			return true
		default:
			return made()
		}
	})
	if made() {
		t.Fatalf("root created %s through the spool's lock", target)
	}
	code, stderr := d.wait(t)
	if code != 2 || !strings.Contains(stderr, "lock is a symbolic link") {
		t.Errorf("exit %d, want 2 and the reason:\n%s", code, stderr)
	}
}

// TestZUserCannotRaceRootIntoAFile: nobody plants the description of a
// copy not yet made, naming a file of its own, and keeps a symbolic link
// to a file of root's at the name the copy is made under (SPOOL/tmp/ID),
// putting it back as often as start-up clears it; thousands of stale
// descriptions give it time to. The copy is made as nobody, never through
// the link: root's file keeps its bytes.
func TestZUserCannotRaceRootIntoAFile(t *testing.T) {
	z := newZUpload(t)
	z.plantSpool(t)
	victim := filepath.Join(z.root, "victim")
	writeOwned(t, victim, "root's own file", 0)
	mine := filepath.Join(z.dir, "mine.pcap")
	writeOwned(t, mine, "nobody's bytes, for root's file", nobody)
	id := z.plantCopyDescription(t, mine)
	for i := range 5000 {
		writeOwned(t, filepath.Join(z.spool, "meta", fmt.Sprintf("%016x-stale.json", i)), "{}", nobody)
	}
	racer := exec.Command("perl", "-e", "while (1) { symlink($ARGV[0], $ARGV[1]) }", victim, filepath.Join(z.spool, "tmp", id))
	racer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := racer.Start(); err != nil {
		t.Fatal(err)
	}
	stopRacer := func() { racer.Process.Kill(); racer.Wait() }
	defer stopRacer()
	testkit.Eventually(t, 10*time.Second, "the racer's link", func() bool {
		_, err := os.Lstat(filepath.Join(z.spool, "tmp", id))
		return err == nil
	})
	d := startSinkd(t, z.ns, z.args("cap.pcap")...)
	stopRacer()
	d.waitMetric(t, "sinkd_upload_pending_files", 0)
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "root's own file" {
		t.Fatalf("root's file now holds %q (%v)", b, err)
	}
}

// TestZUserCannotShipRootsFile: nobody plants the description of a copy
// not yet made that names a file only root may read. sinkd -Z nobody
// recovers its spool as nobody: the file is not copied, not uploaded, and
// the description is counted as a file given up, with the reason.
func TestZUserCannotShipRootsFile(t *testing.T) {
	z := newZUpload(t)
	z.plantSpool(t)
	secret := filepath.Join(z.root, "secret")
	writeOwned(t, secret, "root's secret", 0)
	z.plantCopyDescription(t, secret)
	d := startSinkd(t, z.ns, z.args("cap.pcap")...)
	m := d.waitMetric(t, "sinkd_upload_spool_dropped_files_total", 1)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, name := range z.stored(t) {
		if b, _ := os.ReadFile(name); strings.Contains(string(b), "root's secret") {
			t.Fatalf("root's file was uploaded as %s", name)
		}
	}
	if m["sinkd_upload_files_total"] != 0 || !strings.Contains(stderr, "is lost to the upload") || !strings.Contains(stderr, "permission denied") {
		t.Errorf("%v uploaded; the refusal is not logged:\n%s", m["sinkd_upload_files_total"], stderr)
	}
}

// TestZUserSpoolElsewhereAfterSIGKILL: sinkd -Z nobody with its spool on
// another file system (a tmpfs) while the store is down: two files close
// and are copied, a third is being written when sinkd is SIGKILLed, and
// the second's copy is taken as unfinished (its description without the
// copy, as a kill during the copy leaves it). The next start, the store
// back, copies the second again and the third, repaired, as nobody, who
// uploads them: every frame reaches the bucket, none is given up.
func TestZUserSpoolElsewhereAfterSIGKILL(t *testing.T) {
	z := newZUpload(t)
	shm, err := os.MkdirTemp("/dev/shm", "dpcap-e2e-spool")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	if err := os.Chmod(shm, 0o755); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(shm, "spool")
	args := z.args("cap.pcapng", "--upload-spool", spool)
	z.store.Stop()
	d := startSinkd(t, z.ns, args...)
	for phase := 1; phase <= 3; phase++ {
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", float64(74*phase))
		if phase < 3 {
			d.cmd.Process.Signal(syscall.SIGHUP)
			d.waitMetric(t, "sinkd_upload_pending_files", float64(phase))
		}
	}
	d.cmd.Process.Kill()
	<-d.done
	second, err := filepath.Glob(filepath.Join(spool, "files", "*-cap.pcapng1"))
	if err != nil || len(second) != 1 {
		t.Fatalf("the second file's copy: %v %v", second, err)
	}
	if err := os.Remove(second[0]); err != nil {
		t.Fatal(err)
	}
	if err := z.store.Restart(); err != nil {
		t.Fatal(err)
	}
	d = startSinkd(t, z.ns, args...)
	m := d.waitMetric(t, "sinkd_upload_files_total", 3)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || m["sinkd_upload_spool_dropped_files_total"] != 0 || strings.Contains(stderr, "vanished") {
		t.Errorf("exit %d, %v files given up:\n%s", code, m["sinkd_upload_spool_dropped_files_total"], stderr)
	}
	frames := testkit.VMFrames(t)
	equalFrames(t, z.storedFrames(t), slices.Concat(frames, frames, frames))
}

// TestKilledWhileWritingReachesBucket: sinkd -Z nobody is SIGKILLed while
// it writes a file, whose last record the kill cut short; the next start
// (whose first file takes that file's name) repairs the file and uploads
// it: the object holds every frame sent, and tshark, capinfos and tcpdump
// read it whole. Both formats.
func TestKilledWhileWritingReachesBucket(t *testing.T) {
	z := newZUpload(t)
	frames := testkit.VMFrames(t)
	for _, name := range []string{"cap.pcapng", "cap.pcap"} {
		args := z.args(name)
		d := startSinkd(t, z.ns, args...)
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", 74)
		d.cmd.Process.Kill()
		<-d.done
		// The start of a record the kill kept from reaching the disk whole.
		f, err := os.OpenFile(filepath.Join(z.dir, name), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte{6, 0, 0, 0, 0x2c, 1, 0, 0, 0, 0, 0, 0})
		f.Close()

		d = startSinkd(t, z.ns, args...)
		m := d.waitMetric(t, "sinkd_upload_files_total", 1)
		if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 || !strings.Contains(stderr, "cut back to its last whole packet") {
			t.Fatalf("%s: exit %d, no repair logged:\n%s", name, code, stderr)
		}
		if m["sinkd_upload_spool_dropped_files_total"] != 0 {
			t.Errorf("%s: files given up: %v", name, m)
		}
	}
	equalFrames(t, z.storedFrames(t), slices.Concat(frames, frames))
}
