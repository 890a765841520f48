package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/internal/testkit"
)

// captureDir returns a directory holding a copy of the shipped capture,
// for dpcap fetch to read, and its frames.
func captureDir(t *testing.T) (string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(vmTraffic)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vm.pcap"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, testkit.VMFrames(t)
}

// writeNgFrames writes frames to a new pcapng file of interfaces named
// names, frame i on interface i modulo their number, a nanosecond apart.
func writeNgFrames(t *testing.T, name string, names []string, frames [][]byte) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ifc := pcapgo.NgInterface{Name: names[0], LinkType: layers.LinkTypeEthernet, SnapLength: 65535}
	w, err := pcapgo.NewNgWriterInterface(f, ifc, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		ifc.Name = n
		if _, err := w.AddInterface(ifc); err != nil {
			t.Fatal(err)
		}
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)), CaptureLength: len(fr), Length: len(fr), InterfaceIndex: i % len(names)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// fetchCmd is a dpcap fetch process.
func fetchCmd(args ...string) *exec.Cmd {
	return exec.Command(bin("dpcap"), append([]string{"fetch", "-q"}, args...)...)
}

// -w never replaces what sits at its name by a regular file: a fifo and a
// character device (mknod'ed twin of /dev/null) are written into, a
// symbolic link is followed (the file it names is replaced, the link
// stays; a link to a device is written through), a directory is refused.
func TestFetchOutputTargets(t *testing.T) {
	src, want := captureDir(t)
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file.pcapng")
	if err := os.WriteFile(file, []byte("an earlier fetch"), 0o644); err != nil {
		t.Fatal(err)
	}
	toFile, toNull := filepath.Join(dir, "to-file"), filepath.Join(dir, "to-null")
	if err := os.Symlink(file, toFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(null, toNull); err != nil {
		t.Fatal(err)
	}
	typeOf := func(name string) fs.FileMode {
		st, err := os.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Type()
	}

	// The fifo: a reader gets the whole capture; the fifo stays a fifo.
	got := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- b
	}()
	cmd := fetchCmd(src, "-w", fifo)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("-w fifo: %v\n%s", err, out)
	}
	if m := typeOf(fifo); m != fs.ModeNamedPipe {
		t.Fatalf("the fifo is now %v", m) // and its reader waits for ever
	}
	read := filepath.Join(t.TempDir(), "from-fifo.pcapng")
	if err := os.WriteFile(read, <-got, 0o644); err != nil {
		t.Fatal(err)
	}
	equalFrames(t, readFrames(t, read), want)

	for _, name := range []string{null, toNull} {
		if out, err := fetchCmd(src, "-w", name).CombinedOutput(); err != nil {
			t.Fatalf("-w %s: %v\n%s", name, err, out)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(null, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("the device node is now mode %o rdev %x", st.Mode, st.Rdev)
	}

	if out, err := fetchCmd(src, "-w", toFile).CombinedOutput(); err != nil {
		t.Fatalf("-w %s: %v\n%s", toFile, err, out)
	}
	for _, link := range []string{toFile, toNull} {
		if m := typeOf(link); m != fs.ModeSymlink {
			t.Errorf("%s is now %v, not a symbolic link", link, m)
		}
	}
	equalFrames(t, readFrames(t, file), want)
	checkWithTools(t, file, len(want))

	// -w /dev/stdout is standard output, as -w -: a file the shell opened
	// for appending (>>) is appended to, not replaced.
	appended := filepath.Join(t.TempDir(), "appended")
	if err := os.WriteFile(appended, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(appended)
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := os.OpenFile(appended, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd = fetchCmd(src, "-w", "/dev/stdout")
	cmd.Stdout = stdout
	err = cmd.Run()
	stdout.Close()
	if err != nil {
		t.Fatalf("-w /dev/stdout: %v", err)
	}
	after, err := os.Stat(appended)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(appended)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !bytes.HasPrefix(b, []byte("earlier\n")) {
		t.Errorf("-w /dev/stdout replaced the file standard output appends to (same file %v, starts %q)", os.SameFile(before, after), b[:min(len(b), 8)])
	} else {
		cut := filepath.Join(t.TempDir(), "cut.pcapng")
		if err := os.WriteFile(cut, b[len("earlier\n"):], 0o644); err != nil {
			t.Fatal(err)
		}
		equalFrames(t, readFrames(t, cut), want)
	}

	if out, err := fetchCmd(src, "-w", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "directory") {
		t.Errorf("-w a directory: %v\n%s", err, out)
	}
	if m := typeOf(dir); m != fs.ModeDir {
		t.Errorf("the directory is now %v", m)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// The output file's mode is sinkd's captures' 0640 less the umask: a
// stricter umask makes it stricter, a looser one does not open it to all.
func TestFetchOutputMode(t *testing.T) {
	src, want := captureDir(t)
	dir := t.TempDir()
	for umask, mode := range map[string]os.FileMode{"022": 0o640, "027": 0o640, "077": 0o600, "000": 0o640} {
		out := filepath.Join(dir, "out-"+umask+".pcapng")
		cmd := exec.Command("sh", "-c", `umask "$0"; exec "$@"`, umask, bin("dpcap"), "fetch", "-q", src, "-w", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("umask %s: %v\n%s", umask, err, b)
		}
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("umask %s: mode %04o, want %04o", umask, st.Mode().Perm(), mode)
		}
		equalFrames(t, readFrames(t, out), want)
	}
}

// slowProxy forwards TCP connections to addr, the answers at about rate
// bytes a second; sent counts the bytes of answers forwarded.
func slowProxy(t *testing.T, addr string, rate int) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	sent := &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				buf := make([]byte, rate/20)
				for {
					n, err := s.Read(buf)
					if _, werr := c.Write(buf[:n]); werr != nil || err != nil {
						return
					}
					sent.Add(int64(n))
					time.Sleep(50 * time.Millisecond) // the rate limit
				}
			}()
		}
	}()
	return ln.Addr().String(), sent
}

