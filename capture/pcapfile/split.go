package pcapfile

import (
	"encoding/binary"
	"fmt"
)

// Unit is one piece of a capture stream as it lies in it: a pcap file
// header or record, or a pcapng block.
type Unit uint8

// The units a Splitter tells apart.
const (
	UnitFileHeader Unit = iota + 1 // a pcap file header
	UnitRecord                     // a pcap record
	UnitSection                    // a pcapng section header block
	UnitInterface                  // an interface description block
	UnitPacket                     // an enhanced, simple or obsolete packet block
	UnitStats                      // an interface statistics block
	UnitOther                      // any other pcapng block
)

// The pcapng block types a Splitter counts as packets beyond the
// enhanced packet block, and the options it reads.
const (
	blockSimplePacket uint32 = 3
	optIfName         uint16 = 2 // if_name
	optIfRecv         uint16 = 4 // isb_ifrecv
	optIfDrop         uint16 = 5 // isb_ifdrop
	optFilterAccept   uint16 = 6 // isb_filteraccept
)

// Splitter cuts a pcap or pcapng stream into its units without copying
// or changing them, for a reader that passes the stream on whole units at
// a time (a live viewer's, which must never pass half a block when its
// connection breaks). Its zero value expects the start of a stream.
type Splitter struct {
	format     Format
	order      binary.ByteOrder // the pcap file's, or the current section's
	pastHeader bool             // a pcap file's header was handed out
}

// Next returns the unit that b begins with and its length; n is 0 when b
// does not hold the whole unit yet. A stream that is no capture, or a
// unit longer than a reader accepts, is an error.
func (s *Splitter) Next(b []byte) (u Unit, n int, err error) {
	if len(b) < 12 {
		return 0, 0, nil
	}
	if s.format == FormatUnknown {
		switch s.format, s.order = Sniff(b); s.format {
		case FormatPcapMicro, FormatPcapNano, FormatPcapng:
		default:
			s.format = FormatUnknown
			return 0, 0, fmt.Errorf("neither pcap nor pcapng (begins %x)", b[:4])
		}
	}
	if s.format != FormatPcapng {
		if !s.pastHeader {
			u, n, err = whole(UnitFileHeader, FileHeaderLen, b)
			s.pastHeader = n > 0
			return u, n, err
		}
		if len(b) < RecordHeaderLen {
			return 0, 0, nil
		}
		incl := s.order.Uint32(b[8:12])
		if incl > maxRecord {
			return 0, 0, fmt.Errorf("pcap record of %d bytes, more than %d", incl, maxRecord)
		}
		return whole(UnitRecord, RecordHeaderLen+int(incl), b)
	}
	typ := binary.LittleEndian.Uint32(b[:4])
	if typ == BlockSectionHeader {
		if s.order = SectionByteOrder(b[8:12]); s.order == nil {
			return 0, 0, fmt.Errorf("pcapng section header with byte-order magic %x", b[8:12])
		}
	}
	typ, length := s.order.Uint32(b[:4]), s.order.Uint32(b[4:8])
	if length < 12 || length%4 != 0 || length > maxBlock {
		return 0, 0, fmt.Errorf("pcapng block of type %#x and length %d", typ, length)
	}
	switch typ {
	case BlockSectionHeader:
		u = UnitSection
	case BlockInterface:
		u = UnitInterface
	case BlockEnhancedPacket, blockSimplePacket, blockPacket:
		u = UnitPacket
	case BlockInterfaceStats:
		u = UnitStats
	default:
		u = UnitOther
	}
	return whole(u, int(length), b)
}

// whole returns u and n when b holds n bytes, else u and 0.
func whole(u Unit, n int, b []byte) (Unit, int, error) {
	if len(b) < n {
		n = 0
	}
	return u, n, nil
}

// Format is the stream's format; FormatUnknown before its first unit.
func (s *Splitter) Format() Format { return s.format }

// IfStats are an interface statistics block's counts.
type IfStats struct {
	// Recv is isb_ifrecv, Drop isb_ifdrop and Accept isb_filteraccept;
	// each Has says the block had it.
	Recv, Drop, Accept          uint64
	HasRecv, HasDrop, HasAccept bool
}

// IfStats reads an interface statistics block (a UnitStats of this
// stream): its interface and counts; ok is false for a block too short to
// be one.
func (s *Splitter) IfStats(block []byte) (iface uint32, st IfStats, ok bool) {
	if len(block) < 24 {
		return 0, st, false
	}
	iface = s.order.Uint32(block[8:12])
	for code, v := range options(s.order, block, 20) {
		if len(v) != 8 {
			continue
		}
		n := s.order.Uint64(v)
		switch code {
		case optIfRecv:
			st.Recv, st.HasRecv = n, true
		case optIfDrop:
			st.Drop, st.HasDrop = n, true
		case optFilterAccept:
			st.Accept, st.HasAccept = n, true
		}
	}
	return iface, st, true
}

// Interface reads a packet block's interface (a UnitPacket of this
// pcapng stream); ok is false for a block too short to say.
func (s *Splitter) Interface(block []byte) (iface uint32, ok bool) {
	if len(block) < 12 {
		return 0, false
	}
	switch s.order.Uint32(block[:4]) {
	case BlockEnhancedPacket:
		return s.order.Uint32(block[8:12]), true
	case blockPacket:
		return uint32(s.order.Uint16(block[8:10])), true
	}
	return 0, true // a simple packet block: the first interface
}

// IfName reads an interface description block's if_name (a UnitInterface
// of this stream); empty when it has none.
func (s *Splitter) IfName(block []byte) string {
	if len(block) < 20 {
		return ""
	}
	for code, v := range options(s.order, block, 16) {
		if code == optIfName {
			return string(v)
		}
	}
	return ""
}
