// Package decap takes envelopes apart: the NIC's Ether-over-UDP copies and
// the other mirroring encapsulations (VXLAN, VXLAN-GPE, GENEVE, TZSP,
// ERSPAN I–III, GRE-TAP), from any outer link type a capture may use.
//
// It parses headers instead of chopping a fixed number of bytes, and it
// trusts the captured length over the envelope's length fields: the NIC
// leaves IPv6 payload length 0 and the UDP length unset. Length fields are
// used only to find where the packet ends on the wire (before Ethernet
// padding, or past a snap length), and only when they are plausible.
// Decoding allocates nothing and never panics; every failure is a Reason.
package decap

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// Result describes a decapsulated packet. Inner aliases the input.
type Result struct {
	Kind Kind
	// Inner is the encapsulated frame as captured; InnerLength is its
	// length on the wire (larger when the capture was cut short).
	Inner       []byte
	InnerLength int
	// InnerEtherType is 0 when Inner is an Ethernet frame; else Inner is
	// a bare packet of this EtherType: IP, as GENEVE, VXLAN-GPE and ERSPAN
	// III carry, or any other GENEVE carries (ARP); written, it needs an
	// Ethernet header.
	InnerEtherType uint16
	// The outer addresses and ports (ports are 0 for GRE).
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	// IPOffset is where the outer IP header starts in the frame: a
	// Fragment's IP packet, for reassembly, is frame[IPOffset:].
	IPOffset int
	// ID is the envelope's own identifier: the IPv6 flow label for the
	// NIC's copies, the VNI for VXLAN and GENEVE, the session ID for ERSPAN
	// II and III, the GRE key for GRE-TAP.
	ID uint32
}

// Decoder decapsulates frames; it is safe for concurrent use.
type Decoder struct {
	ports [1 << 16]Kind
	kinds []Descriptor // the kinds registered when it was made
	gre   []Kind       // the GRE kinds, in order
}

// NewDecoder returns a decoder for UDP envelopes on the given ports
// (ParsePorts has checked that each belongs to one kind) and for every GRE
// kind, which needs no port.
func NewDecoder(ports Ports) *Decoder {
	d := &Decoder{kinds: *table.Load()}
	for k, ps := range ports {
		for _, p := range ps {
			if p != 0 && k.UDP() {
				d.ports[p] = k
			}
		}
	}
	for k, desc := range d.kinds {
		if desc.Transport == GRE {
			d.gre = append(d.gre, Kind(k))
		}
	}
	return d
}

const (
	etherIPv4     = 0x0800
	etherIPv6     = 0x86DD
	etherARP      = 0x0806
	etherTEB      = 0x6558 // transparent Ethernet bridging
	minEtherType  = 0x0600 // smaller values in an Ethernet header are lengths
	etherERSPAN12 = 0x88BE
	etherERSPAN3  = 0x22EB

	ipProtoUDP      = 17
	ipProtoGRE      = 47
	ipProtoFragment = 44 // IPv6's fragment header
	ipProtoAH       = 51 // IPv6's authentication header

	// EtherHeaderLen is the length of an Ethernet header without tags.
	EtherHeaderLen = 14
)

