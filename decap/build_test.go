package decap

import (
	"encoding/binary"
	"slices"
)

// Builders for envelopes, byte by byte from the RFCs and vendor documents.
// TestBuildersAgreeWithTshark checks them against Wireshark's dissectors.

func be16b(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32b(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

var (
	macA = []byte{0x02, 0, 0, 0, 0, 0xA}
	macB = []byte{0x02, 0, 0, 0, 0, 0xB}
	v4A  = []byte{192, 0, 2, 1}
	v4B  = []byte{192, 0, 2, 2}
	v6A  = []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	v6B  = []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
)

// ether builds an Ethernet header with optional tags (each a TPID and VID).
func ether(etype uint16, payload []byte, tags ...[2]uint16) []byte {
	b := cat(macB, macA)
	for _, t := range tags {
		b = cat(b, be16b(t[0]), be16b(t[1]))
	}
	return cat(b, be16b(etype), payload)
}

// ipv4 builds an IPv4 header (with options, a multiple of 4 bytes) and
// payload; the total length and checksum are right.
func ipv4(proto byte, payload []byte, opts []byte, fragOff uint16) []byte {
	ihl := 20 + len(opts)
	h := cat([]byte{0x40 | byte(ihl/4), 0}, be16b(uint16(ihl+len(payload))), be16b(1), be16b(fragOff),
		[]byte{64, proto, 0, 0}, v4A, v4B, opts)
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xFFFF {
		sum = sum&0xFFFF + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return cat(h, payload)
}

// ipv6 builds an IPv6 header with the given payload length field (-1: the
// right one) and flow label. ext is a chain of extension headers whose
// first next-header value is first.
func ipv6(next byte, payload []byte, plen int, flow uint32) []byte {
	if plen < 0 {
		plen = len(payload)
	}
	return cat(be32b(6<<28|flow), be16b(uint16(plen)), []byte{next, 64}, v6A, v6B, payload)
}

// ext6 builds one IPv6 extension header of 8*n bytes.
func ext6(next byte, n int) []byte {
	b := make([]byte, 8*n)
	b[0], b[1] = next, byte(n-1)
	return b
}

func udp(sport, dport uint16, payload []byte, length, sum uint16) []byte {
	return cat(be16b(sport), be16b(dport), be16b(length), be16b(sum), payload)
}

// udpOK builds a UDP header with the right length, as every sender but
// the NIC writes it.
func udpOK(dport uint16, payload []byte) []byte {
	return udp(5000, dport, payload, uint16(8+len(payload)), 0)
}

func vxlan(vni uint32, inner []byte) []byte {
	return cat([]byte{0x08, 0, 0, 0}, be32b(vni<<8), inner)
}

// vxlanGPE builds a VXLAN-GPE header: flags I and P, the next protocol.
func vxlanGPE(vni uint32, next byte, inner []byte) []byte {
	return cat([]byte{0x0C, 0, 0, next}, be32b(vni<<8), inner)
}

// geneve builds a GENEVE header; opts must be a multiple of 4 bytes.
func geneve(vni uint32, proto uint16, opts, inner []byte) []byte {
	return cat([]byte{byte(len(opts) / 4), 0}, be16b(proto), be32b(vni<<8), opts, inner)
}

// tzsp builds a TZSP header: version 1, received packet, Ethernet, the
// given tagged fields and the end tag.
func tzsp(tags, inner []byte) []byte {
	return cat([]byte{1, 0}, be16b(1), tags, []byte{1}, inner)
}

// gre builds a GRE header with an optional checksum, key and sequence.
func gre(proto uint16, csum bool, key *uint32, seq *uint32, payload []byte) []byte {
	var flags uint16
	var opt []byte
	if csum {
		flags |= 0x8000
		opt = cat(opt, make([]byte, 4))
	}
	if key != nil {
		flags |= 0x2000
		opt = cat(opt, be32b(*key))
	}
	if seq != nil {
		flags |= 0x1000
		opt = cat(opt, be32b(*seq))
	}
	return cat(be16b(flags), be16b(proto), opt, payload)
}

func erspan2(session uint16, inner []byte) []byte {
	return cat(be16b(1<<12|100), be16b(session&0x3FF), be32b(7), inner) // version 1, VLAN 100, index 7
}

// erspan3 builds an ERSPAN III header with frame type ft and, when sub is
// set, the 8-byte platform-specific subheader.
func erspan3(session uint16, ft uint16, sub bool, inner []byte) []byte {
	w := ft << 10 // P=0, FT, HW ID=0, D=0, Gra=0
	b := cat(be16b(2<<12|100), be16b(session&0x3FF), be32b(123456), be16b(0))
	if sub {
		w |= 1
		return cat(b, be16b(w), be32b(5<<26), be32b(0), inner) // platform ID 5
	}
	return cat(b, be16b(w), inner)
}

func ptr(v uint32) *uint32 { return &v }
