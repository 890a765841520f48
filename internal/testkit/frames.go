package testkit

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gopacket/gopacket"
)

// Serialize lays ls out as one frame, with lengths and checksums computed,
// failing the test if gopacket cannot.
func Serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// Testdata is the path of name in the repository's testdata directory,
// wherever the test that asks runs from.
func Testdata(name string) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "testdata", name)
}
