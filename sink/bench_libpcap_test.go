//go:build cgo && libpcap

package sink

import (
	"testing"

	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/pcapout"
)

// BenchmarkEnginePcapngFilter adds what issue 4 puts on the hot path: a
// source lookup per packet, pcapng blocks and a libpcap filter.
func BenchmarkEnginePcapngFilter(b *testing.B) {
	flt, err := filter.Compile("tcp or (vlan and udp port 53)", 262144)
	if err != nil {
		b.Fatal(err)
	}
	benchEngine(b, pcapout.Options{Format: pcapout.FormatPcapng}, Config{Filter: flt})
}
