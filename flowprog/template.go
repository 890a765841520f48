// Package flowprog models the program that makes a NIC sample received
// frames and send encapsulated copies to a sink.
package flowprog

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/dpcap/dpcap/decap"
)

// TemplateLen is the size of the encapsulation the NIC prepends.
const TemplateLen = 62

// Template is the envelope the NIC's RAW_ENCAP action prepends to each
// sampled frame: Ethernet (to the underlay router), IPv6 (hypervisor to
// sink) and UDP, built the way the dataplane builds it.
type Template struct {
	// DstMAC is the underlay router's (PF0's neighbour), SrcMAC PF0's.
	DstMAC, SrcMAC net.HardwareAddr
	// Src is the hypervisor's underlay address, Dst the sink's.
	Src, Dst netip.Addr
	// SrcPort is configured but not honoured by the hardware; DstPort is.
	SrcPort, DstPort uint16
	// FlowLabel is copied verbatim into every envelope: it tags the port.
	FlowLabel uint32
}

// Bytes returns the template's 62 bytes. As the NIC is handed them, the
// IPv6 payload length and the UDP length and checksum are 0.
func (t Template) Bytes() ([TemplateLen]byte, error) {
	var b [TemplateLen]byte
	switch {
	case len(t.DstMAC) != 6 || len(t.SrcMAC) != 6:
		return b, fmt.Errorf("encap template: MAC addresses must have 6 bytes, have %d and %d", len(t.DstMAC), len(t.SrcMAC))
	case !t.Src.Is6() || t.Src.Is4In6() || !t.Dst.Is6() || t.Dst.Is4In6():
		return b, fmt.Errorf("encap template: addresses must be IPv6, have %v and %v", t.Src, t.Dst)
	case t.FlowLabel > decap.MaxFlowLabel:
		return b, fmt.Errorf("encap template: flow label %d exceeds %d", t.FlowLabel, decap.MaxFlowLabel)
	}
	copy(b[0:6], t.DstMAC)
	copy(b[6:12], t.SrcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x86DD)
	binary.BigEndian.PutUint32(b[14:18], 6<<28|t.FlowLabel) // version 6, traffic class 0
	b[20] = 17                                              // next header: UDP; payload length stays 0
	b[21] = 64                                              // hop limit
	src, dst := t.Src.As16(), t.Dst.As16()
	copy(b[22:38], src[:])
	copy(b[38:54], dst[:])
	binary.BigEndian.PutUint16(b[54:56], t.SrcPort)
	binary.BigEndian.PutUint16(b[56:58], t.DstPort)
	return b, nil
}

// Encap appends the envelope of frame to dst. With fixLengths the IPv6
// payload length and the UDP length are filled in, as the NIC very
// probably does; without, they stay as the template has them. The UDP
// checksum stays 0 either way.
func Encap(dst []byte, tmpl *[TemplateLen]byte, frame []byte, fixLengths bool) []byte {
	start := len(dst)
	dst = append(append(dst, tmpl[:]...), frame...)
	if fixLengths {
		n := uint16(8 + len(frame))
		binary.BigEndian.PutUint16(dst[start+18:], n)
		binary.BigEndian.PutUint16(dst[start+58:], n)
	}
	return dst
}