// interrupt sends SIGINT to a running fetch once ready says it is reading,
// and checks that it stops within seconds, exits 130 and leaves nothing
// under the output's name nor any temporary file.
func interrupt(t *testing.T, cmd *exec.Cmd, out string, ready func() bool) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	testkit.Eventually(t, 10*time.Second, "the fetch to be reading", func() bool {
		select {
		case <-done:
			t.Fatalf("fetch ended before it was interrupted: %v\n%s", cmd.ProcessState, stderr.String())
		default:
		}
		return ready()
	})
	cmd.Process.Signal(syscall.SIGINT)
	sent := time.Now()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("fetch still runs 20 s after SIGINT")
	}
	t.Logf("stopped %v after SIGINT:\n%s", time.Since(sent).Round(time.Millisecond), stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit status %d after SIGINT, want 130", code)
	}
	if !strings.Contains(stderr.String(), "interrupted by SIGINT; nothing written to "+out) {
		t.Errorf("stderr does not say that nothing was written:\n%s", stderr.String())
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("an interrupted fetch left %s (%v)", out, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
		t.Errorf("an interrupted fetch left %q", left)
	}
}

// SIGINT during a download from MinIO (slowed by a proxy) and during the
// read of a large local file (a 64 GiB sparse pcap of empty records,
// minutes of reading): each fetch stops at once, exits 130 and leaves no
// file that looks complete.
func TestFetchInterrupted(t *testing.T) {
	t.Run("s3", func(t *testing.T) {
		store := s3test.Start(t, s3test.Options{})
		client := store.Client(t)
		store.MakeBucket(t, client, "captures")
		r := rand.New(rand.NewPCG(1, 2))
		frames := make([][]byte, 20000)
		for i := range frames {
			frames[i] = randomFrame(r, 1000)
		}
		b, err := os.ReadFile(testkit.WritePcap(t, frames))
		if err != nil {
			t.Fatal(err)
		}
		bucket, first := "captures", time.Unix(1700000000, 0)
		key := archive.Location{Bucket: "captures", Prefix: "e2e"}.Key("sink-a", first, first.Add(20*time.Millisecond), "cap.pcap")
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
		proxy, sent := slowProxy(t, strings.TrimPrefix(store.Endpoint(), "http://"), 1<<20)
		out := filepath.Join(t.TempDir(), "cap.pcapng")
		cmd := fetchCmd("s3://captures/e2e", "--endpoint", "http://"+proxy, "--path-style", "-w", out)
		cmd.Env = append(os.Environ(), store.Env()...)
		interrupt(t, cmd, out, func() bool { return sent.Load() > 2<<20 })
	})
	t.Run("directory", func(t *testing.T) {
		src := t.TempDir()
		big := filepath.Join(src, "big.pcap")
		hdr := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)
		hdr = append(hdr, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0)
		if err := os.WriteFile(big, hdr, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(big, 64<<30); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "cap.pcapng")
		cmd := fetchCmd(src, "--from", "2026-01-01T00:00:00Z", "-w", out)
		interrupt(t, cmd, out, func() bool {
			io, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/io")
			var rchar int64
			for _, l := range strings.Split(string(io), "\n") {
				if v, ok := strings.CutPrefix(l, "rchar: "); ok {
					rchar, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			return err == nil && rchar > 100<<20
		})
	})
}

// Keys holding control characters (ESC, BEL) under the prefix: a foreign
// object among the captures does not fail the listing, and a capture
// whose key holds ESC is found, read and kept, not reported gone.
func TestFetchControlCharacterKeys(t *testing.T) {
	store := s3test.Start(t, s3test.Options{})
	client := store.Client(t)
	bucket := "captures"
	store.MakeBucket(t, client, bucket)
	loc := archive.Location{Bucket: bucket, Prefix: "e2e"}
	frames := testkit.VMFrames(t)
	b, err := os.ReadFile(vmTraffic)
	if err != nil {
		t.Fatal(err)
	}
	pkts, _, err := pcapfile.ReadFile(vmTraffic)
	if err != nil {
		t.Fatal(err)
	}
	first, last := pkts[0].Info.Timestamp, pkts[len(pkts)-1].Info.Timestamp
	// The capture with ESC in its key alone, then a foreign object with
	// BEL and a terminal escape beside it.
	for _, key := range []string{
		strings.Replace(loc.Key("sink-a", first, last, "cap.pcap"), "_cap.pcap", "_cap\x1b.pcap", 1),
		"e2e/notes\a\x1b[31m.txt",
	} {
		body := []byte("not a capture")
		if strings.HasSuffix(key, ".pcap") {
			body = b
		}
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		out := filepath.Join(t.TempDir(), "cap.pcapng")
		cmd := fetchCmd("s3://captures/e2e", "--endpoint", store.Endpoint(), "--path-style", "-w", out)
		cmd.Env = append(os.Environ(), store.Env()...)
		msg, err := cmd.CombinedOutput()
		t.Logf("dpcap fetch after putting %q:\n%s", key, msg)
		if err != nil {
			t.Fatalf("dpcap fetch: %v", err)
		}
		if strings.Contains(string(msg), "gone") {
			t.Errorf("a capture is reported gone")
		}
		equalFrames(t, readFrames(t, out), frames)
	}
}

// Strings from capture files and file names (pcapng interface names,
// names of damaged files) are printed escaped: a terminal gets no escape
// sequence from dpcap fetch.
func TestFetchEscapesWhatItPrints(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(dir, "cap\x1b]0;owned\a.pcapng")
	frames := testkit.VMFrames(t)
	writeNgFrames(t, evil, []string{"vm-1\x1b[2J\x1b[31m"}, frames)
	st, err := os.Stat(evil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(evil, st.Size()-10); err != nil { // damaged: the summary names it
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cap.pcapng")
	msg, err := fetchCmd(dir, "-w", out).CombinedOutput()
	t.Logf("dpcap fetch:\n%s", msg)
	if err != nil {
		t.Fatalf("dpcap fetch: %v", err)
	}
	for _, c := range msg {
		if c < 0x20 && c != '\n' || c == 0x7f {
			t.Fatalf("dpcap fetch printed control character %#x", c)
		}
	}
	for _, want := range []string{`interfaces: vm-1\x1b[2J\x1b[31m`, `damaged: ` + dir + `/cap\x1b]0;owned\a.pcapng`} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := len(readFrames(t, out)); n != len(frames)-1 {
		t.Errorf("%d frames fetched, want %d", n, len(frames)-1)
	}
}

// A planted gzip pcapng of a million interface descriptions (2.5 MB) is
// reported damaged with the reason, costs the fetch tens of megabytes,
// not a gigabyte, and the other file's packets all
// come back.
func TestFetchManyInterfaces(t *testing.T) {
	src, want := captureDir(t)
	var raw bytes.Buffer
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 0x0A0D0D0A)
	b = le.AppendUint32(b, 28)
	b = le.AppendUint32(b, 0x1A2B3C4D)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, ^uint64(0))
	raw.Write(le.AppendUint32(b, 28))
	for i := range 1_000_000 {
		name := fmt.Sprintf("if%07d", i) // 9 bytes, padded to 12
		b = le.AppendUint32(b[:0], 1)
		b = le.AppendUint32(b, 40)
		b = le.AppendUint32(b, 1)
		b = le.AppendUint32(b, 65535)
		b = le.AppendUint16(b, 2) // if_name
		b = le.AppendUint16(b, uint16(len(name)))
		b = append(append(b, name...), make([]byte, 12-len(name))...)
		b = le.AppendUint32(b, 0) // opt_endofopt
		raw.Write(le.AppendUint32(b, 40))
	}
	planted := filepath.Join(src, "planted.pcapng.gz")
	f, err := os.Create(planted)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := raw.WriteTo(zw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := os.Stat(planted)
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "cap.pcapng")
	// time(1) forks dpcap from its own small process: a child's max RSS
	// counts the memory of the process it was started from at exec, this
	// test's included when started from here.
	cmd := exec.Command("/usr/bin/time", "-f", "maxrss %M", bin("dpcap"), "fetch", "-q", src, "-w", out)
	res, err := cmd.CombinedOutput()
	t.Logf("planted %.1f MB of gzip; dpcap fetch:\n%s", float64(st.Size())/1e6, res)
	if err != nil {
		t.Fatalf("dpcap fetch: %v", err)
	}
	msg, last, _ := bytes.Cut(res, []byte("maxrss "))
	rss, err := strconv.Atoi(strings.TrimSpace(string(last))) // KiB
	if err != nil {
		t.Fatalf("time(1) says %q", last)
	}
	if rss > 200<<10 {
		t.Errorf("fetch's max RSS is %d MiB", rss>>10)
	}
	if !strings.Contains(string(msg), "damaged: "+planted+": ") || !strings.Contains(string(msg), "more than 65536 interfaces") {
		t.Errorf("the planted file is not reported damaged with the reason")
	}
	equalFrames(t, readFrames(t, out), want)
}

// A LOCATION that is a symbolic link to the capture directory finds the
// same files as the directory's own path.
func TestFetchLocationSymlink(t *testing.T) {
	src, want := captureDir(t)
	link := filepath.Join(t.TempDir(), "captures")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{src, link, link + "/"} {
		out := filepath.Join(t.TempDir(), "cap.pcapng")
		if msg, err := fetchCmd(loc, "-w", out).CombinedOutput(); err != nil {
			t.Fatalf("dpcap fetch %s: %v\n%s", loc, err, msg)
		}
		equalFrames(t, readFrames(t, out), want)
	}
}

// A fetch that matches nothing leaves no file (an earlier file at the name
// is untouched), exits 1 and names the ports it saw, escaped, so that a
// mistyped --port shows.
func TestFetchNoMatch(t *testing.T) {
	src := t.TempDir()
	writeNgFrames(t, filepath.Join(src, "cap.pcapng"), []string{"vm-1", "vm-2\x1b[31m"}, testkit.VMFrames(t))
	dir := t.TempDir()
	fresh, earlier := filepath.Join(dir, "fresh.pcapng"), filepath.Join(dir, "earlier.pcapng")
	if err := os.WriteFile(earlier, []byte("an earlier fetch"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fresh, earlier} {
		cmd := fetchCmd(src, "--port", "vm-9", "-w", out)
		msg, _ := cmd.CombinedOutput()
		t.Logf("dpcap fetch:\n%s", msg)
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		if want := `ports seen there: vm-1, vm-2\x1b[31m; nothing written to ` + out; !strings.Contains(string(msg), want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if _, err := os.Lstat(fresh); !os.IsNotExist(err) {
		t.Errorf("a fetch that matched nothing left %s (%v)", fresh, err)
	}
	if b, err := os.ReadFile(earlier); err != nil || string(b) != "an earlier fetch" {
		t.Errorf("the file at the name was changed: %q (%v)", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Errorf("left %q", left)
	}
}
