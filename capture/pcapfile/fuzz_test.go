package pcapfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dpcap/dpcap/internal/testkit"
)

// FuzzReader feeds arbitrary bytes as a capture file: sinkd -r and dpcap
// replay read files from anyone. It must end in an error or EOF, never a
// panic or a hang. The seeds are the real captures in testdata.
func FuzzReader(f *testing.F) {
	names, _ := filepath.Glob("../../testdata/*.pcap")
	more, _ := filepath.Glob("../../testdata/envelopes/*.pcap")
	for _, n := range append(names, more...) {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a})
	// What ngLimit rewrites (power-of-two resolutions, versions), the
	// modified format, gzip.
	frame := make([]byte, 60)
	ng := (&testkit.Pcapng{Order: binary.BigEndian}).Section(1, 2).Interface(0x80|30).Interface(6).
		Packet(0, 1<<62, frame).Packet(1, 1e15, frame).SimplePacket(frame).Section(2, 0).Bytes()
	f.Add(ng)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(ng)
	zw.Close()
	f.Add(z.Bytes())
	if pcap, err := os.ReadFile("../../testdata/envelopes/nic-ether.pcap"); err == nil && len(pcap) >= 952 { // seven whole records
		f.Add(testkit.ModifiedPcap(f, pcap[:952], binary.LittleEndian))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			if _, _, _, err := r.ReadPacket(); err != nil {
				if !errors.Is(err, io.EOF) && err.Error() == "" {
					t.Fatal("an error without a message")
				}
				return
			}
		}
	})
}
