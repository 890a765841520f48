package sink

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/decap/reassembly"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// TestReassembleOuterFragments runs the engine over a real capture of NIC
// envelopes the kernel fragmented (3 datagrams in 7 IPv6 fragments), in
// order and each datagram's fragments reversed, in batches of every size:
// each inner frame is written once, with the timestamp of the fragment
// that completed it, and the identity holds in every snapshot.
func TestReassembleOuterFragments(t *testing.T) {
	frags := readPcap(t, "../testdata/envelopes/nic-frag.pcap")
	// What the fragments carry, put together by hand: the fragmentable
	// parts after Ether | IPv6 | fragment header, in the capture's order,
	// then the UDP header cut off.
	var want [][]byte
	var whole []byte
	for _, p := range frags {
		whole = append(whole, p.Data[14+40+8:]...)
		if binary.BigEndian.Uint16(p.Data[14+40+2:])&1 == 0 { // the last fragment
			want, whole = append(want, whole[8:]), nil
		}
	}
	if len(want) != 3 {
		t.Fatalf("the capture holds %d datagrams, want 3", len(want))
	}
	reversed := slices.Clone(frags)
	slices.Reverse(reversed[0:2])
	slices.Reverse(reversed[2:4])
	slices.Reverse(reversed[4:7])
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, in := range map[string][]pcapfile.Packet{"in order": frags, "reversed": reversed} {
		for _, batch := range []int{1, 2, 3, 7} {
			path := filepath.Join(t.TempDir(), "out.pcap")
			out, err := pcapout.Open(pcapout.Options{Path: path, LinkType: layers.LinkTypeEthernet, SnapLen: 65535, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			var pkts []capture.Packet
			for _, p := range in {
				pkts = append(pkts, capture.Packet{Data: p.Data, Length: p.Info.Length, Timestamp: p.Info.Timestamp, LinkType: layers.LinkTypeEthernet})
			}
			src := &fakeSource{framing: capture.Framing{Kind: capture.Frames}, pkts: pkts}
			var e *Engine
			src.beforeBatch = func(int) {
				if s := snapshot(e); s.Accounted() != s.Received {
					t.Errorf("%s, batches of %d: received %d, accounted %d: %+v", name, batch, s.Received, s.Accounted(), s.Fragments)
				}
			}
			e = New(Config{Source: src, Output: out, Logger: logger, BatchSize: batch})
			if err := e.Run(); err != nil {
				t.Fatal(err)
			}
			s := e.Stats()
			f := s.Fragments
			if s.Written != 3 || s.Received != 7 || s.Accounted() != 7 || f.Absorbed != 4 || f.Completing != 3 || f.Held != 0 || f.EvictedTotal() != 0 {
				t.Errorf("%s, batches of %d: written %d of received %d, accounted %d, fragments %+v", name, batch, s.Written, s.Received, s.Accounted(), f)
			}
			got, _, err := pcapfile.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range min(len(got), len(want)) {
				if !bytes.Equal(got[i].Data, want[i]) {
					t.Errorf("%s: frame %d differs (%d bytes, want %d)", name, i, len(got[i].Data), len(want[i]))
				}
				// The completing fragment is each datagram's last in
				// the input: 2, 4 and 7.
				if ts := in[[]int{1, 3, 6}[i]].Info.Timestamp; !got[i].Info.Timestamp.Equal(ts) {
					t.Errorf("%s: frame %d at %v, want %v", name, i, got[i].Info.Timestamp, ts)
				}
			}
		}
	}
}

// TestPendingFragmentsAtTheEnd: a datagram missing a fragment is held
// while the capture runs, expires on the packets' clock, and what is
// still incomplete when the input ends is counted so.
func TestPendingFragmentsAtTheEnd(t *testing.T) {
	frags := readPcap(t, "../testdata/envelopes/nic-frag.pcap")
	envelope := readPcap(t, "../testdata/envelopes/nic-ether.pcap")[0].Data
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	out, err := pcapout.Open(pcapout.Options{Path: filepath.Join(t.TempDir(), "out.pcap"), LinkType: layers.LinkTypeEthernet, SnapLen: 65535, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration, data []byte) capture.Packet {
		return capture.Packet{Data: data, Length: len(data), Timestamp: time.Unix(1700000000, 0).Add(d), LinkType: layers.LinkTypeEthernet}
	}
	pkts := []capture.Packet{
		at(0, frags[0].Data),              // the first datagram's first half: times out
		at(time.Second, frags[4].Data),    // the third's first third: incomplete at the end
		at(40*time.Second, envelope),      // not a fragment, but the clock moves on
		at(41*time.Second, frags[3].Data), // the second's last half: incomplete at the end
	}
	src := &fakeSource{framing: capture.Framing{Kind: capture.Frames}, pkts: pkts}
	var e *Engine
	var held []uint64
	src.beforeBatch = func(int) { held = append(held, snapshot(e).Fragments.Held) }
	e = New(Config{Source: src, Output: out, Logger: logger, BatchSize: 1})
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	s := e.Stats()
	f := s.Fragments
	if s.Written != 1 || s.Accounted() != 4 || f.Evicted[reassembly.Timeout] != 2 || f.Evicted[reassembly.Incomplete] != 1 || f.Held != 0 {
		t.Errorf("written %d, accounted %d, fragments %+v", s.Written, s.Accounted(), f)
	}
	if !slices.Equal(held, []uint64{0, 1, 2, 0}) {
		t.Errorf("held before each batch: %v, want [0 1 2 0]", held)
	}
}

// snapshot is what Stats returns, without the source's drops: the fake
// source holds its lock while it calls beforeBatch.
func snapshot(e *Engine) Stats {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	return e.snap
}

// BenchmarkEngineFrames measures whole frames (unfragmented NIC envelopes,
// as -r and -i give them) through the engine to a file: the path that now
// asks whether a frame is a fragment.
func BenchmarkEngineFrames(b *testing.B) {
	env, _, err := pcapfile.ReadFile("../testdata/envelopes/nic-ether.pcap")
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	pkts := make([]capture.Packet, b.N)
	for i := range pkts {
		p := env[i%len(env)]
		pkts[i] = capture.Packet{Data: p.Data, Length: p.Info.Length, Timestamp: p.Info.Timestamp, LinkType: layers.LinkTypeEthernet}
	}
	out, err := pcapout.Open(pcapout.Options{Path: filepath.Join(b.TempDir(), "b.pcap"), LinkType: layers.LinkTypeEthernet, SnapLen: 65535, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	e := New(Config{Source: &fakeSource{framing: capture.Framing{Kind: capture.Frames}, pkts: pkts}, Output: out, Logger: logger})
	b.ReportAllocs()
	b.ResetTimer()
	if err := e.Run(); err != nil {
		b.Fatal(err)
	}
}

// TestEnvelopeTransport: only fragments that can hold an envelope are held
// for reassembly; IPv6's extension header numbers mean other protocols in
// IPv4 (0 is HOPOPT there, never a header before UDP).
func TestEnvelopeTransport(t *testing.T) {
	for _, tt := range []struct {
		v6    bool
		proto uint8
		want  bool
	}{
		{false, 17, true}, {false, 47, true}, {true, 17, true}, {true, 47, true},
		{true, 0, true}, {true, 43, true}, {true, 51, true}, {true, 60, true},
		{false, 0, false}, {false, 43, false}, {false, 51, false}, {false, 60, false},
		{false, 6, false}, {true, 6, false}, {true, 58, false},
	} {
		if got := envelopeTransport(tt.v6, tt.proto); got != tt.want {
			t.Errorf("envelopeTransport(v6 %v, %d) = %v, want %v", tt.v6, tt.proto, got, tt.want)
		}
	}
}
