package pcapfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
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
