package sink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/afpacket"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// toyPort is the toy kind's default port.
const toyPort = 7999

// toyKind registers, once per test binary, a made-up envelope: a 4-byte
// header (0xD0, then a 24-bit lane) in UDP, before the Ethernet frame.
var toyKind = sync.OnceValues(func() (decap.Kind, error) {
	return decap.Register(decap.Descriptor{Name: "toy", Transport: decap.UDP, Port: toyPort, IDLabel: "lane",
		Decode: func(p []byte, _ decap.GREHeader, r *decap.Result) decap.Reason {
			if len(p) < 4 {
				return decap.TruncatedHeader
			}
			if p[0] != 0xD0 {
				return decap.BadVXLANHeader
			}
			r.ID = binary.BigEndian.Uint32(p) & 0xFFFFFF
			r.Inner = p[4:]
			return decap.OK
		}})
})

// TestToyKind adds an envelope kind through its descriptor alone and sees
// the rest of sinkd follow: the decoder takes it on its default port, the
// kernel filter lets it up, --ports knows its name, and the engine counts
// and writes it under an interface named by its identifier.
func TestToyKind(t *testing.T) {
	toy, err := toyKind()
	if err != nil {
		t.Fatal(err)
	}
	// A NIC envelope (IPv6, UDP at 54, its payload the frame at 62)
	// rewritten: the toy's port and header.
	nic := readPcap(t, "../testdata/envelopes/nic-ether.pcap")[0].Data
	inner := nic[62:]
	envelope := func(header ...byte) []byte {
		f := slices.Concat(nic[:62], header, inner)
		binary.BigEndian.PutUint16(f[18:20], uint16(len(f)-54)) // IPv6 payload length
		binary.BigEndian.PutUint16(f[58:60], uint16(len(f)-54)) // UDP length
		binary.BigEndian.PutUint16(f[56:58], toyPort)
		return f
	}
	good := envelope(0xD0, 0, 0, 5)
	broken := good[:64] // ends inside the toy's header

	if toy.String() != "toy" || !toy.UDP() || !slices.Equal(decap.DefaultPorts()[toy], []uint16{toyPort}) {
		t.Fatalf("kind %v: UDP %v, default port %d", toy, toy.UDP(), decap.DefaultPorts()[toy])
	}
	var r decap.Result
	if reason := decap.NewDecoder(decap.DefaultPorts()).Decode(layers.LinkTypeEthernet, good, len(good), &r); reason != decap.OK ||
		r.Kind != toy || r.ID != 5 || !bytes.Equal(r.Inner, inner) {
		t.Fatalf("decoded: %v, kind %v, id %d, %d inner bytes", reason, r.Kind, r.ID, len(r.Inner))
	}

	ports := decap.DefaultPorts()
	if err := decap.ParsePorts("toy=8000", ports); err != nil || !slices.Equal(ports[toy], []uint16{8000}) {
		t.Fatalf("--ports toy=8000: %v, port %d", err, ports[toy])
	}
	for _, tt := range []struct {
		ports decap.Ports
		pass  bool
	}{{decap.DefaultPorts(), true}, {ports, false}} {
		raw, err := afpacket.Filter(decap.UDPPorts(tt.ports), false)
		insts, _ := bpf.Disassemble(raw)
		vm, vmErr := bpf.NewVM(insts)
		if err = errors.Join(err, vmErr); err != nil {
			t.Fatal(err)
		}
		if n, err := vm.Run(good); err != nil || (n > 0) != tt.pass {
			t.Errorf("kernel filter for %s: %d bytes up (%v), want up: %v", decap.FormatPorts(tt.ports), n, err, tt.pass)
		}
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "out.pcapng")
	out, err := pcapout.Open(pcapout.Options{Path: path, LinkType: layers.LinkTypeEthernet, SnapLen: 65535,
		Format: pcapout.FormatPcapng, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Output: out}
	pkts := []capture.Packet{
		{Data: good, Length: len(good), LinkType: layers.LinkTypeEthernet},
		{Data: broken, Length: len(broken), LinkType: layers.LinkTypeEthernet},
	}
	e := New(Config{Source: &fakeSource{pkts: pkts}, Output: rec, Logger: logger, BatchSize: 4, PerSource: true,
		Decoder: decap.NewDecoder(decap.DefaultPorts())})
	if err := e.Run(); err != nil {
		t.Fatal(err)
	}
	s := e.Stats()
	if s.Written != 1 || s.Rejected[decap.TruncatedHeader] != 1 || s.Accounted() != s.Received || s.Received != 2 {
		t.Errorf("written %d, truncated headers %d, accounted %d of %d", s.Written, s.Rejected[decap.TruncatedHeader], s.Accounted(), s.Received)
	}
	if want := []string{"2001:db8:1::1 lane 5"}; !slices.Equal(rec.ifaces, want) {
		t.Errorf("interfaces %q, want %q", rec.ifaces, want)
	}
	if n := len(readPcap(t, path)); n != 1 {
		t.Errorf("the file holds %d packets, want 1", n)
	}
}
