package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/internal/testkit"
)

// TestUploadCredentialsFixedWhileRunning: sinkd -Z nobody --upload starts
// with a shared credentials file holding a session token MinIO does not
// know (it answers InvalidTokenId). The refusals are counted and logged
// as credential failures; the operator fixes the file while sinkd runs,
// and the files that waited reach the bucket without a restart.
func TestUploadCredentialsFixedWhileRunning(t *testing.T) {
	z := newZUpload(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "credentials")
	writeCreds := func(token string) {
		t.Helper()
		s := "[default]\naws_access_key_id = " + s3test.AccessKey + "\naws_secret_access_key = " + s3test.SecretKey + "\n"
		if token != "" {
			s += "aws_session_token = " + token + "\n"
		}
		// Replaced as an editor or a rotation agent replaces it; sinkd
		// reads it as nobody.
		writeOwned(t, creds+".new", s, nobody)
		if err := os.Rename(creds+".new", creds); err != nil {
			t.Fatal(err)
		}
	}
	writeCreds("a-session-token-the-store-never-issued")
	for k, v := range map[string]string{"AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": ""} {
		t.Setenv(k, v)
	}
	d := startSinkd(t, z.ns, z.args("cap.pcapng")...)
	for phase := 1; phase <= 2; phase++ {
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", float64(74*phase))
		d.cmd.Process.Signal(syscall.SIGHUP)
		d.waitMetric(t, "sinkd_upload_pending_files", float64(phase))
	}
	m := d.waitMetric(t, `sinkd_upload_failures_total{reason="credentials"}`, 3)
	if m[`sinkd_upload_failures_total{reason="store"}`] != 0 || m["sinkd_upload_files_total"] != 0 {
		t.Fatalf("want credential failures only, nothing uploaded: %v", m)
	}
	if log := d.stderr.String(); !strings.Contains(log, "refused the credentials") || !strings.Contains(log, "InvalidTokenId") {
		t.Fatalf("the refusal is not logged as one of the credentials:\n%s", log)
	}
	writeCreds("")
	d.waitMetric(t, "sinkd_upload_files_total", 2)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "uploads resumed") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	frames := testkit.VMFrames(t)
	equalFrames(t, z.storedFrames(t), slices.Concat(frames, frames))
}

// blackHole is a TCP proxy in a namespace in front of a server there that
// can be switched to take connections and requests and answer nothing, as
// a hung front end or a black-holing balancer does. A connection it
// black-holed stays black-holed; switched back, it forwards new ones.
type blackHole struct {
	ln    net.Listener
	hole  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func startBlackHole(t *testing.T, ns *testkit.NetNS, upstream string) *blackHole {
	t.Helper()
	p := &blackHole{}
	var err error
	ns.Do(t, func() { p.ln, err = net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.keep(c)
			if p.hole.Load() {
				go io.Copy(io.Discard, c)
				continue
			}
			up, err := ns.Dial(context.Background(), "tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.keep(up)
			var holed atomic.Bool
			go p.pump(up, c, &holed)
			go p.pump(c, up, &holed)
		}
	}()
	return p
}

func (p *blackHole) keep(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// pump copies from src to dst until the proxy black-holes: from then on
// it reads and drops what src sends, for good.
func (p *blackHole) pump(dst, src net.Conn, holed *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.hole.Load() {
			holed.Store(true)
		}
		if n > 0 && !holed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !holed.Load() {
				dst.Close()
			}
			return
		}
	}
}

func (p *blackHole) endpoint() string { return "http://" + p.ln.Addr().String() }

// TestUploadStallCountedAndResumed: the store's front end takes the
// connections and requests of sinkd --upload and answers nothing. With
// --upload-stall 1s each stalled attempt is a failure counted
// (reason="stall") and logged; once the front end forwards again, the
// files that waited, and those closed meanwhile, reach the bucket.
func TestUploadStallCountedAndResumed(t *testing.T) {
	z := newZUpload(t)
	proxy := startBlackHole(t, z.ns, strings.TrimPrefix(z.store.Endpoint(), "http://"))
	d := startSinkd(t, z.ns, z.args("cap.pcapng", "--upload-stall", "1s", "--upload-endpoint", proxy.endpoint())...)
	phase := func(n int) {
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", float64(74*n))
		d.cmd.Process.Signal(syscall.SIGHUP)
	}
	phase(1)
	d.waitMetric(t, "sinkd_upload_files_total", 1)

	proxy.hole.Store(true)
	phase(2)
	phase(3)
	m := d.waitMetric(t, `sinkd_upload_failures_total{reason="stall"}`, 2)
	if m["sinkd_upload_files_total"] != 1 || m["sinkd_upload_pending_files"] < 2 {
		t.Fatalf("want the two files waiting: %v", m)
	}
	if log := d.stderr.String(); !strings.Contains(log, "reason=stall") || !strings.Contains(log, "nothing sent or received for 1s") {
		t.Fatalf("the stall is not logged:\n%s", log)
	}

	proxy.hole.Store(false)
	d.waitMetric(t, "sinkd_upload_files_total", 3)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "uploads resumed") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	frames := testkit.VMFrames(t)
	equalFrames(t, z.storedFrames(t), slices.Concat(frames, frames, frames))
}

