package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeRawPcap writes n records of random sizes (some larger than a block)
// in the given byte order and time resolution.
func writeRawPcap(t *testing.T, order binary.ByteOrder, nano bool, n int) string {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, FileHeaderLen)
	magic := MagicMicro
	if nano {
		magic = MagicNano
	}
	order.PutUint32(h[0:], magic)
	order.PutUint16(h[4:], 2)
	order.PutUint16(h[6:], 4)
	order.PutUint32(h[16:], maxRecord)
	order.PutUint32(h[20:], 1)
	b.Write(h)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		size := 60 + r.IntN(1500)
		if i%500 == 7 {
			size = blockSize/2 + r.IntN(maxRecord)
		}
		size = min(size, maxRecord)
		rec := make([]byte, RecordHeaderLen+size)
		order.PutUint32(rec[0:], uint32(1700000000+i))
		order.PutUint32(rec[4:], uint32(i*7%1000000))
		order.PutUint32(rec[8:], uint32(size))
		order.PutUint32(rec[12:], uint32(size+i%3))
		for j := RecordHeaderLen; j < len(rec); j++ {
			rec[j] = byte(i + j)
		}
		b.Write(rec)
	}
	name := filepath.Join(t.TempDir(), "f.pcap")
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestBlockReaderMatchesPcapgo: the block reader hands out what pcapgo
// reads, record for record, in both byte orders and resolutions, with
// records across block boundaries and larger than a block.
func TestBlockReaderMatchesPcapgo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		nano  bool
	}{{"le-us", binary.LittleEndian, false}, {"be-us", binary.BigEndian, false}, {"le-ns", binary.LittleEndian, true}, {"be-ns", binary.BigEndian, true}} {
		t.Run(tc.name, func(t *testing.T) {
			name := writeRawPcap(t, tc.order, tc.nano, 3000)
			want, lt, err := ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			src, err := OpenSource(name)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if src.b == nil {
				t.Fatal("a classic pcap file did not take the block reader")
			}
			i := 0
			for {
				pkts, err := src.Read(64)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range pkts {
					w := want[i]
					if !bytes.Equal(p.Data, w.Data) || p.Length != w.Info.Length || !p.Timestamp.Equal(w.Info.Timestamp) || p.LinkType != lt {
						t.Fatalf("record %d: got %d bytes (length %d, %v, %v), want %d (length %d, %v, %v)", i,
							len(p.Data), p.Length, p.Timestamp, p.LinkType, len(w.Data), w.Info.Length, w.Info.Timestamp, lt)
					}
					i++
				}
			}
			if i != len(want) {
				t.Fatalf("read %d records, want %d", i, len(want))
			}
		})
	}
}

// TestBlockReaderTruncated: a file cut inside a record ends with an error
// after the complete records, never a short packet.
func TestBlockReaderTruncated(t *testing.T) {
	name := writeRawPcap(t, binary.LittleEndian, false, 100)
	data, _ := os.ReadFile(name)
	for _, cut := range []int{len(data) - 1, len(data) - 1000, FileHeaderLen + 5} {
		short := filepath.Join(t.TempDir(), "short.pcap")
		os.WriteFile(short, data[:cut], 0o644)
		src, err := OpenSource(short)
		if err != nil {
			t.Fatal(err)
		}
		var rerr error
		for rerr == nil {
			_, rerr = src.Read(64)
		}
		if !errors.Is(rerr, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: %v, want unexpected EOF", cut, rerr)
		}
		src.Close()
	}
}
