package sink

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// BenchmarkOffline measures sinkd -r's path: a pcap file of b.N NIC
// envelopes around the frames of testdata/vm-traffic.pcap (60-1514 B, as
// scripts/make-bench-input.py makes them), read, decapsulated and written
// to a new pcap file, all in the page cache. One op is one packet.
func BenchmarkOffline(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	dir := b.TempDir()
	in := filepath.Join(dir, "in.pcap")
	size := writeEnvelopes(b, in, b.N)
	src, err := pcapfile.OpenSource(in)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	out, err := pcapout.Open(pcapout.Options{Path: filepath.Join(dir, "out.pcap"), LinkType: layers.LinkTypeEthernet, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	eng := New(Config{Source: src, Output: out, Decoder: decap.NewDecoder(decap.DefaultPorts()), Logger: logger})
	b.SetBytes(size / int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	if err := eng.Run(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if s := eng.Stats(); s.Written != uint64(b.N) {
		b.Fatalf("wrote %d of %d packets", s.Written, b.N)
	}
}

// writeEnvelopes writes n envelopes to a new pcap file name and returns
// its size.
func writeEnvelopes(b *testing.B, name string, n int) int64 {
	frames := testkit.VMFrames(b)
	tmpl, err := decap.Envelope{
		DstMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 1}, SrcMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 2},
		Src: netip.MustParseAddr("2001:db8::10"), Dst: netip.MustParseAddr("2001:db8:f::1"),
		SrcPort: 3000, DstPort: decap.DefaultNICPort,
	}.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	le := binary.LittleEndian
	hdr := le.AppendUint32(nil, 0xa1b2c3d4)
	hdr = le.AppendUint16(le.AppendUint16(hdr, 2), 4)
	hdr = le.AppendUint32(le.AppendUint32(hdr, 0), 0)
	hdr = le.AppendUint32(le.AppendUint32(hdr, 262144), uint32(layers.LinkTypeEthernet))
	w.Write(hdr)
	var rec, env []byte
	for i := range n {
		env = decap.Encap(env[:0], &tmpl, frames[i%len(frames)], false)
		rec = le.AppendUint32(rec[:0], uint32(1700000000+i/1000000))
		rec = le.AppendUint32(rec, uint32(i%1000000))
		rec = le.AppendUint32(rec, uint32(len(env)))
		rec = le.AppendUint32(rec, uint32(len(env)))
		w.Write(append(rec, env...))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		b.Fatal(err)
	}
	return size
}