// LinkTypeDLTRaw are the values some systems write for raw IP in place of
// LINKTYPE_RAW.
const (
	linkTypeDLTRaw12 layers.LinkType = 12
	linkTypeDLTRaw14 layers.LinkType = 14
)

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// Decode decapsulates one captured frame of link type lt; length is the
// frame's length on the wire. It fills r and returns OK, or says why not.
func (d *Decoder) Decode(lt layers.LinkType, frame []byte, length int, r *Result) Reason {
	*r = Result{}
	var (
		off   int
		etype uint16
	)
	switch lt {
	case layers.LinkTypeEthernet:
		if len(frame) < EtherHeaderLen {
			return TruncatedHeader
		}
		etype, off = be16(frame[12:14]), EtherHeaderLen
	case layers.LinkTypeLinuxSLL:
		if len(frame) < 16 {
			return TruncatedHeader
		}
		etype, off = be16(frame[14:16]), 16
	case layers.LinkTypeLinuxSLL2:
		if len(frame) < 20 {
			return TruncatedHeader
		}
		etype, off = be16(frame[0:2]), 20
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, linkTypeDLTRaw12, linkTypeDLTRaw14:
		if len(frame) == 0 {
			return TruncatedHeader
		}
		etype = ipVersionType(frame[0])
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(frame) < 4 {
			return TruncatedHeader
		}
		etype, off = loopbackFamily(lt, frame[:4]), 4
	default:
		return UnsupportedLinkType
	}
	etype, off, ok := SkipVLANs(frame, etype, off)
	if !ok {
		return TruncatedHeader
	}
	// The IP packet ends at end in frame and at wireEnd on the wire: at
	// what its header says when that is plausible, else where the frame
	// does (which then counts any Ethernet trailer).
	var (
		end, wireEnd int
		sized        bool // wireEnd is what the IP header says
		proto        uint8
		reason       Reason
	)
	wire := max(length, len(frame))
	r.IPOffset = off
	switch etype {
	case etherIPv4:
		off, wireEnd, sized, proto, reason = d.ipv4(frame, off, wire, r)
	case etherIPv6:
		off, wireEnd, sized, proto, reason = d.ipv6(frame, off, wire, r)
	default:
		return NotIP
	}
	if reason != OK {
		return reason
	}
	end = min(wireEnd, len(frame))
	switch proto {
	case ipProtoUDP:
		if end-off < 8 {
			return TruncatedHeader
		}
		r.SrcPort, r.DstPort = be16(frame[off:off+2]), be16(frame[off+2:off+4])
		k := d.ports[r.DstPort]
		if k == KindNone {
			return UnknownPort
		}
		// The UDP length is read only when the IP header gave a length
		// too: the NIC leaves both unset. A shorter datagram than the IP
		// packet ends where it says, as Linux and Wireshark take it.
		if ulen := int(be16(frame[off+4 : off+6])); sized && ulen >= 8 && off+ulen <= wireEnd {
			wireEnd = off + ulen
			end = min(wireEnd, len(frame))
		}
		off += 8
		reason = decodeKind(k, d.kinds[k].Decode, frame[off:end], GREHeader{}, r)
	case ipProtoGRE:
		reason = d.decodeGRE(frame[off:end], r)
	default:
		return NotUDPOrGRE
	}
	if reason != OK {
		return reason
	}
	// Inner ends the IP packet; the snap length may have cut it.
	r.InnerLength = wireEnd - (end - len(r.Inner))
	need := 1 // a bare packet's first byte
	if r.InnerEtherType == 0 {
		need = EtherHeaderLen
	}
	switch {
	case r.InnerLength < need:
		return ShortFrame
	case len(r.Inner) < need:
		// A record without a whole Ethernet header is no frame any
		// reader can take.
		return TruncatedInner
	}
	return OK
}

// DecodePayload decapsulates the payload of a UDP datagram received on a
// socket, as an envelope of kind k; length is the payload's full length.
func DecodePayload(k Kind, payload []byte, length int, r *Result) Reason {
	*r = Result{}
	d := k.Descriptor()
	if d.Decode == nil {
		return UnknownPort
	}
	if reason := decodeKind(k, d.Decode, payload, GREHeader{}, r); reason != OK {
		return reason
	}
	r.InnerLength = len(r.Inner) + length - len(payload)
	if r.InnerEtherType == 0 && r.InnerLength < EtherHeaderLen {
		return ShortFrame
	}
	return OK
}

func ipVersionType(b byte) uint16 {
	switch b >> 4 {
	case 4:
		return etherIPv4
	case 6:
		return etherIPv6
	}
	return 0
}

// loopbackFamily maps the address family of a NULL (host byte order) or
// LOOP (network byte order) header to an ethertype. IPv6's family number
// differs between systems.
func loopbackFamily(lt layers.LinkType, h []byte) uint16 {
	fam := binary.BigEndian.Uint32(h)
	if lt == layers.LinkTypeNull && fam > 0xFFFF {
		fam = binary.LittleEndian.Uint32(h)
	}
	switch fam {
	case 2:
		return etherIPv4
	case 10, 24, 28, 30:
		return etherIPv6
	}
	return 0
}

