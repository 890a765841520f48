package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestErrorsNameThePacket: a corrupt or cut file's error names the packet
// (from 1) and, in a pcap file, the byte where its record starts, for
// both readers and across batches.
func TestErrorsNameThePacket(t *testing.T) {
	le := binary.LittleEndian
	record := func(incl, data int) []byte {
		r := make([]byte, RecordHeaderLen+data)
		le.PutUint32(r[8:], uint32(incl))
		le.PutUint32(r[12:], uint32(incl))
		return r
	}
	pcap := func(records ...[]byte) []byte {
		h := make([]byte, FileHeaderLen)
		le.PutUint32(h[0:], MagicMicro)
		le.PutUint16(h[4:], 2)
		le.PutUint16(h[6:], 4)
		le.PutUint32(h[16:], maxRecord)
		le.PutUint32(h[20:], 1)
		return bytes.Join(append([][]byte{h}, records...), nil)
	}
	good := record(60, 60) // 76 bytes
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: 60, Length: 60}
		if err := w.WritePacket(ci, make([]byte, 60)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	tests := []struct {
		name string
		file []byte
		// the error from OpenSource's block reader (pcap) or pcapgo
		// (pcapng), and from ReadFile (pcapgo for both)
		source, readFile string
		packet           int
		offset           int64
	}{
		{"record longer than the largest snap length", pcap(good, good, good, record(300000, 60)),
			"packet 4 at byte 252: captured length 300000 > 262144, the largest snap length",
			"packet 4 at byte 252: ", 4, 252},
		{"cut in a record header", pcap(good, good, good[:10]),
			"packet 3 at byte 176: record header: unexpected EOF", "packet 3 at byte 176: unexpected EOF", 3, 176},
		{"cut in a record's data", pcap(good, good, good[:40]),
			"packet 3 at byte 176: 60-byte record: unexpected EOF", "packet 3 at byte 176: unexpected EOF", 3, 176},
		{"pcapng cut in the fifth packet", ng.Bytes()[:ng.Len()-10], "packet 5: ", "packet 5: ", 5, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "bad")
			if err := os.WriteFile(name, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			src, err := OpenSource(name)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			read := 0
			for err == nil {
				var b []capture.Packet
				b, err = src.Read(2) // batches end before the bad record, and on it
				read += len(b)
			}
			for _, c := range []struct {
				reader string
				err    error
				want   string
			}{{"OpenSource", err, "read " + name + ": " + tt.source}, {"ReadFile", func() error { _, _, err := ReadFile(name); return err }(), name + ": " + tt.readFile}} {
				var re *RecordError
				t.Logf("%s: %v", c.reader, c.err)
				if c.err == nil || !strings.HasPrefix(c.err.Error(), c.want) || !errors.As(c.err, &re) || re.Packet != tt.packet || re.Offset != tt.offset {
					t.Errorf("%s: %v, want %q... (packet %d, offset %d)", c.reader, c.err, c.want, tt.packet, tt.offset)
				}
			}
			if read != tt.packet-1 || errors.Is(err, io.EOF) {
				t.Errorf("OpenSource read %d packets before the error, want %d", read, tt.packet-1)
			}
		})
	}
}
