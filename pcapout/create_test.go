package pcapout

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket/layers"
)

// inode returns name's inode number.
func inode(t *testing.T, name string) uint64 {
	t.Helper()
	st, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestPlantedNamesAreNeverWritten plants, at the names rotation will
// take, a hard link to someone's file, someone else's writable file, a
// fifo, a symlink and a directory. No planted inode is written, the fifo
// does not block, the names nothing but a regular file holds are skipped
// loudly, and every packet lands in a valid file.
func TestPlantedNamesAreNeverWritten(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pcap")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("not capture data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, path+"1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"2", []byte("someone's file"), 0o666); err != nil {
		t.Fatal(err)
	}
	planted := inode(t, path+"2")
	if err := syscall.Mkfifo(path+"3", 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, path+"4"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+"5", 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	r, err := Open(Options{Path: path, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 4 {
			r.WritePacket(0, time.Unix(int64(i), 0), numberedFrame(i, 100), 100)
			r.Rotate() // out.pcap1, out.pcap2, then past 3, 4 and 5 to out.pcap6, out.pcap7
		}
		r.Close()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("rotation hangs on the planted fifo")
	}
	if b, _ := os.ReadFile(secret); string(b) != "not capture data" {
		t.Errorf("the hard-linked file was written: %q", b)
	}
	if inode(t, path+"2") == planted {
		t.Error("the planted file's inode was reused")
	}
	for _, name := range []string{"3", "4", "5"} {
		if st, err := os.Lstat(path + name); err != nil || st.Mode().IsRegular() {
			t.Errorf("out.pcap%s was replaced: %v %v", name, st.Mode(), err)
		}
	}
	var got []int
	for _, name := range []string{"", "1", "2", "6", "7"} {
		st, err := os.Stat(path + name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o640 {
			t.Errorf("out.pcap%s: mode %v", name, st.Mode().Perm())
		}
		for _, p := range readAll(t, path+name) {
			got = append(got, int(p.Info.Timestamp.Unix()))
		}
	}
	if !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("packets read back %v, want 0-3", got)
	}
	for _, kind := range []string{"a fifo", "a symlink", "a directory"} {
		if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), kind) {
			t.Errorf("skipping %s was not logged:\n%s", kind, log.String())
		}
	}
	for _, n := range testkit.DirNames(t, dir) {
		if strings.HasSuffix(n, ".part") {
			t.Errorf("temporary file %s left behind", n)
		}
	}
}