// TestUploadWithGzipHook runs the README's 'sinkd -w cap-%Y%m%d-%H%M%S.pcap
// -G 300 -z gzip' (with -G 1) and --upload, as -Z nobody: every closed file
// ends up compressed by gzip, no command fails, and the bucket holds every
// packet of every closed file.
func TestUploadWithGzipHook(t *testing.T) {
	z := newZUpload(t)
	args := []string{"-Z", "nobody", "-w", filepath.Join(z.dir, "cap-%Y%m%d-%H%M%S.pcap"), "-G", "1", "-z", "gzip",
		"--upload", "s3://captures/e2e", "--upload-endpoint", z.store.Endpoint(), "--upload-path-style",
		"--upload-sink-id", "sink-z", "--upload-retry-max", "1s"}
	d := startSinkd(t, z.ns, args...)
	const rounds = 6
	for i := 1; i <= rounds; i++ {
		rotated := d.metrics(t)["sinkd_files_rotated_total"]
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", float64(74*i))
		d.waitMetric(t, "sinkd_files_rotated_total", rotated+1)
	}
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	left, _ := filepath.Glob(filepath.Join(z.dir, "cap-*"))
	var gz [][]byte
	for _, name := range left {
		if !strings.HasSuffix(name, ".pcap.gz") {
			t.Errorf("%s is not compressed", filepath.Base(name))
			continue
		}
		out, err := exec.Command("gzip", "-dc", name).Output()
		if err != nil {
			t.Fatalf("gzip -dc %s: %v", name, err)
		}
		plain := filepath.Join(t.TempDir(), "plain.pcap")
		if err := os.WriteFile(plain, out, 0o600); err != nil {
			t.Fatal(err)
		}
		gz = append(gz, readFrames(t, plain)...)
	}
	if want := fmt.Sprintf("%d post-rotate commands run (0 failed, 0 skipped)", len(left)); !strings.Contains(stderr, want) || strings.Contains(stderr, "cannot be queued") {
		t.Errorf("want %q:\n%s", want, stderr)
	}
	if want := fmt.Sprintf("%d files uploaded", len(left)); !strings.Contains(stderr, want) {
		t.Errorf("want %q:\n%s", want, stderr)
	}
	frames := testkit.VMFrames(t)
	var all [][]byte
	for range rounds {
		all = append(all, frames...)
	}
	equalFrames(t, gz, all)
	equalFrames(t, z.storedFrames(t), all)
}

// TestKeepRingWithGzipHook: 'sinkd -G 1 --keep 3 -z gzip', as -Z nobody,
// through a dozen rotations: the ring counts the files gzip compressed, so
// that only the newest 3 remain, compressed, and no command fails.
func TestKeepRingWithGzipHook(t *testing.T) {
	z := newZUpload(t)
	d := startSinkd(t, z.ns, "-Z", "nobody", "-w", filepath.Join(z.dir, "cap-%Y%m%d-%H%M%S.pcap"), "-G", "1", "--keep", "3", "-z", "gzip")
	for i := 1; i <= 4; i++ {
		replay(t, z.ns, "[::1]:3010", vmTraffic)
		d.waitMetric(t, "sinkd_packets_written_total", float64(74*i))
	}
	deadline := time.Now().Add(60 * time.Second)
	for d.metrics(t)["sinkd_files_rotated_total"] < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 12 rotations:\n%s", d.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "(0 failed, 0 skipped)") {
		t.Fatalf("exit %d, want no failed command:\n%s", code, stderr)
	}
	left, _ := filepath.Glob(filepath.Join(z.dir, "cap-*"))
	if len(left) != 3 {
		t.Fatalf("%d files left, want 3: %v", len(left), left)
	}
	for _, name := range left {
		if !strings.HasSuffix(name, ".pcap.gz") {
			t.Errorf("%s is not compressed", name)
		}
		if err := exec.Command("gzip", "-t", name).Run(); err != nil {
			t.Errorf("gzip -t %s: %v", name, err)
		}
	}
}
