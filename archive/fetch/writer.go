package fetch

import (
	"fmt"
	"io"
	"runtime"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/pcapout"
)

// writer is the merged output, written through pcapout's encoders: pcapng
// (the section starts with the first interface) or nanosecond pcap (one
// link type, no interfaces).
type writer struct {
	s      *pcapout.Stream
	pcap   bool
	link   layers.LinkType // pcap: the file's
	ifaces int
}

func newWriter(w io.Writer, pcap bool) *writer {
	opts := pcapout.StreamOptions{Format: pcapout.FormatPcapng, Application: "dpcap fetch", OS: runtime.GOOS, Hardware: runtime.GOARCH}
	if pcap {
		opts = pcapout.StreamOptions{Format: pcapout.FormatPcap, FlushSize: 1 << 20}
	}
	return &writer{s: pcapout.NewStream(w, opts), pcap: pcap}
}

func (w *writer) addInterface(k ifaceKey) (int, error) {
	if w.pcap && w.ifaces > 0 {
		if k.link != w.link {
			return 0, fmt.Errorf("the packets have link types %s and %s, which pcap cannot hold together: write pcapng", w.link, k.link)
		}
		return 0, nil
	}
	i, err := w.s.AddInterface(pcapout.Interface{Name: k.name, Description: k.desc}, k.link, k.snap)
	if err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	w.link = k.link
	w.ifaces++
	return i, nil
}

func (w *writer) write(ci gopacket.CaptureInfo, data []byte) error {
	if err := w.s.WritePacket(ci.InterfaceIndex, ci.Timestamp, data, ci.Length); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// close flushes; a capture without packets is a file header alone.
func (w *writer) close() error {
	if err := w.s.Close(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
