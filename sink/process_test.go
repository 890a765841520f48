package sink

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/decap/reassembly"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// recorder is a real output that also remembers the interfaces declared.
type recorder struct {
	pcapout.Output
	ifaces []string
}

func (r *recorder) AddInterface(ifc pcapout.Interface) int {
	r.ifaces = append(r.ifaces, ifc.Name)
	return r.Output.AddInterface(ifc)
}

// etherTypeFilter keeps inner frames of one EtherType.
type etherTypeFilter uint16

func (f etherTypeFilter) Match(frame []byte) bool {
	return len(frame) >= 14 && binary.BigEndian.Uint16(frame[12:]) == uint16(f)
}

// scripted decodes every frame as the reason its first byte names, for
// driving the engine through every reason without building each envelope
// (decap's own tests build those).
type scripted struct{}

func (scripted) Decode(_ layers.LinkType, frame []byte, _ int, r *decap.Result) decap.Reason {
	reason := decap.Reason(frame[0])
	if reason == decap.OK {
		*r = decap.Result{Inner: frame[1:], InnerLength: len(frame) - 1,
			Src: netip.MustParseAddr("2001:db8::1")}
	}
	return reason
}

func readPcap(t *testing.T, name string) []pcapfile.Packet {
	t.Helper()
	pkts, _, err := pcapfile.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return pkts
}

