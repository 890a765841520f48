package pcapout

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket/layers"
)

// clock is a settable time source for -G tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// numberedFrame returns a distinct frame of n bytes for packet number i.
func numberedFrame(i, n int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, n)
	copy(b, fmt.Sprintf("%08d", i))
	return b
}

// readAll reads a capture file back and fails the test if it is not a
// complete Ethernet pcap.
func readAll(t *testing.T, name string) []pcapfile.Packet {
	t.Helper()
	pkts, lt, err := pcapfile.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if lt != layers.LinkTypeEthernet {
		t.Fatalf("%s: link type %v", name, lt)
	}
	return pkts
}

func TestSizeRotationKeepsEveryPacketWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cap.pcap")
	r, err := Open(Options{Path: path, LinkType: layers.LinkTypeEthernet, FileSize: 10 << 10, FlushBytes: 4096, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	ts := time.Unix(1700000000, 123456789)
	for i := range n {
		r.WritePacket(0, ts.Add(time.Duration(i)), numberedFrame(i, 60+i*7%1400), 60+i*7%1400)
	}
	r.Close()
	names := testkit.DirNames(t, dir)
	if len(names) < 5 {
		t.Fatalf("files = %v, want several 10 KiB files", names)
	}
	var got []pcapfile.Packet
	for i := range names {
		name := "cap.pcap"
		if i > 0 {
			name = fmt.Sprintf("cap.pcap%d", i)
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("tcpdump naming: %v (have %v)", err, names)
		}
		if st.Size() > 10<<10 {
			t.Errorf("%s is %d bytes, over the 10 KiB limit", name, st.Size())
		}
		got = append(got, readAll(t, filepath.Join(dir, name))...)
	}
	if len(got) != n {
		t.Fatalf("read back %d packets, want %d", len(got), n)
	}
	for i, rec := range got {
		if !bytes.Equal(rec.Data, numberedFrame(i, 60+i*7%1400)) {
			t.Fatalf("packet %d differs", i)
		}
		if !rec.Info.Timestamp.Equal(ts.Add(time.Duration(i))) {
			t.Fatalf("packet %d timestamp %v, want nanosecond %v", i, rec.Info.Timestamp, ts.Add(time.Duration(i)))
		}
	}
	st := r.Stats()
	if st.Packets.Load() != n || st.Rotations.Load() != uint64(len(names)-1) || st.Dropped.Load() != 0 {
		t.Errorf("stats packets=%d rotations=%d dropped=%d", st.Packets.Load(), st.Rotations.Load(), st.Dropped.Load())
	}
}

func TestSizeRotationRing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ring")
	r, err := Open(Options{Path: path, LinkType: layers.LinkTypeEthernet, FileSize: 4 << 10, FileCount: 3, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		r.WritePacket(0, time.Unix(int64(i), 0), numberedFrame(i, 1000), 1000)
	}
	r.Close()
	if got, want := testkit.DirNames(t, dir), []string{"ring0", "ring1", "ring2"}; !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	// The newest packet is in the file the ring wrote last.
	last := 0
	for _, name := range []string{"ring0", "ring1", "ring2"} {
		for _, rec := range readAll(t, filepath.Join(dir, name)) {
			last = max(last, int(rec.Info.Timestamp.Unix()))
		}
	}
	if last != 99 {
		t.Errorf("newest packet in ring = %d, want 99", last)
	}
}

func TestTimeRotationOnTheClockWhenIdle(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{time.Date(2026, 1, 2, 3, 4, 0, 0, time.Local)}
	r, err := Open(Options{Path: filepath.Join(dir, "t-%H%M%S.pcap"), LinkType: layers.LinkTypeEthernet,
		Interval: 10 * time.Second, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var closed []ClosedFile
	r.OnClose(func(f ClosedFile) {
		if _, err := os.Stat(f.Name); err != nil {
			t.Errorf("announced %s, which is not there: %v", f.Name, err)
		}
		closed = append(closed, f)
	})
	r.AddInterface(Interface{Name: "vm-1"})
	r.WritePacket(0, clk.t, numberedFrame(1, 100), 100)
	r.WritePacket(0, clk.t.Add(time.Second), numberedFrame(2, 100), 100)
	if d := r.Deadline(); !d.Equal(clk.t.Add(10 * time.Second)) {
		t.Fatalf("deadline = %v", d)
	}
	start := clk.t
	clk.t = clk.t.Add(5 * time.Second)
	if err := r.Tick(); err != nil || len(testkit.DirNames(t, dir)) != 1 || len(closed) != 0 {
		t.Fatalf("rotated early: %v %v", err, testkit.DirNames(t, dir))
	}
	// Two idle periods: each still produces its own (empty, valid) file.
	for range 2 {
		clk.t = clk.t.Add(10 * time.Second)
		if err := r.Tick(); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	want := []string{"t-030400.pcap", "t-030415.pcap", "t-030425.pcap"}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	if n := len(readAll(t, filepath.Join(dir, want[0]))); n != 2 {
		t.Errorf("first file has %d packets, want 2", n)
	}
	for _, name := range want[1:] {
		if n := len(readAll(t, filepath.Join(dir, name))); n != 0 {
			t.Errorf("%s has %d packets, want 0", name, n)
		}
	}
	// Each file was announced once, as it closed, with what it holds.
	if len(closed) != len(want) {
		t.Fatalf("%d file-closed events, want %d: %+v", len(closed), len(want), closed)
	}
	for i, f := range closed {
		st, err := os.Stat(filepath.Join(dir, want[i]))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name != filepath.Join(dir, want[i]) || f.Bytes != uint64(st.Size()) || f.Format != FormatPcap {
			t.Errorf("event %d = %+v; want %s of %d bytes", i, f, want[i], st.Size())
		}
	}
	if f := closed[0]; f.Packets != 2 || !f.First.Equal(start) || !f.Last.Equal(start.Add(time.Second)) || !slices.Equal(f.Interfaces, []string{"vm-1"}) {
		t.Errorf("first file's event = %+v", f)
	}
	if f := closed[1]; f.Packets != 0 || !f.First.IsZero() || !f.Last.IsZero() || f.Interfaces != nil {
		t.Errorf("an empty file's event = %+v", f)
	}
}

func TestTimeRotationFileLimit(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{time.Date(2026, 1, 2, 3, 4, 0, 0, time.Local)}
	r, err := Open(Options{Path: filepath.Join(dir, "t-%M%S"), LinkType: layers.LinkTypeEthernet,
		Interval: time.Second, FileCount: 2, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Second)
	if err := r.Tick(); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(time.Second)
	if err := r.Tick(); !errors.Is(err, ErrFileLimit) {
		t.Fatalf("third period: err = %v, want ErrFileLimit", err)
	}
	r.Close()
	if got := testkit.DirNames(t, dir); !slices.Equal(got, []string{"t-0400", "t-0401"}) {
		t.Fatalf("files = %v", got)
	}
}

func TestRotateOnDemandNumbersFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pcap")
	r, err := Open(Options{Path: path, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r.WritePacket(0, time.Unix(1, 0), numberedFrame(i, 64), 64)
		r.Rotate()
	}
	r.Close()
	want := []string{"out.pcap", "out.pcap1", "out.pcap2", "out.pcap3"}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files = %v, want %v", got, want)
	}
	for i, name := range want {
		if n := len(readAll(t, filepath.Join(dir, name))); (i < 3 && n != 1) || (i == 3 && n != 0) {
			t.Errorf("%s has %d packets", name, n)
		}
	}
}

func TestSnapLenCutsButKeepsLength(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.pcap")
	r, err := Open(Options{Path: path, SnapLen: 96, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.WritePacket(0, time.Unix(1, 0), numberedFrame(1, 1500), 1500)
	r.Close()
	got := readAll(t, path)
	if len(got) != 1 || len(got[0].Data) != 96 || got[0].Info.Length != 1500 {
		t.Fatalf("got %d packets, caplen %d, len %d; want 1, 96, 1500", len(got), len(got[0].Data), got[0].Info.Length)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "planted.pcap")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"missing directory", Options{Path: filepath.Join(dir, "no/such/dir.pcap")}, "no such file or directory"},
		{"symlink in place of the file", Options{Path: link}, "a symlink: not a regular file"},
		{"rotation to stdout", Options{Path: "-", FileSize: 1000}, "needs a file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Logger = slog.New(slog.DiscardHandler)
			_, err := Open(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("the symlink's target was created")
	}
}

func BenchmarkWritePacket(b *testing.B) {
	r, err := Open(Options{Path: filepath.Join(b.TempDir(), "b.pcap"), LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	data := numberedFrame(1, 1000)
	ts := time.Now()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.WritePacket(0, ts, data, len(data))
	}
}
