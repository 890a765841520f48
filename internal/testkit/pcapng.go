package testkit

import (
	"encoding/binary"
	"testing"
)

// Pcapng builds a pcapng file block by block, with what gopacket's writer
// cannot write: either byte order, any section version, power-of-two
// timestamp resolutions, simple packet blocks.
type Pcapng struct {
	Order binary.AppendByteOrder
	b     []byte
}

func (p *Pcapng) block(typ uint32, body []byte) {
	body = append(body, make([]byte, -len(body)&3)...)
	n := uint32(12 + len(body))
	p.b = p.Order.AppendUint32(p.b, typ)
	p.b = p.Order.AppendUint32(p.b, n)
	p.b = append(p.b, body...)
	p.b = p.Order.AppendUint32(p.b, n)
}

// Section begins a section of version major.minor, of unknown length.
func (p *Pcapng) Section(major, minor uint16) *Pcapng {
	b := p.Order.AppendUint32(nil, 0x1A2B3C4D)
	b = p.Order.AppendUint16(b, major)
	b = p.Order.AppendUint16(b, minor)
	p.block(0x0A0D0D0A, p.Order.AppendUint64(b, ^uint64(0)))
	return p
}

// Interface describes an Ethernet interface with the if_tsresol option
// tsresol (0 leaves it out: microseconds).
func (p *Pcapng) Interface(tsresol byte) *Pcapng {
	b := p.Order.AppendUint16(nil, 1)
	b = p.Order.AppendUint16(b, 0)
	b = p.Order.AppendUint32(b, 0)
	if tsresol != 0 {
		b = p.Order.AppendUint16(b, 9)
		b = p.Order.AppendUint16(b, 1)
		b = append(b, tsresol, 0, 0, 0)
		b = p.Order.AppendUint32(b, 0) // opt_endofopt
	}
	p.block(1, b)
	return p
}

// Packet appends an enhanced packet block of interface iface, stamped ts
// units of its resolution.
func (p *Pcapng) Packet(iface uint32, ts uint64, data []byte) *Pcapng {
	b := p.Order.AppendUint32(nil, iface)
	b = p.Order.AppendUint32(b, uint32(ts>>32))
	b = p.Order.AppendUint32(b, uint32(ts))
	b = p.Order.AppendUint32(b, uint32(len(data)))
	b = p.Order.AppendUint32(b, uint32(len(data)))
	p.block(6, append(b, data...))
	return p
}

// SimplePacket appends a simple packet block, which has no timestamp.
func (p *Pcapng) SimplePacket(data []byte) *Pcapng {
	p.block(3, append(p.Order.AppendUint32(nil, uint32(len(data))), data...))
	return p
}

// Stats appends an interface statistics block of interface iface at ts,
// with isb_starttime start and isb_endtime end (units of its resolution).
func (p *Pcapng) Stats(iface uint32, ts, start, end uint64) *Pcapng {
	b := p.Order.AppendUint32(nil, iface)
	b = p.Order.AppendUint32(b, uint32(ts>>32))
	b = p.Order.AppendUint32(b, uint32(ts))
	for _, o := range []struct {
		code uint16
		v    uint64
	}{{2, start}, {3, end}} {
		b = p.Order.AppendUint16(b, o.code)
		b = p.Order.AppendUint16(b, 8)
		b = p.Order.AppendUint32(b, uint32(o.v>>32))
		b = p.Order.AppendUint32(b, uint32(o.v))
	}
	p.block(5, p.Order.AppendUint32(b, 0)) // opt_endofopt
	return p
}

// Bytes returns the file.
func (p *Pcapng) Bytes() []byte { return p.b }

// ModifiedPcap rewrites a classic microsecond pcap file as the modified
// (Kuznetzov) format, in byte order order: magic 0xa1b2cd34, each record
// header followed by an interface index (the record's number), protocol
// 0x0800, packet type 0 and a byte of padding.
func ModifiedPcap(t testing.TB, pcap []byte, order binary.AppendByteOrder) []byte {
	t.Helper()
	in := binary.ByteOrder(binary.LittleEndian)
	switch {
	case len(pcap) < 24:
		t.Fatal("ModifiedPcap: no file header")
	case binary.BigEndian.Uint32(pcap) == 0xa1b2c3d4:
		in = binary.BigEndian
	case binary.LittleEndian.Uint32(pcap) != 0xa1b2c3d4:
		t.Fatal("ModifiedPcap: not a microsecond pcap file")
	}
	out := order.AppendUint32(nil, 0xa1b2cd34)
	out = order.AppendUint16(out, in.Uint16(pcap[4:]))
	out = order.AppendUint16(out, in.Uint16(pcap[6:]))
	for o := 8; o < 24; o += 4 {
		out = order.AppendUint32(out, in.Uint32(pcap[o:]))
	}
	for i, o := 0, 24; o < len(pcap); i++ {
		if o+16 > len(pcap) || o+16+int(in.Uint32(pcap[o+8:])) > len(pcap) {
			t.Fatal("ModifiedPcap: a cut record")
		}
		for f := 0; f < 16; f += 4 {
			out = order.AppendUint32(out, in.Uint32(pcap[o+f:]))
		}
		out = order.AppendUint32(out, uint32(i))
		out = order.AppendUint16(out, 0x0800)
		out = append(out, 0, 0)
		n := int(in.Uint32(pcap[o+8:]))
		out = append(out, pcap[o+16:o+16+n]...)
		o += 16 + n
	}
	return out
}

// InterfaceStats are the counts of a pcapng interface statistics block;
// an option left out counts 0.
type InterfaceStats struct {
	Recv, Drop, FilterAccept uint64
}

// PcapngStats reads a little-endian pcapng stream and returns, by
// interface name, the counts of each interface's last statistics block,
// and how many statistics blocks there are. It fails the test on a block
// that does not frame.
func PcapngStats(t testing.TB, b []byte) (map[string]InterfaceStats, int) {
	t.Helper()
	le := binary.LittleEndian
	var names []string
	stats := map[string]InterfaceStats{}
	n := 0
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("pcapng: %d trailing bytes", len(b))
		}
		typ, size := le.Uint32(b), int(le.Uint32(b[4:]))
		if size < 12 || size%4 != 0 || size > len(b) || int(le.Uint32(b[size-4:])) != size {
			t.Fatalf("pcapng: block of type %#x: bad length %d", typ, size)
		}
		body := b[8 : size-4]
		b = b[size:]
		off := map[uint32]int{1: 8, 5: 12}[typ]
		if off == 0 {
			continue
		}
		opts := map[uint16][]byte{}
		for o := off; o+4 <= len(body); {
			code, l := le.Uint16(body[o:]), int(le.Uint16(body[o+2:]))
			if code == 0 || o+4+l > len(body) {
				break
			}
			opts[code] = body[o+4 : o+4+l]
			o += 4 + (l+3)&^3
		}
		u64 := func(code uint16) uint64 {
			if v := opts[code]; len(v) == 8 {
				return le.Uint64(v)
			}
			return 0
		}
		if typ == 1 {
			names = append(names, string(opts[2]))
			continue
		}
		i := int(le.Uint32(body))
		if i >= len(names) {
			t.Fatalf("pcapng: statistics of interface %d of %d", i, len(names))
		}
		stats[names[i]] = InterfaceStats{Recv: u64(4), Drop: u64(5), FilterAccept: u64(6)}
		n++
	}
	return stats, n
}