// ipv4 parses an IPv4 header at off in b, a frame of wire bytes on the
// wire; it returns the transport offset, the end of the IP packet on the
// wire, whether that is the header's total length (else wire: the length
// is implausible) and the protocol.
func (d *Decoder) ipv4(b []byte, off, wire int, r *Result) (int, int, bool, uint8, Reason) {
	if len(b) < off+20 {
		return 0, 0, false, 0, TruncatedHeader
	}
	h := b[off:]
	ihl := int(h[0]&0x0F) * 4
	if h[0]>>4 != 4 || ihl < 20 {
		return 0, 0, false, 0, BadIPHeader
	}
	if len(h) < ihl {
		return 0, 0, false, 0, TruncatedHeader
	}
	r.Src = netip.AddrFrom4([4]byte(h[12:16]))
	r.Dst = netip.AddrFrom4([4]byte(h[16:20]))
	if fo := be16(h[6:8]); fo&0x3FFF != 0 { // more fragments, or an offset
		return 0, 0, false, 0, Fragment
	}
	if tot := int(be16(h[2:4])); tot >= ihl && off+tot <= wire {
		return off + ihl, off + tot, true, h[9], OK // cut Ethernet padding
	}
	return off + ihl, wire, false, h[9], OK
}

// ipv6 parses an IPv6 header and its extension headers at off, as ipv4
// does.
func (d *Decoder) ipv6(b []byte, off, wire int, r *Result) (int, int, bool, uint8, Reason) {
	if len(b) < off+40 {
		return 0, 0, false, 0, TruncatedHeader
	}
	h := b[off:]
	if h[0]>>4 != 6 {
		return 0, 0, false, 0, BadIPHeader
	}
	r.Src = netip.AddrFrom16([16]byte(h[8:24]))
	r.Dst = netip.AddrFrom16([16]byte(h[24:40]))
	flowLabel := be32(h[0:4]) & 0xFFFFF
	wireEnd, sized := wire, false
	// The NIC writes payload length 0; only a plausible value cuts padding.
	if plen := int(be16(h[4:6])); plen != 0 && off+40+plen <= wire {
		wireEnd, sized = off+40+plen, true
	}
	end := min(wireEnd, len(b))
	next := h[6]
	off += 40
	for {
		var hlen int
		switch {
		case IPv6Extension(next):
			if end-off < 8 {
				return 0, 0, false, 0, TruncatedHeader
			}
			hlen = IPv6ExtensionLen(next, b[off:])
		case next == ipProtoFragment:
			if end-off < 8 {
				return 0, 0, false, 0, TruncatedHeader
			}
			if fo := be16(b[off+2 : off+4]); fo&0xFFF9 != 0 { // an offset, or more fragments
				return 0, 0, false, 0, Fragment
			}
			hlen = 8
		default:
			if next == ipProtoUDP {
				r.ID = flowLabel
			}
			return off, wireEnd, sized, next, OK
		}
		if end-off < hlen {
			return 0, 0, false, 0, TruncatedHeader
		}
		next = b[off]
		off += hlen
	}
}

// IPv6Extension reports whether next, an IPv6 next-header value, names an
// extension header that may stand between the IPv6 header and the
// transport: hop-by-hop, routing, destination options, mobility, HIP,
// shim6 or authentication. The fragment header is not one of them.
func IPv6Extension(next uint8) bool {
	switch next {
	case 0, 43, 60, 135, 139, 140, ipProtoAH:
		return true
	}
	return false
}

// IPv6ExtensionLen returns the length of the extension header of type next
// (IPv6Extension) at the start of h, which holds at least 8 bytes.
func IPv6ExtensionLen(next uint8, h []byte) int {
	if next == ipProtoAH { // in 4-byte units, less 2
		return (int(h[1]) + 2) * 4
	}
	return (int(h[1]) + 1) * 8
}

