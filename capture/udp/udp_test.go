package udp

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

func listen(t testing.TB, cfg Config) *Source {
	t.Helper()
	cfg.Addr = netip.MustParseAddr("::1")
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, s *Source) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(s.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReadBatchKeepsLengthTimeAndSender(t *testing.T) {
	s := listen(t, Config{SnapLen: 100, BatchSize: 8})
	c := dial(t, s)
	sizes := []int{1, 14, 100, 1500}
	before := time.Now()
	for i, n := range sizes {
		if _, err := c.Write(bytes.Repeat([]byte{byte(i + 1)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < len(sizes) {
		pkts, err := s.Read(8)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		for _, p := range pkts {
			i := len(got)
			if p.Length != sizes[i] {
				t.Errorf("datagram %d: length %d, want %d", i, p.Length, sizes[i])
			}
			if want := min(sizes[i], 100); len(p.Data) != want || p.Data[0] != byte(i+1) {
				t.Errorf("datagram %d: %d bytes kept, want %d", i, len(p.Data), want)
			}
			if p.Timestamp.Before(before.Add(-time.Second)) || p.Timestamp.After(time.Now()) {
				t.Errorf("datagram %d: timestamp %v not a receive time", i, p.Timestamp)
			}
			if want := c.LocalAddr().(*net.UDPAddr).AddrPort(); p.Src != want {
				t.Errorf("datagram %d: source %v, want %v", i, p.Src, want)
			}
			got = append(got, p.Length)
		}
	}
}

func TestReadDeadline(t *testing.T) {
	s := listen(t, Config{})
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for start := time.Now(); ; {
		pkts, err := s.Read(64)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		// Before the deadline, an idle socket yields empty batches.
		if err != nil || len(pkts) != 0 || time.Since(start) > 5*time.Second {
			t.Fatalf("got %d packets, err %v; want empty batches, then deadline exceeded", len(pkts), err)
		}
	}
}

func TestDropsCountsOverflow(t *testing.T) {
	// A 64 KiB buffer (the kernel's minimum is far above it only by a
	// little) cannot hold 2000 datagrams sent without reading.
	s := listen(t, Config{BufferSize: 64 << 10})
	c := dial(t, s)
	const sent = 2000
	payload := make([]byte, 1000)
	for range sent {
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	var read uint64
	s.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		pkts, err := s.Read(64)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		read += uint64(len(pkts))
	}
	drops, err := s.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if drops == 0 || read+drops != sent {
		t.Fatalf("read %d + dropped %d != sent %d", read, drops, sent)
	}
}

func TestListenErrors(t *testing.T) {
	s := listen(t, Config{})
	_, err := Listen(Config{Addr: netip.MustParseAddr("::1"), Port: s.LocalAddr().Port()})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("address already in use")) {
		t.Fatalf("second listener on the same port: err = %v", err)
	}
	_, err = Listen(Config{Addr: netip.MustParseAddr("192.0.2.77"), Port: 3010})
	if err == nil {
		t.Fatal("listening on an address this host does not have succeeded")
	}
}

// BenchmarkRead measures the receive path from a full socket buffer and
// proves it allocates nothing per packet.
func BenchmarkRead(b *testing.B) {
	s := listen(b, Config{BufferSize: 64 << 20})
	c := dial(b, s)
	payload := make([]byte, 1000)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		burst := min(b.N-done, 20000)
		for range burst {
			c.Write(payload)
		}
		b.StartTimer()
		for got := 0; got < burst; {
			pkts, err := s.Read(64)
			if err != nil {
				b.Fatal(err)
			}
			got += len(pkts)
		}
		done += burst
	}
}

func TestCoalesceOnlyWithALargeBuffer(t *testing.T) {
	small := listen(t, Config{BufferSize: 64 << 10})
	if small.coalesce.Nsec != 0 {
		t.Errorf("a %d-byte buffer pauses %v after short batches; it could overflow", small.ReceiveBuffer(), small.coalesce)
	}
	large := listen(t, Config{BufferSize: 16 << 20})
	if large.ReceiveBuffer() >= minCoalesceBuffer && large.coalesce.Nsec != DefaultCoalesce.Nanoseconds() {
		t.Errorf("a %d-byte buffer does not pause (%v)", large.ReceiveBuffer(), large.coalesce)
	}
}
