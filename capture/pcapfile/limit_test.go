package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// ngFile is a pcapng section of order with n interface descriptions, then
// names bytes of name resolution blocks, then one packet of interface 0.
func ngFile(order binary.AppendByteOrder, n, names int) []byte {
	b := order.AppendUint32(nil, BlockSectionHeader)
	b = order.AppendUint32(b, 28)
	b = order.AppendUint32(b, 0x1A2B3C4D)
	b = order.AppendUint16(b, 1)
	b = order.AppendUint16(b, 0)
	b = order.AppendUint64(b, ^uint64(0))
	b = order.AppendUint32(b, 28)
	for range n {
		b = order.AppendUint32(b, BlockInterface)
		b = order.AppendUint32(b, 20)
		b = order.AppendUint16(b, 1) // Ethernet
		b = order.AppendUint16(b, 0)
		b = order.AppendUint32(b, 0)
		b = order.AppendUint32(b, 20)
	}
	for ; names > 0; names -= 1 << 16 {
		b = order.AppendUint32(b, BlockNames)
		b = order.AppendUint32(b, 1<<16)
		b = order.AppendUint16(b, 0) // nrb_record_end
		b = order.AppendUint16(b, 0)
		b = append(b, make([]byte, 1<<16-16)...)
		b = order.AppendUint32(b, 1<<16)
	}
	b = order.AppendUint32(b, 6)
	b = order.AppendUint32(b, 32+60)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint64(b, 0)
	b = order.AppendUint32(b, 60)
	b = order.AppendUint32(b, 60)
	b = append(b, make([]byte, 60)...)
	return order.AppendUint32(b, 32+60)
}

// sevenBytes reads seven bytes at a time: block headers split across
// reads everywhere.
type sevenBytes struct{ r io.Reader }

func (o sevenBytes) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 7)]) }

// A pcapng section with more interfaces than MaxInterfaces, or more kept
// blocks (interface descriptions, names) than maxKeptBytes, ends in an error that says so, before the
// reader keeps them; up to the bounds the file reads whole, in either
// byte order and however the stream is cut.
func TestNgLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ifs, nrbs int
		want      string
	}{
		{"interfaces at the bound", MaxInterfaces, 0, ""},
		{"interfaces past the bound", MaxInterfaces + 1, 0, "more than 65536 interfaces"},
		{"a million interfaces", 1_000_000, 0, "more than 65536 interfaces"},
		{"names and an interface at the bound", 1, maxKeptBytes - 1<<16, ""},
		{"names past the bound", 1, maxKeptBytes + 1<<16, "more than 16 MiB of interface descriptions, name and secrets blocks"},
	} {
		for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
			for _, slow := range []bool{false, true} {
				if slow && (tc.ifs > MaxInterfaces+1 || tc.nrbs > 0) {
					continue
				}
				var in io.Reader = bytes.NewReader(ngFile(order, tc.ifs, tc.nrbs))
				if slow {
					in = sevenBytes{in}
				}
				r, err := NewReader(in)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				_, _, _, err = r.ReadPacket()
				var rerr *RecordError
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s (%v, seven bytes at a time %v): %v", tc.name, order, slow, err)
				case tc.want != "" && (!errors.As(err, &rerr) || !strings.Contains(err.Error(), tc.want)):
					t.Errorf("%s (%v, seven bytes at a time %v): error %v, want %q", tc.name, order, slow, err, tc.want)
				case tc.want == "" && r.NumInterfaces() != tc.ifs:
					t.Errorf("%s: %d interfaces read, want %d", tc.name, r.NumInterfaces(), tc.ifs)
				}
			}
		}
	}
}
