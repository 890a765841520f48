package sink

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/udp"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

type fixture struct {
	eng  *Engine
	src  *udp.Source
	conn *net.UDPConn
	dir  string
	done chan error
}

func start(t *testing.T, cfg Config, opts pcapout.Options) *fixture {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := udp.Listen(udp.Config{Addr: netip.MustParseAddr("::1"), BufferSize: 8 << 20, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	dir := t.TempDir()
	opts.Path = filepath.Join(dir, "out.pcap")
	opts.LinkType = layers.LinkTypeEthernet
	opts.Logger = logger
	out, err := pcapout.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(src.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cfg.Source, cfg.Output, cfg.Logger = src, out, logger
	f := &fixture{eng: New(cfg), src: src, conn: conn, dir: dir, done: make(chan error, 1)}
	go func() { f.done <- f.eng.Run() }()
	return f
}

func (f *fixture) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not stop")
	}
}

func countPackets(t *testing.T, name string) int { return len(readPcap(t, name)) }

func TestEveryPacketAccountedFor(t *testing.T) {
	f := start(t, Config{}, pcapout.Options{})
	frame := make([]byte, 60)
	sent := 0
	for i := range 300 {
		payload := frame
		if i%10 == 0 {
			payload = frame[:i%14] // shorter than an Ethernet header
		}
		if _, err := f.conn.Write(payload); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	testkit.Eventually(t, 5*time.Second, "all datagrams received", func() bool {
		s := f.eng.Stats()
		if s.KernelDrops > 0 {
			t.Fatalf("the socket dropped %d datagrams", s.KernelDrops)
		}
		return s.Received == uint64(sent)
	})
	f.eng.Stop()
	f.wait(t)
	s := f.eng.Stats()
	if s.Rejected[decap.ShortFrame] != 30 || s.Written != 270 {
		t.Errorf("malformed %d, written %d; want 30, 270", s.Rejected[decap.ShortFrame], s.Written)
	}
	if s.Received != s.Written+s.MalformedTotal()+s.WriteDropped {
		t.Errorf("received %d != written %d + malformed %d + dropped %d", s.Received, s.Written, s.MalformedTotal(), s.WriteDropped)
	}
	if n := countPackets(t, filepath.Join(f.dir, "out.pcap")); n != 270 {
		t.Errorf("file holds %d packets, want 270", n)
	}
}

func TestCountStopsAtExactlyCount(t *testing.T) {
	f := start(t, Config{Count: 100, BatchSize: 64}, pcapout.Options{})
	for range 250 {
		f.conn.Write(make([]byte, 64))
	}
	f.wait(t)
	if n := countPackets(t, filepath.Join(f.dir, "out.pcap")); n != 100 {
		t.Fatalf("file holds %d packets, want 100", n)
	}
	// What arrived past the count is received and dropped as stopped,
	// never written.
	if s := f.eng.Stats(); s.Written != 100 || s.Received != s.Written+s.Stopped || s.Accounted() != s.Received {
		t.Errorf("received %d, written %d, stopped %d", s.Received, s.Written, s.Stopped)
	}
}

func TestRotateAndStopWakeAnIdleEngine(t *testing.T) {
	f := start(t, Config{}, pcapout.Options{})
	testkit.Eventually(t, 5*time.Second, "engine running", f.eng.Running)
	f.eng.Rotate()
	testkit.Eventually(t, 5*time.Second, "rotation while idle", func() bool {
		_, err := os.Stat(filepath.Join(f.dir, "out.pcap1"))
		return err == nil
	})
	f.eng.Stop()
	f.wait(t)
}

// TestIdleFlushAfterAFullBatch sends exactly one full batch: no short batch
// follows, yet the file must be written while sinkd idles.
func TestIdleFlushAfterAFullBatch(t *testing.T) {
	f := start(t, Config{BatchSize: 16}, pcapout.Options{})
	testkit.Eventually(t, 5*time.Second, "engine running", f.eng.Running)
	for range 16 {
		f.conn.Write(make([]byte, 64))
	}
	testkit.Eventually(t, 5*time.Second, "a full batch written while idle", func() bool { return f.eng.Stats().Written == 16 })
	f.eng.Stop()
	f.wait(t)
}

func TestClockRotationWhileIdle(t *testing.T) {
	f := start(t, Config{}, pcapout.Options{Interval: time.Second, FileSize: 1 << 20})
	testkit.Eventually(t, 5*time.Second, "two rotations with no traffic", func() bool { return f.eng.Stats().Rotations >= 2 })
	f.eng.Stop()
	f.wait(t)
}

func BenchmarkEngine(b *testing.B) {
	benchEngine(b, pcapout.Options{}, Config{})
}

// benchEngine measures socket → decapsulate → (filter, port map) → file
// for 1000 B frames from 10.0.0.1, at most 20000 of them (what one socket
// buffer holds). cfg gives the filter and the port map.
func benchEngine(b *testing.B, opts pcapout.Options, cfg Config) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := udp.Listen(udp.Config{Addr: netip.MustParseAddr("::1"), BufferSize: 64 << 20, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	opts.Path = filepath.Join(b.TempDir(), "b.pcap")
	opts.LinkType, opts.Logger = layers.LinkTypeEthernet, logger
	out, err := pcapout.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(src.LocalAddr()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, 1000)
	copy(payload[12:], []byte{0x08, 0x00, 0x45, 0, 0x03, 0xda, 0, 0, 0, 0, 64, 6}) // IPv4, TCP
	copy(payload[26:], []byte{10, 0, 0, 1})
	for range min(b.N, 20000) {
		conn.Write(payload)
	}
	if d, err := src.Drops(); err != nil || d > 0 {
		b.Fatalf("the socket dropped %d datagrams before the run (%v)", d, err)
	}
	cfg.Source, cfg.Output, cfg.Count, cfg.Logger = src, out, uint64(min(b.N, 20000)), logger
	cfg.PerSource = opts.Format == pcapout.FormatPcapng
	eng := New(cfg)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	if err := eng.Run(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if b.N > 20000 {
		b.Skip("one socket buffer holds 20000 packets; raise -benchtime no further")
	}
}

// queued starts an engine on a socket that already holds n datagrams and
// stops it before it reads one: every queued datagram must be drained.
func queued(t *testing.T, n int, cfg Config) (Stats, string) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := udp.Listen(udp.Config{Addr: netip.MustParseAddr("::1"), BufferSize: 8 << 20, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	conn, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(src.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range n {
		if _, err := conn.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := src.Drops(); d != 0 {
		t.Fatalf("the socket dropped %d datagrams", d)
	}
	name := filepath.Join(t.TempDir(), "out.pcap")
	out, err := pcapout.Open(pcapout.Options{Path: name, LinkType: layers.LinkTypeEthernet, SnapLen: 65535, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Source, cfg.Output, cfg.Logger = src, out, logger
	eng := New(cfg)
	eng.Stop()
	if err := eng.Run(); err != nil {
		t.Fatal(err)
	}
	// Datagrams sent after the stop are not received, and not counted as
	// the kernel's drops either.
	conn.Write(make([]byte, 100))
	s := eng.Stats()
	if s.Received != uint64(n) || s.Accounted() != s.Received || s.KernelDrops != 0 {
		t.Errorf("received %d of %d, accounted %d, kernel drops %d", s.Received, n, s.Accounted(), s.KernelDrops)
	}
	return s, name
}

func TestStopWritesWhatIsQueued(t *testing.T) {
	s, name := queued(t, 3000, Config{})
	if s.Written != 3000 || s.Stopped != 0 {
		t.Errorf("written %d, stopped %d; want 3000, 0", s.Written, s.Stopped)
	}
	if n := countPackets(t, name); n != 3000 {
		t.Errorf("file holds %d packets", n)
	}
}

func TestStopCountsWhatItCannotWrite(t *testing.T) {
	for _, tt := range []struct {
		name             string
		cfg              Config
		written, stopped uint64
	}{
		{"no time to write", Config{DrainTimeout: -1}, 0, 500},
		{"the count is reached", Config{Count: 120}, 120, 380},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, name := queued(t, 500, tt.cfg)
			if s.Written != tt.written || s.Stopped != tt.stopped {
				t.Errorf("written %d, stopped %d; want %d, %d", s.Written, s.Stopped, tt.written, tt.stopped)
			}
			if n := countPackets(t, name); n != int(tt.written) {
				t.Errorf("file holds %d packets", n)
			}
		})
	}
}
