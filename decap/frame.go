package decap

import "encoding/binary"

// The tag protocol identifiers of VLAN tags (each 4 bytes: the TPID, then
// the tag control information), which every walk over an Ethernet header
// skips, any number deep.
const (
	EtherTypeVLAN    = 0x8100 // 802.1Q
	EtherTypeQinQ    = 0x88A8 // 802.1ad
	EtherTypeQinQOld = 0x9100 // the pre-standard QinQ
	VLANTagLen       = 4
)

// IsVLAN reports whether etype is a VLAN tag's protocol identifier.
func IsVLAN(etype uint16) bool {
	return etype == EtherTypeVLAN || etype == EtherTypeQinQ || etype == EtherTypeQinQOld
}

// SkipVLANs walks the VLAN tags of an Ethernet header: etype is the type
// read just before off. It returns the first type that is not a tag and
// the offset after it; ok is false when b ends inside a tag, and then
// etype and off are the tag's that did not fit.
func SkipVLANs(b []byte, etype uint16, off int) (_ uint16, _ int, ok bool) {
	for IsVLAN(etype) {
		if len(b) < off+VLANTagLen {
			return etype, off, false
		}
		etype, off = binary.BigEndian.Uint16(b[off+2:off+4]), off+VLANTagLen
	}
	return etype, off, true
}

// Frame is what an inner Ethernet frame's headers say about where it came
// from: the source MAC address and the IP (or ARP sender) addresses,
// behind any number of VLAN tags. ParseFrame reads them once, and the
// value is passed down to whoever needs them (portmap.Identifier).
type Frame struct {
	SrcMAC [6]byte
	// Src4 is the IPv4 source, or an ARP request's sender address.
	Src4 [4]byte
	// Src6 and Dst6 are the IPv6 addresses.
	Src6, Dst6 [16]byte
	// HasMAC, HasSrc4 and HasIPv6 say which of the above are set.
	HasMAC, HasSrc4, HasIPv6 bool
}

// ParseFrame fills f from the Ethernet frame b, which may be cut short:
// what b does not hold stays unset.
func ParseFrame(b []byte, f *Frame) {
	*f = Frame{}
	if len(b) < EtherHeaderLen {
		return
	}
	f.SrcMAC, f.HasMAC = [6]byte(b[6:12]), true
	etype, off, _ := SkipVLANs(b, be16(b[12:14]), EtherHeaderLen)
	ip := b[off:]
	switch etype {
	case etherIPv4:
		if len(ip) >= 20 && ip[0]>>4 == 4 {
			f.Src4, f.HasSrc4 = [4]byte(ip[12:16]), true
		}
	case etherIPv6:
		if len(ip) >= IPv6HeaderLen && ip[0]>>4 == 6 {
			f.Src6, f.Dst6, f.HasIPv6 = [16]byte(ip[8:24]), [16]byte(ip[24:40]), true
		}
	case etherARP: // for IPv4 over Ethernet: the sender's protocol address
		if len(ip) >= 28 && be32(ip[0:4]) == 0x00010800 && ip[4] == 6 && ip[5] == 4 {
			f.Src4, f.HasSrc4 = [4]byte(ip[14:18]), true
		}
	}
}