// decodeNIC takes the NIC's copy: the payload is the frame.
func decodeNIC(p []byte, _ GREHeader, r *Result) Reason {
	r.Inner = p
	return OK
}

// The flags of a VXLAN header's first byte.
const (
	vxlanI   = 0x08 // the VNI is valid
	vxlanP   = 0x04 // VXLAN-GPE's P: a next protocol follows
	vxlanVer = 0x30 // VXLAN-GPE's version
)

// decodeVXLAN takes a VXLAN header (RFC 7348), whose reserved bits are
// ignored, as the RFC and Wireshark do: only a VXLAN-GPE header (the P
// flag) whose next protocol is one of GPE's other than Ethernet is
// refused, as its payload is no Ethernet frame.
func decodeVXLAN(p []byte, _ GREHeader, r *Result) Reason {
	if len(p) < 8 {
		return TruncatedHeader
	}
	switch {
	case p[0]&vxlanI == 0:
		return BadVXLANHeader
	case p[0]&vxlanP != 0 && (p[3] == 1 || p[3] == 2 || p[3] == 4 || p[3] == 5): // IPv4, IPv6, NSH, MPLS
		return VXLANGPEOnVXLANPort
	}
	r.ID = be32(p[4:8]) >> 8
	r.Inner = p[8:]
	return OK
}

// decodeVXLANGPE takes a VXLAN-GPE header (draft-ietf-nvo3-vxlan-gpe):
// VXLAN's, with a version and a next protocol, which decides the payload
// as Wireshark takes it, whatever the P flag says.
func decodeVXLANGPE(p []byte, _ GREHeader, r *Result) Reason {
	if len(p) < 8 {
		return TruncatedHeader
	}
	if p[0]&vxlanI == 0 || p[0]&vxlanVer != 0 {
		return BadVXLANHeader
	}
	r.ID = be32(p[4:8]) >> 8
	r.Inner = p[8:]
	switch p[3] { // next protocol
	case 1:
		r.InnerEtherType = etherIPv4
	case 2:
		r.InnerEtherType = etherIPv6
	case 3: // Ethernet
	default: // NSH (4), MPLS (5), ...
		return VXLANGPEUnsupportedProto
	}
	return OK
}

// decodeGENEVE takes a GENEVE header and its options (RFC 8926).
func decodeGENEVE(p []byte, _ GREHeader, r *Result) Reason {
	if len(p) < 8 {
		return TruncatedHeader
	}
	if p[0]>>6 != 0 {
		return BadGENEVEHeader
	}
	hlen := 8 + int(p[0]&0x3F)*4
	if len(p) < hlen {
		return TruncatedHeader
	}
	r.ID = be32(p[4:8]) >> 8
	r.Inner = p[hlen:]
	// The protocol type is an EtherType (RFC 8926 §3.4): any packet
	// Ethernet can carry, as Wireshark dissects it.
	switch proto := be16(p[2:4]); {
	case proto == etherTEB:
	case proto >= minEtherType:
		r.InnerEtherType = proto
	default:
		return GENEVEUnsupportedProto
	}
	return OK
}

// decodeTZSP walks the TZSP header's tagged fields to the frame.
func decodeTZSP(p []byte, _ GREHeader, r *Result) Reason {
	if len(p) < 4 {
		return TruncatedHeader
	}
	if p[0] != 1 {
		return BadTZSPHeader
	}
	if p[1] > 1 { // 0: received packet, 1: packet for transmit
		return TZSPNotAPacket
	}
	if be16(p[2:4]) != 1 { // Ethernet
		return TZSPUnsupportedEncap
	}
	for i := 4; ; {
		if i >= len(p) {
			return TruncatedHeader
		}
		switch p[i] {
		case 0: // padding
			i++
		case 1: // end
			r.Inner = p[i+1:]
			return OK
		default:
			if i+2 > len(p) {
				return TruncatedHeader
			}
			i += 2 + int(p[i+1])
			if i > len(p) {
				return BadTZSPHeader
			}
		}
	}
}