// TestRingMakesFreshInodes checks a -C -W ring replaces its own old file
// with a new inode: a hard link taken to a closed file (by an uploader)
// keeps that file intact after the ring comes round.
func TestRingMakesFreshInodes(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(Options{Path: filepath.Join(dir, "ring"), LinkType: layers.LinkTypeEthernet, FileSize: 2 << 10, FileCount: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(t.TempDir(), "kept")
	r.OnClose(func(f ClosedFile) {
		if filepath.Base(f.Name) == "ring0" && !fileExists(keep) {
			if err := os.Link(f.Name, keep); err != nil {
				t.Error(err)
			}
		}
	})
	for i := range 20 {
		r.WritePacket(0, time.Unix(int64(i), 0), numberedFrame(i, 500), 500)
	}
	r.Close()
	kept := readAll(t, keep)
	if len(kept) == 0 || kept[0].Info.Timestamp.Unix() != 0 {
		t.Fatalf("the hard link to the first ring0 holds %d packets", len(kept))
	}
	if inode(t, keep) == inode(t, filepath.Join(dir, "ring0")) {
		t.Error("ring0 was reused in place")
	}
	if last := readAll(t, filepath.Join(dir, "ring0")); len(last) == 0 || last[0].Info.Timestamp.Unix() == 0 {
		t.Error("ring0 does not hold the ring's later packets")
	}
}

func fileExists(name string) bool { _, err := os.Lstat(name); return err == nil }

// TestKeepRingOnTheClock checks --keep: a -G capture keeps the newest N
// files and goes on, removing only files it made that are still where it
// left them.
func TestKeepRingOnTheClock(t *testing.T) {
	dir := t.TempDir()
	r, clk := openKeepRing(t, dir)
	moved := filepath.Join(t.TempDir(), "moved.pcap")
	for i := range 8 {
		r.WritePacket(0, clk.t, numberedFrame(i, 100), 100)
		switch i {
		case 2: // a -z command moves a closed file away
			if err := os.Rename(filepath.Join(dir, "k-0401.pcap"), moved); err != nil {
				t.Fatal(err)
			}
		case 3: // someone puts their own file in a closed one's place
			mine := filepath.Join(t.TempDir(), "mine")
			if err := os.WriteFile(mine, []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(mine, filepath.Join(dir, "k-0402.pcap")); err != nil {
				t.Fatal(err)
			}
		}
		clk.t = clk.t.Add(time.Second)
		if err := r.Tick(); err != nil {
			t.Fatal(err)
		}
		names := testkit.DirNames(t, dir)
		if n := len(names); n > 4 {
			t.Fatalf("after %d periods: %v", i+1, names)
		}
	}
	r.Close()
	want := []string{"k-0402.pcap", "k-0406.pcap", "k-0407.pcap", "k-0408.pcap"}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v (the newest 3 and the one someone replaced)", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "k-0402.pcap")); string(b) != "mine" {
		t.Error("a file sinkd did not make was touched")
	}
	if n := len(readAll(t, moved)); n != 1 {
		t.Errorf("the moved file holds %d packets", n)
	}
}

// TestUserNamedFifoIsAStream checks -w FIFO: the fifo the user names is
// written as a stream (not replaced), and cannot rotate.
func TestUserNamedFifoIsAStream(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "live")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Path: fifo, FileSize: 1000, Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "needs regular files") {
		t.Fatalf("rotation into a fifo: %v", err)
	}
	read := make(chan []byte)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			read <- nil
			return
		}
		b, _ := io.ReadAll(f)
		f.Close()
		read <- b
	}()
	r, err := Open(Options{Path: fifo, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Stream() {
		t.Error("a fifo is not written as a stream")
	}
	r.WritePacket(0, time.Unix(1, 0), numberedFrame(1, 100), 100)
	r.Rotate() // ignored: a second header would corrupt the stream
	r.WritePacket(0, time.Unix(2, 0), numberedFrame(2, 100), 100)
	r.Close()
	b := <-read
	out := filepath.Join(t.TempDir(), "copy.pcap")
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, out)); n != 2 {
		t.Errorf("the fifo's reader got %d packets, want 2", n)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the fifo was replaced: %v", err)
	}
}

