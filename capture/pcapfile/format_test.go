package pcapfile

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestSniff tells apart the files gopacket's writers make and the byte
// orders and resolutions other tools write.
func TestSniff(t *testing.T) {
	var micro, nano, ng bytes.Buffer
	if err := pcapgo.NewWriter(&micro).WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	if err := pcapgo.NewWriterNanos(&nano).WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	be, le := binary.BigEndian, binary.LittleEndian
	for _, tt := range []struct {
		name   string
		head   []byte
		format Format
		order  binary.ByteOrder
	}{
		{"pcapgo micro", micro.Bytes(), FormatPcapMicro, le},
		{"pcapgo nano", nano.Bytes(), FormatPcapNano, le},
		{"pcapgo pcapng", ng.Bytes(), FormatPcapng, nil},
		{"big-endian micro", be.AppendUint32(nil, MagicMicro), FormatPcapMicro, be},
		{"big-endian nano", be.AppendUint32(nil, MagicNano), FormatPcapNano, be},
		{"big-endian pcapng", be.AppendUint32(nil, BlockSectionHeader), FormatPcapng, nil},
		{"short", []byte{0xd4, 0xc3, 0xb2}, FormatUnknown, nil},
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, FormatUnknown, nil},
	} {
		format, order := Sniff(tt.head)
		if format != tt.format || order != tt.order {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, format, order, tt.format, tt.order)
		}
	}
	if got := SectionByteOrder(ng.Bytes()[8:12]); got != le {
		t.Errorf("pcapgo's section: byte order %v, want little-endian", got)
	}
	if got := SectionByteOrder(be.AppendUint32(nil, ByteOrderMagic)); got != be {
		t.Errorf("big-endian section: byte order %v", got)
	}
	if got := SectionByteOrder([]byte{1, 2, 3, 4}); got != nil {
		t.Errorf("garbage: byte order %v, want none", got)
	}
}
