package sink

import (
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
)

// runFake runs an engine over pkts into a pcapng file and returns its
// stats and, per interface name, the packets written there.
func runFake(t *testing.T, cfg Config, pkts []capture.Packet) (Stats, map[string]int) {
	t.Helper()
	return runSource(t, cfg, &fakeSource{framing: payloads, pkts: pkts}, nil)
}

// runSource is runFake over src; ready, when set, gets the engine before
// it runs.
func runSource(t *testing.T, cfg Config, src *fakeSource, ready func(*Engine)) (Stats, map[string]int) {
	t.Helper()
	pkts := src.pkts
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	name := filepath.Join(t.TempDir(), "out.pcapng")
	out, err := pcapout.Open(pcapout.Options{Path: name, Format: pcapout.FormatPcapng, LinkType: layers.LinkTypeEthernet,
		SnapLen: 65535, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pkts {
		pkts[i].Timestamp, pkts[i].Length = time.Unix(1700000000, int64(i)), len(pkts[i].Data)
	}
	cfg.Source, cfg.Output, cfg.Logger, cfg.PerSource = src, out, logger, true
	eng := New(cfg)
	if ready != nil {
		ready(eng)
	}
	if err := eng.Run(); err != nil {
		t.Fatal(err)
	}
	st := eng.Stats()
	if st.Accounted() != st.Received || st.Received != uint64(len(pkts)) {
		t.Errorf("received %d of %d, accounted %d", st.Received, len(pkts), st.Accounted())
	}
	got := map[string]int{}
	for ifc, frames := range testkit.FramesByInterface(t, name) {
		got[ifc] = len(frames)
	}
	return st, got
}

func TestSourcesByPortMap(t *testing.T) {
	m, _, err := portmap.Parse([]byte(`{"version": 2, "ports": [
		{"name": "vm-1", "source": "2001:db8::10", "kind": "vf", "ipv4": "10.0.0.1", "underlay_route": "fc00::1/128"},
		{"name": "vm-2", "source": "2001:db8::10", "kind": "vf", "ipv6": "fd00::2", "mac": "02:00:00:00:00:02",
		 "underlay_route": "fc00::2/128"},
		{"name": "pf0", "source": "2001:db8::10", "kind": "pf"},
		{"name": "tagged", "source": "2001:db8::11", "kind": "vf", "tag": 1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	hv := netip.MustParseAddrPort("[2001:db8::10]:5000")
	hv2 := netip.MustParseAddrPort("[2001:db8::11]:5000")
	send := func(n int, src netip.AddrPort, tag uint32, frame []byte) []capture.Packet {
		var p []capture.Packet
		for range n {
			p = append(p, capture.Packet{Data: frame, Src: src, FlowLabel: tag})
		}
		return p
	}
	var pkts []capture.Packet
	pkts = append(pkts, send(5, hv, 0, testkit.InnerFrame(t, "02:00:00:00:00:09", "10.0.0.1", "10.0.0.2"))...)    // vm-1 by IPv4
	pkts = append(pkts, send(4, hv, 0, testkit.InnerFrame(t, "02:00:00:00:00:02", "fe80::2", "ff02::1"))...)      // vm-2 by MAC
	pkts = append(pkts, send(3, hv, 0, testkit.InnerFrame(t, "02:00:00:00:00:09", "fd00::2", "fd00::1"))...)      // vm-2 by IPv6
	pkts = append(pkts, send(6, hv, 0, testkit.InnerFrame(t, "02:00:00:00:00:09", "2001:db8::99", "fc00::2"))...) // PF0 towards vm-2
	pkts = append(pkts, send(2, hv, 0, testkit.InnerFrame(t, "02:00:00:00:00:09", "10.9.9.9", "10.0.0.2"))...)    // no entry
	pkts = append(pkts, send(7, hv, 99, testkit.InnerFrame(t, "02:00:00:00:00:09", "10.9.9.9", "10.0.0.2"))...)   // unknown tag
	pkts = append(pkts, send(3, hv, 99, testkit.InnerFrame(t, "02:00:00:00:00:09", "10.0.0.1", "10.0.0.2"))...)   // unknown tag, vm-1's address
	pkts = append(pkts, send(8, hv2, 1, testkit.InnerFrame(t, "02:00:00:00:00:09", "10.9.9.9", "10.0.0.2"))...)   // known tag
	pkts = append(pkts, send(1, hv2, 2, testkit.InnerFrame(t, "02:00:00:00:00:09", "10.9.9.9", "10.0.0.2"))...)   // unknown tag
	st, got := runFake(t, Config{PortMap: &m}, pkts)
	want := map[string]int{"vm-1": 5, "vm-2": 7, "pf0 to vm-2": 6, "2001:db8::10": 12, "tagged": 8, "2001:db8::11": 1}
	if len(got) != len(want) {
		t.Errorf("interfaces %v, want %v", got, want)
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("interface %q: %d packets, want %d (all: %v)", name, got[name], n, got)
		}
	}
	if st.UnknownTags != 11 || st.Sources != 6 || st.Overflowed != 0 {
		t.Errorf("unknown tags %d, sources %d, overflowed %d; want 11, 6, 0", st.UnknownTags, st.Sources, st.Overflowed)
	}
}

// TestSetPortMap: a map read again names the copies from the next batch
// on; a port both maps list keeps its interface, and a tag the new map no
// longer lists names no port.
func TestSetPortMap(t *testing.T) {
	parse := func(body string) *portmap.Map {
		m, _, err := portmap.Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &m
	}
	old := parse(`{"version": 2, "ports": [{"name": "vm-1", "source": "2001:db8::10", "tag": 100},
		{"name": "vm-2", "source": "2001:db8::10", "tag": 200}]}`)
	next, _ := portmap.NewIdentifier(*parse(`{"version": 2, "ports": [{"name": "vm-3", "source": "2001:db8::10", "tag": 300},
		{"name": "vm-2", "source": "2001:db8::10", "tag": 200}]}`))
	hv := netip.MustParseAddrPort("[2001:db8::10]:5000")
	var pkts []capture.Packet
	for _, n := range []struct{ tag, count uint32 }{{100, 3}, {200, 2}, {300, 4}, {100, 5}, {200, 6}, {300, 7}} {
		for range n.count {
			pkts = append(pkts, capture.Packet{Data: testkit.InnerFrame(t, "02:00:00:00:00:09", "10.9.9.9", "10.0.0.2"), Src: hv, FlowLabel: n.tag})
		}
	}
	var eng *Engine
	src := &fakeSource{framing: payloads, pkts: pkts, batches: []int{9}, beforeBatch: func(i int) {
		if i == 1 {
			eng.SetPortMap(next)
		}
	}}
	st, got := runSource(t, Config{PortMap: old}, src, func(e *Engine) { eng = e })
	want := map[string]int{"vm-1": 3, "vm-2": 8, "vm-3": 7, "2001:db8::10": 9}
	if len(got) != len(want) || st.Sources != uint64(len(want)) {
		t.Errorf("interfaces %v (%d sources), want %v", got, st.Sources, want)
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("interface %q: %d packets, want %d (all: %v)", name, got[name], n, got)
		}
	}
	if st.UnknownTags != 9 {
		t.Errorf("unknown tags %d, want 9: tag 300 before the new map, tag 100 after", st.UnknownTags)
	}
}

// TestSourcesBounded floods the engine with flow labels: past the bound,
// every new source shares the overflow interface.
func TestSourcesBounded(t *testing.T) {
	frame := testkit.InnerFrame(t, "02:00:00:00:00:09", "10.9.9.9", "10.0.0.2")
	var pkts []capture.Packet
	for tag := range uint32(5000) {
		pkts = append(pkts, capture.Packet{Data: frame, Src: netip.MustParseAddrPort("[2001:db8::10]:5000"), FlowLabel: tag})
	}
	st, got := runFake(t, Config{MaxSources: 10}, pkts)
	if len(got) != 11 || got["overflow"] != 4990 || got["2001:db8::10 tag 9"] != 1 {
		t.Errorf("%d interfaces, overflow %d: want 10 and the overflow with 4990", len(got), got["overflow"])
	}
	if st.Sources != 10 || st.Overflowed != 4990 || st.Written != 5000 {
		t.Errorf("sources %d, overflowed %d, written %d; want 10, 4990, 5000", st.Sources, st.Overflowed, st.Written)
	}
}

// BenchmarkEnginePcapngPortMap adds untagged identification to the pcapng
// path: the frames come from vm-1's primary IPv4, as a VF's copies do.
func BenchmarkEnginePcapngPortMap(b *testing.B) {
	m, _, err := portmap.Parse([]byte(`{"version": 2, "ports": [
		{"name": "vm-1", "kind": "vf", "ipv4": "10.0.0.1", "mac": "02:00:00:00:00:01", "underlay_route": "fc00::1/128"},
		{"name": "vm-2", "kind": "vf", "ipv4": "10.0.0.2", "underlay_route": "fc00::2/128"},
		{"name": "pf0", "kind": "pf"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	benchEngine(b, pcapout.Options{Format: pcapout.FormatPcapng}, Config{PortMap: &m})
}

// BenchmarkEnginePcapng is the same path without a port map.
func BenchmarkEnginePcapng(b *testing.B) {
	benchEngine(b, pcapout.Options{Format: pcapout.FormatPcapng}, Config{})
}