// TestProcess runs the engine over packets held in memory and checks where
// each one went: every reason, --allow, the filter and per-source output,
// with the accounting identity in every case.
func TestProcess(t *testing.T) {
	vm := readPcap(t, "../testdata/vm-traffic.pcap")
	tcp4, arp, icmp6, dns := vm[30].Data, vm[4].Data, vm[0].Data, vm[25].Data
	envelope := readPcap(t, "../testdata/envelopes/nic-ether.pcap")[0].Data
	fragments := readPcap(t, "../testdata/envelopes/nic-frag.pcap")
	a := netip.MustParseAddrPort
	udp := func(src netip.AddrPort, label uint32, data []byte) capture.Packet {
		return capture.Packet{Data: data, Length: len(data), Src: src, FlowLabel: label}
	}
	frame := func(lt layers.LinkType, data []byte) capture.Packet {
		return capture.Packet{Data: data, Length: len(data), LinkType: lt}
	}
	hv1, hv2, v4 := a("[2001:db8::1]:1"), a("[2001:db8::2]:1"), a("192.0.2.7:1")
	ll := a("[fe80::1]:1")
	everyReason := func() []capture.Packet {
		var p []capture.Packet
		for r := range decap.NumReasons {
			p = append(p, frame(layers.LinkTypeEthernet, append([]byte{byte(r)}, tcp4...)))
		}
		return p
	}
	type want struct {
		written, filtered, denied, truncated uint64
		rejected                             map[decap.Reason]uint64
		evicted                              map[reassembly.Eviction]uint64
		ifaces                               []string
	}
	tests := []struct {
		name string
		cfg  Config
		// frames: the source's packets are whole frames, not payloads.
		frames bool
		pkts   []capture.Packet
		want   want
	}{
		{
			name: "socket payloads",
			pkts: []capture.Packet{udp(hv1, 0, tcp4), udp(hv1, 0, tcp4[:13]), udp(v4, 0, arp)},
			want: want{written: 2, rejected: map[decap.Reason]uint64{decap.ShortFrame: 1}},
		},
		{
			name: "cut to the snap length",
			pkts: []capture.Packet{{Data: tcp4[:40], Length: len(tcp4), Src: hv1}},
			want: want{written: 1, truncated: 1},
		},
		{
			name: "allow by prefix, both spellings of IPv4, zone",
			cfg: Config{Allow: []AllowRule{
				{Prefix: netip.MustParsePrefix("2001:db8::1/128")},
				{Prefix: netip.MustParsePrefix("192.0.2.0/24")},
				{Prefix: netip.MustParsePrefix("fe80::/64"), IfIndex: 7},
			}},
			pkts: []capture.Packet{
				udp(hv1, 0, tcp4), udp(hv2, 0, tcp4), udp(v4, 0, tcp4),
				udp(a("[::ffff:192.0.2.9]:1"), 0, tcp4),
				{Data: tcp4, Length: len(tcp4), Src: ll, IfIndex: 7},
				{Data: tcp4, Length: len(tcp4), Src: ll, IfIndex: 8},
				udp(hv2, 0, tcp4[:3]), // denied before it is parsed
			},
			want: want{written: 4, denied: 3},
		},
		{
			name: "filter",
			cfg:  Config{Filter: etherTypeFilter(0x0800)},
			pkts: []capture.Packet{udp(hv1, 0, tcp4), udp(hv1, 0, arp), udp(hv1, 0, icmp6), udp(hv1, 0, dns)},
			want: want{written: 2, filtered: 2},
		},
		{
			name: "an interface per source and tag",
			cfg:  Config{PerSource: true, Filter: etherTypeFilter(0x0800)},
			pkts: []capture.Packet{udp(hv1, 0, tcp4), udp(hv1, 5, tcp4), udp(hv2, 5, arp), udp(hv1, 5, tcp4), udp(hv1, 0, tcp4)},
			want: want{written: 4, filtered: 1, ifaces: []string{"2001:db8::1", "2001:db8::1 tag 5", "2001:db8::2 tag 5"}},
		},
		{
			name:   "frames through the decoder",
			cfg:    Config{Decoder: decap.NewDecoder(decap.DefaultPorts())},
			frames: true,
			pkts: append([]capture.Packet{
				frame(layers.LinkTypeEthernet, envelope), frame(147, envelope), frame(layers.LinkTypeEthernet, envelope[:40]),
				frame(layers.LinkTypeEthernet, arp), frame(layers.LinkTypeEthernet, icmp6), frame(layers.LinkTypeEthernet, dns),
			}, frame(layers.LinkTypeEthernet, fragments[0].Data)),
			// A lone fragment is held, then incomplete at the end.
			want: want{written: 1, rejected: map[decap.Reason]uint64{decap.UnsupportedLinkType: 1, decap.TruncatedHeader: 1,
				decap.NotIP: 1, decap.NotUDPOrGRE: 1, decap.UnknownPort: 1}, evicted: map[reassembly.Eviction]uint64{reassembly.Incomplete: 1}},
		},
		{
			name: "the decoder's sender is checked against --allow",
			cfg: Config{Decoder: decap.NewDecoder(decap.DefaultPorts()),
				Allow: []AllowRule{{Prefix: netip.MustParsePrefix("2001:db8:ffff::/48")}}},
			frames: true,
			pkts:   []capture.Packet{frame(layers.LinkTypeEthernet, envelope), frame(layers.LinkTypeEthernet, arp)},
			want:   want{denied: 1, rejected: map[decap.Reason]uint64{decap.NotIP: 1}},
		},
		{
			// The source's framing, not a missing decoder, says what
			// the packets are: frames get the default decoder.
			name:   "frames without a decoder",
			frames: true,
			pkts:   []capture.Packet{frame(layers.LinkTypeEthernet, envelope), frame(layers.LinkTypeEthernet, arp)},
			want:   want{written: 1, rejected: map[decap.Reason]uint64{decap.NotIP: 1}},
		},
		{
			name:   "every reason",
			cfg:    Config{Decoder: scripted{}},
			frames: true,
			pkts:   everyReason(),
			// The scripted fragment is no IP packet: the reassembler
			// finds it invalid.
			want: want{written: 1, rejected: func() map[decap.Reason]uint64 {
				m := map[decap.Reason]uint64{}
				for r := decap.OK + 1; r < decap.NumReasons; r++ {
					m[r] = 1
				}
				m[decap.Fragment] = 0
				return m
			}(), evicted: map[reassembly.Eviction]uint64{reassembly.Invalid: 1}},
		},
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := pcapout.Options{Path: filepath.Join(t.TempDir(), "out.pcap"), LinkType: layers.LinkTypeEthernet,
				SnapLen: 65535, Logger: logger}
			if tt.cfg.PerSource {
				opts.Format = pcapout.FormatPcapng
			}
			out, err := pcapout.Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{Output: out}
			for i := range tt.pkts {
				tt.pkts[i].Timestamp = time.Unix(1700000000, int64(i))
			}
			cfg := tt.cfg
			src := &fakeSource{framing: payloads, pkts: tt.pkts}
			if tt.frames {
				src.framing = capture.Framing{Kind: capture.Frames}
			}
			cfg.Source, cfg.Output, cfg.Logger, cfg.BatchSize = src, rec, logger, 3
			e := New(cfg)
			if err := e.Run(); err != nil {
				t.Fatal(err)
			}
			s := e.Stats()
			if s.Received != uint64(len(tt.pkts)) || s.Accounted() != s.Received || s.Buffered != 0 {
				t.Errorf("received %d of %d, accounted %d, buffered %d", s.Received, len(tt.pkts), s.Accounted(), s.Buffered)
			}
			w := tt.want
			if s.Written != w.written || s.Filtered != w.filtered || s.Denied != w.denied || s.Truncated != w.truncated {
				t.Errorf("written %d filtered %d denied %d truncated %d; want %d %d %d %d",
					s.Written, s.Filtered, s.Denied, s.Truncated, w.written, w.filtered, w.denied, w.truncated)
			}
			for r := decap.OK + 1; r < decap.NumReasons; r++ {
				if s.Rejected[r] != w.rejected[r] {
					t.Errorf("%v: %d, want %d", r, s.Rejected[r], w.rejected[r])
				}
			}
			for ev := range reassembly.NumEvictions {
				if s.Fragments.Evicted[ev] != w.evicted[ev] {
					t.Errorf("fragments evicted %v: %d, want %d", ev, s.Fragments.Evicted[ev], w.evicted[ev])
				}
			}
			if len(rec.ifaces) != len(w.ifaces) {
				t.Errorf("interfaces %q, want %q", rec.ifaces, w.ifaces)
			}
			for i := range min(len(rec.ifaces), len(w.ifaces)) {
				if rec.ifaces[i] != w.ifaces[i] {
					t.Errorf("interface %d is %q, want %q", i, rec.ifaces[i], w.ifaces[i])
				}
			}
			if n := len(readPcap(t, opts.Path)); n != int(w.written) {
				t.Errorf("the file holds %d packets, want %d", n, w.written)
			}
		})
	}
}