// decodeGRE parses a GRE header and hands what follows to the first kind
// registered for its protocol type that takes it.
func (d *Decoder) decodeGRE(p []byte, r *Result) Reason {
	if len(p) < 4 {
		return TruncatedHeader
	}
	flags := be16(p[0:2])
	if flags&0x0007 != 0 || flags&0x4000 != 0 { // version, routing
		return BadGREHeader
	}
	hlen := 4
	if flags&0x8000 != 0 { // checksum
		hlen += 4
	}
	keyOff := hlen
	if flags&0x2000 != 0 { // key
		hlen += 4
	}
	g := GREHeader{Protocol: be16(p[2:4]), Seq: flags&0x1000 != 0}
	if g.Seq {
		hlen += 4
	}
	if len(p) < hlen {
		return TruncatedHeader
	}
	if flags&0x2000 != 0 {
		g.Key = be32(p[keyOff : keyOff+4])
	}
	for _, k := range d.gre {
		if d.kinds[k].GREProtocol != g.Protocol {
			continue
		}
		r.ID = 0
		if reason := decodeKind(k, d.kinds[k].Decode, p[hlen:], g, r); reason != GREUnsupportedProtocol {
			return reason
		}
	}
	return GREUnsupportedProtocol
}

// decodeKind runs kind k's decoder on p. r.ID keeps what the outer
// headers said (the NIC's flow label) unless the decoder sets it.
func decodeKind(k Kind, decode DecodeFunc, p []byte, g GREHeader, r *Result) Reason {
	r.Kind, r.Inner, r.InnerEtherType = k, nil, 0
	return decode(p, g, r)
}

// decodeGRETAP takes transparent Ethernet bridging: the frame follows the
// GRE header, whose key is the identifier.
func decodeGRETAP(p []byte, g GREHeader, r *Result) Reason {
	r.ID, r.Inner = g.Key, p
	return OK
}

// decodeERSPAN1 takes ERSPAN type I: GRE without a sequence number and no
// ERSPAN header.
func decodeERSPAN1(p []byte, g GREHeader, r *Result) Reason {
	if g.Seq {
		return GREUnsupportedProtocol // type II
	}
	r.Inner = p
	return OK
}

// decodeERSPAN2 takes an ERSPAN type II header.
func decodeERSPAN2(p []byte, g GREHeader, r *Result) Reason {
	if !g.Seq {
		return GREUnsupportedProtocol // type I
	}
	if reason := erspanHeader(p, 8, 1, r); reason != OK {
		return reason
	}
	r.Inner = p[8:]
	return OK
}

// erspanHeader checks that p holds an ERSPAN header of at least hlen bytes
// and of the given version, and takes its session ID.
func erspanHeader(p []byte, hlen int, version byte, r *Result) Reason {
	if len(p) < hlen {
		return TruncatedHeader
	}
	if p[0]>>4 != version {
		return BadERSPANHeader
	}
	r.ID = uint32(be16(p[2:4]) & 0x3FF)
	return OK
}

// decodeERSPAN3 takes an ERSPAN type III header and its optional
// platform subheader.
func decodeERSPAN3(p []byte, _ GREHeader, r *Result) Reason {
	if reason := erspanHeader(p, 12, 2, r); reason != OK {
		return reason
	}
	w := be16(p[10:12])
	hlen := 12
	if w&1 != 0 { // O: an 8-byte platform-specific subheader follows
		hlen += 8
	}
	if len(p) < hlen {
		return TruncatedHeader
	}
	r.Inner = p[hlen:]
	switch (w >> 10) & 0x1F { // frame type
	case 0: // Ethernet
	case 2: // IP, of either version: the packet says which
		if len(r.Inner) == 0 {
			return TruncatedInner
		}
		if r.InnerEtherType = ipVersionType(r.Inner[0]); r.InnerEtherType == 0 {
			return BadIPHeader
		}
	default:
		return ERSPANUnsupportedFrame
	}
	return OK
}
