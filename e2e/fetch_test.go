package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	return dir, vmFrames(t)
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
