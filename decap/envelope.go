package decap

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// MaxFlowLabel is the largest IPv6 flow label: the envelope's flow label
// carries a port's tag (docs/ENVELOPE.md), so tags are 1 to MaxFlowLabel.
const MaxFlowLabel = 0xFFFFF

// The NIC's envelope (docs/ENVELOPE.md §1): Ethernet, IPv6 and UDP headers
// in front of the sampled frame. Every builder (the NIC's template, the
// kernel mirror's BPF program, the tests' senders) writes its fields at
// these offsets from the envelope's first byte.
const (
	// EnvelopeLen is the envelope's size: 14 + 40 + 8 bytes.
	EnvelopeLen = EnvelopeUDP + UDPHeaderLen
	// EnvelopeIPv6 is the IPv6 header's first word: version, traffic
	// class and flow label.
	EnvelopeIPv6 = EtherHeaderLen
	// EnvelopePayloadLength is the IPv6 payload length (16 bits).
	EnvelopePayloadLength = EnvelopeIPv6 + 4
	// EnvelopeNextHeader is the IPv6 next header, then the hop limit.
	EnvelopeNextHeader = EnvelopeIPv6 + 6
	EnvelopeHopLimit   = EnvelopeIPv6 + 7
	// EnvelopeSrc and EnvelopeDst are the IPv6 addresses (16 bytes each).
	EnvelopeSrc = EnvelopeIPv6 + 8
	EnvelopeDst = EnvelopeSrc + 16
	// EnvelopeUDP is the UDP header: source port, destination port,
	// length and checksum, 16 bits each.
	EnvelopeUDP       = EnvelopeIPv6 + IPv6HeaderLen
	EnvelopeDstPort   = EnvelopeUDP + 2
	EnvelopeUDPLength = EnvelopeUDP + 4
	EnvelopeChecksum  = EnvelopeUDP + 6

	// IPv6HeaderLen and UDPHeaderLen are the fixed header sizes.
	IPv6HeaderLen = 40
	UDPHeaderLen  = 8

	// envelopeHopLimit is the hop limit the dataplane writes.
	envelopeHopLimit = 64
)

// Envelope is the envelope's content: Ethernet (to the underlay router),
// IPv6 (hypervisor to sink) and UDP, built the way the dataplane builds it.
type Envelope struct {
	// DstMAC is the underlay router's (PF0's neighbour), SrcMAC PF0's.
	DstMAC, SrcMAC net.HardwareAddr
	// Src is the hypervisor's underlay address, Dst the sink's.
	Src, Dst netip.Addr
	// SrcPort is configured but not honoured by the NIC; DstPort is.
	SrcPort, DstPort uint16
	// FlowLabel is copied verbatim into every envelope: it tags the port.
	FlowLabel uint32
}

// Bytes returns the envelope's 62 bytes. The IPv6 payload length and the
// UDP length and checksum are 0: the template as the NIC is handed it.
func (e Envelope) Bytes() ([EnvelopeLen]byte, error) {
	var b [EnvelopeLen]byte
	switch {
	case len(e.DstMAC) != 6 || len(e.SrcMAC) != 6:
		return b, fmt.Errorf("encap template: MAC addresses must have 6 bytes, have %d and %d", len(e.DstMAC), len(e.SrcMAC))
	case !e.Src.Is6() || e.Src.Is4In6() || !e.Dst.Is6() || e.Dst.Is4In6():
		return b, fmt.Errorf("encap template: addresses must be IPv6, have %v and %v", e.Src, e.Dst)
	case e.FlowLabel > MaxFlowLabel:
		return b, fmt.Errorf("encap template: flow label %d exceeds %d", e.FlowLabel, MaxFlowLabel)
	}
	copy(b[0:6], e.DstMAC)
	copy(b[6:12], e.SrcMAC)
	binary.BigEndian.PutUint16(b[12:EnvelopeIPv6], etherIPv6)
	binary.BigEndian.PutUint32(b[EnvelopeIPv6:], 6<<28|e.FlowLabel) // version 6, traffic class 0
	b[EnvelopeNextHeader] = ipProtoUDP                              // the payload length stays 0
	b[EnvelopeHopLimit] = envelopeHopLimit
	src, dst := e.Src.As16(), e.Dst.As16()
	copy(b[EnvelopeSrc:], src[:])
	copy(b[EnvelopeDst:], dst[:])
	binary.BigEndian.PutUint16(b[EnvelopeUDP:], e.SrcPort)
	binary.BigEndian.PutUint16(b[EnvelopeDstPort:], e.DstPort)
	return b, nil
}

// Encap appends the envelope of frame to dst. With fixLengths the IPv6
// payload length and the UDP length are filled in, as the NIC very
// probably does; without, they stay as the template has them. The UDP
// checksum stays 0 either way.
func Encap(dst []byte, tmpl *[EnvelopeLen]byte, frame []byte, fixLengths bool) []byte {
	start := len(dst)
	dst = append(append(dst, tmpl[:]...), frame...)
	if fixLengths {
		n := uint16(UDPHeaderLen + len(frame))
		binary.BigEndian.PutUint16(dst[start+EnvelopePayloadLength:], n)
		binary.BigEndian.PutUint16(dst[start+EnvelopeUDPLength:], n)
	}
	return dst
}