// TestKeepCountsAnEarlierRunsFiles checks --keep across a restart: the
// capture files an earlier run left under the name pattern count against
// the ring, oldest removed first; other files are left alone.
func TestKeepCountsAnEarlierRunsFiles(t *testing.T) {
	dir := t.TempDir()
	pcapHeader := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0}
	old := []string{"k-0100.pcap", "k-0101.pcap", "k-0102.pcap1", "k-0103.pcap"}
	for i, name := range old {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pcapHeader, 0o640); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1700000000+int64(i), 0)
		os.Chtimes(p, mt, mt)
	}
	others := map[string]string{"k-0099.pcap": "notes, not a capture", "other.pcap": string(pcapHeader), "k-0098.pcap.gz": "gzip"}
	for name, content := range others {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{time.Date(2026, 1, 2, 3, 4, 0, 0, time.Local)}
	r, err := Open(Options{Path: filepath.Join(dir, "k-%M%S.pcap"), LinkType: layers.LinkTypeEthernet,
		Interval: time.Second, Keep: 3, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Second)
	if err := r.Tick(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	want := []string{"k-0098.pcap.gz", "k-0099.pcap", "k-0103.pcap", "k-0400.pcap", "k-0401.pcap", "other.pcap"}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
}

// TestDevNullIsAStream checks -w /dev/null (a benchmark's sink) is written
// as a stream, not replaced.
func TestDevNullIsAStream(t *testing.T) {
	r, err := Open(Options{Path: os.DevNull, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.WritePacket(0, time.Unix(1, 0), numberedFrame(1, 100), 100)
	if err := r.Flush(); err != nil || !r.Stream() {
		t.Fatalf("flush: %v, stream %v", err, r.Stream())
	}
	r.Close()
	if st, err := os.Lstat(os.DevNull); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s is no longer a device: %v", os.DevNull, err)
	}
	if r.Stats().Packets.Load() != 1 {
		t.Errorf("packets written %d", r.Stats().Packets.Load())
	}
}

// TestKeepCountsCompressedFiles checks --keep with -z gzip: what gzip
// makes of a file of the ring (NAME.gz, with the file's modification
// time) counts in its place and is removed in its turn, so that only the
// newest N remain; a NAME.gz that gzip did not make of the ring's file is
// left alone.
func TestKeepCountsCompressedFiles(t *testing.T) {
	dir := t.TempDir()
	r, clk := openKeepRing(t, dir)
	r.OnClose(func(f ClosedFile) {
		if filepath.Base(f.Name) == "k-0401.pcap" {
			// Someone else's file where gzip's output would go.
			os.Remove(f.Name)
			if err := os.WriteFile(f.Name+".gz", []byte("\x1f\x8bsomeone else's"), 0o644); err != nil {
				t.Error(err)
			}
			return
		}
		if out, err := exec.Command("gzip", f.Name).CombinedOutput(); err != nil {
			t.Errorf("gzip %s: %v %s", f.Name, err, out)
		}
	})
	for i := range 8 {
		r.WritePacket(0, clk.t, numberedFrame(i, 100), 100)
		clk.t = clk.t.Add(time.Second)
		if err := r.Tick(); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	want := []string{"k-0401.pcap.gz", "k-0406.pcap.gz", "k-0407.pcap.gz", "k-0408.pcap.gz"}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v (the newest 3, compressed, and someone else's)", got, want)
	}
}

// TestKeepRemovesWhatASlowCompressorMakes checks --keep with a -z command
// that was still compressing a file when the ring removed it: the NAME.gz
// it leaves on finishing (the file's time, gzip's magic) is removed at the
// next rotation, so no more than one such file ever outlives the ring.
func TestKeepRemovesWhatASlowCompressorMakes(t *testing.T) {
	dir := t.TempDir()
	r, clk := openKeepRing(t, dir)
	mtimes := map[string]time.Time{}
	r.OnClose(func(f ClosedFile) {
		st, err := os.Stat(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		mtimes[f.Name] = st.ModTime()
	})
	done := map[string]bool{}
	for i := range 12 {
		r.WritePacket(0, clk.t, numberedFrame(i, 100), 100)
		clk.t = clk.t.Add(time.Second)
		if err := r.Tick(); err != nil {
			t.Fatal(err)
		}
		// The command finishes only once the ring removed its file, as
		// gzip does: NAME.gz with NAME's modification time.
		for name, mt := range mtimes {
			if done[name] || fileExists(name) {
				continue
			}
			done[name] = true
			if err := os.WriteFile(name+".gz", []byte("\x1f\x8b\x08compressed"), 0o640); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(name+".gz", mt, mt)
		}
		if got := testkit.DirNames(t, dir); len(got) > 4 {
			t.Fatalf("after %d periods: %v, want the newest 3 and at most one compressed file", i+1, got)
		}
	}
	r.Close()
}

// openKeepRing opens a -G 1 --keep 3 ring of k-MMSS.pcap files in dir on
// a clock of the test's.
func openKeepRing(t *testing.T, dir string) (*Rotator, *clock) {
	t.Helper()
	clk := &clock{time.Date(2026, 1, 2, 3, 4, 0, 0, time.Local)}
	r, err := Open(Options{Path: filepath.Join(dir, "k-%M%S.pcap"), LinkType: layers.LinkTypeEthernet,
		Interval: time.Second, Keep: 3, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return r, clk
}
