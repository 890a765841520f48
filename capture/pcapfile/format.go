package pcapfile

import "encoding/binary"

// The capture file formats' constants, in one place for every reader and
// writer of them (pcapout, archive/upload's repair, archive/fetch).
const (
	// MagicMicro and MagicNano begin a pcap file, in the file's byte
	// order: microsecond or nanosecond timestamps.
	MagicMicro uint32 = 0xa1b2c3d4
	MagicNano  uint32 = 0xa1b23c4d
	// MagicModified begins a modified (Kuznetzov) pcap file: microsecond
	// timestamps, records with modifiedRecordHeaderLen-byte headers.
	MagicModified uint32 = 0xa1b2cd34
	// FileHeaderLen and RecordHeaderLen are pcap's header sizes.
	FileHeaderLen   = 24
	RecordHeaderLen = 16
	// modifiedRecordHeaderLen is a modified pcap record header's size:
	// pcap's, then the interface index (4 bytes), protocol (2), packet
	// type (1) and padding (1) of Alexey Kuznetzov's patched libpcap.
	modifiedRecordHeaderLen = 24

	// BlockSectionHeader begins a pcapng section; it reads the same in
	// either byte order.
	BlockSectionHeader uint32 = 0x0A0D0D0A
	// ByteOrderMagic follows a section header's length, in the section's
	// byte order.
	ByteOrderMagic uint32 = 0x1A2B3C4D
	// The other pcapng block types.
	BlockInterface      uint32 = 1
	BlockNames          uint32 = 4
	BlockInterfaceStats uint32 = 5
	BlockEnhancedPacket uint32 = 6
	BlockDecryptSecrets uint32 = 0x0A

	// gzipMagic begins a gzip-compressed file of any format.
	gzipMagic = "\x1f\x8b"
)

// Format is a capture file's format, as its first four bytes tell it.
type Format uint8

// The formats Sniff tells apart.
const (
	FormatUnknown   Format = iota
	FormatPcapMicro        // pcap, microsecond timestamps
	FormatPcapNano         // pcap, nanosecond timestamps
	FormatPcapng
	FormatPcapModified // modified (Kuznetzov) pcap, microsecond timestamps
)

// Sniff tells a capture file's format from its first four bytes and, for
// pcap, its byte order (a pcapng section says its own: SectionByteOrder).
// Fewer than four bytes, or another magic number, are FormatUnknown.
func Sniff(head []byte) (Format, binary.ByteOrder) {
	if len(head) < 4 {
		return FormatUnknown, nil
	}
	switch le, be := binary.LittleEndian.Uint32(head), binary.BigEndian.Uint32(head); {
	case le == BlockSectionHeader:
		return FormatPcapng, nil
	case le == MagicMicro:
		return FormatPcapMicro, binary.LittleEndian
	case be == MagicMicro:
		return FormatPcapMicro, binary.BigEndian
	case le == MagicNano:
		return FormatPcapNano, binary.LittleEndian
	case be == MagicNano:
		return FormatPcapNano, binary.BigEndian
	case le == MagicModified:
		return FormatPcapModified, binary.LittleEndian
	case be == MagicModified:
		return FormatPcapModified, binary.BigEndian
	}
	return FormatUnknown, nil
}

// SectionByteOrder reads a pcapng section's byte-order magic (the four
// bytes at offset 8 of its header); nil when it is neither order's.
func SectionByteOrder(magic []byte) binary.ByteOrder {
	switch {
	case len(magic) < 4:
	case binary.LittleEndian.Uint32(magic) == ByteOrderMagic:
		return binary.LittleEndian
	case binary.BigEndian.Uint32(magic) == ByteOrderMagic:
		return binary.BigEndian
	}
	return nil
}
