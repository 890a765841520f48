package decap

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// TestEnvelopeDecodes checks the builder against the decoder: an envelope
// built at the shared offsets, with and without its lengths, decodes back
// to its fields and frame.
func TestEnvelopeDecodes(t *testing.T) {
	env := Envelope{DstMAC: net.HardwareAddr(macB), SrcMAC: net.HardwareAddr(macA),
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
		SrcPort: 4000, DstPort: DefaultNICPort, FlowLabel: MaxFlowLabel}
	tmpl, err := env.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	frame := ether(0x0800, ipv4(ipProtoUDP, make([]byte, 20), nil, 0))
	d := NewDecoder(DefaultPorts())
	for _, fix := range []bool{false, true} {
		b := Encap(nil, &tmpl, frame, fix)
		if len(b) != EnvelopeLen+len(frame) {
			t.Fatalf("fix %v: %d bytes, want %d", fix, len(b), EnvelopeLen+len(frame))
		}
		var r Result
		if reason := d.Decode(layers.LinkTypeEthernet, b, len(b), &r); reason != OK {
			t.Fatalf("fix %v: %v", fix, reason)
		}
		if r.Kind != KindNIC || r.ID != env.FlowLabel || r.Src != env.Src || r.Dst != env.Dst ||
			r.SrcPort != env.SrcPort || r.DstPort != env.DstPort || string(r.Inner) != string(frame) {
			t.Errorf("fix %v: decoded %+v", fix, r)
		}
	}
}

// TestEnvelopeRefuses checks that what the NIC cannot carry is refused.
func TestEnvelopeRefuses(t *testing.T) {
	good := Envelope{DstMAC: net.HardwareAddr(macB), SrcMAC: net.HardwareAddr(macA),
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}
	for name, mod := range map[string]func(*Envelope){
		"short MAC":  func(e *Envelope) { e.SrcMAC = e.SrcMAC[:4] },
		"IPv4":       func(e *Envelope) { e.Dst = netip.MustParseAddr("192.0.2.1") },
		"4in6":       func(e *Envelope) { e.Src = netip.MustParseAddr("::ffff:192.0.2.1") },
		"flow label": func(e *Envelope) { e.FlowLabel = MaxFlowLabel + 1 },
	} {
		e := good
		mod(&e)
		if _, err := e.Bytes(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
