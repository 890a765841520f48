package flowprog

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/decap"
)

var tmpl = decap.Envelope{
	DstMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 1}, SrcMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 2},
	Src: netip.MustParseAddr("2001:db8::10"), Dst: netip.MustParseAddr("2001:db8:f::1"),
	SrcPort: 3000, DstPort: 3010, FlowLabel: 0xABCDE,
}

// TestTemplateBytes checks every field against docs/ENVELOPE.md §1.
func TestTemplateBytes(t *testing.T) {
	b, err := tmpl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"0c42a1000001", "0c42a1000002", "86dd", // Ethernet: router, PF0, IPv6
		"600abcde", "0000", "11", "40", // version 6, TC 0, flow label; payload length 0; UDP; hop limit 64
		"20010db8000000000000000000000010", "20010db8000f00000000000000000001",
		"0bb8", "0bc2", "0000", "0000", // ports 3000 → 3010; length unset; checksum 0
	}, "")
	if got := hex.EncodeToString(b[:]); got != want {
		t.Fatalf("template\n got %s\nwant %s", got, want)
	}
}

func TestTemplateErrors(t *testing.T) {
	for name, bad := range map[string]decap.Envelope{
		"short MAC":        {DstMAC: net.HardwareAddr{1}, SrcMAC: tmpl.SrcMAC, Src: tmpl.Src, Dst: tmpl.Dst},
		"IPv4 sink":        {DstMAC: tmpl.DstMAC, SrcMAC: tmpl.SrcMAC, Src: tmpl.Src, Dst: netip.MustParseAddr("192.0.2.1")},
		"mapped IPv4 sink": {DstMAC: tmpl.DstMAC, SrcMAC: tmpl.SrcMAC, Src: tmpl.Src, Dst: netip.MustParseAddr("::ffff:192.0.2.1")},
		"flow label":       {DstMAC: tmpl.DstMAC, SrcMAC: tmpl.SrcMAC, Src: tmpl.Src, Dst: tmpl.Dst, FlowLabel: 1 << 20},
	} {
		if _, err := bad.Bytes(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestEncapDecapRoundTrip checks the decapsulator takes back exactly the
// frame, whether or not the NIC fixed the lengths, and reads the tag.
func TestEncapDecapRoundTrip(t *testing.T) {
	b, _ := tmpl.Bytes()
	frame := bytes.Repeat([]byte{0xAB}, 1514)
	d := decap.NewDecoder(decap.DefaultPorts())
	for _, fix := range []bool{false, true} {
		env := decap.Encap(nil, &b, frame, fix)
		if len(env) != decap.EnvelopeLen+len(frame) {
			t.Fatalf("envelope is %d bytes", len(env))
		}
		var r decap.Result
		if reason := d.Decode(layers.LinkTypeEthernet, env, len(env), &r); reason != decap.OK {
			t.Fatalf("fixLengths=%v: %v", fix, reason)
		}
		if !bytes.Equal(r.Inner, frame) || r.ID != tmpl.FlowLabel || r.Src != tmpl.Src || r.Dst != tmpl.Dst {
			t.Fatalf("fixLengths=%v: inner %d bytes, tag %#x, %v -> %v", fix, len(r.Inner), r.ID, r.Src, r.Dst)
		}
	}
}
