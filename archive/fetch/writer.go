package fetch

import (
	"bufio"
	"encoding/binary"

	"fmt"
	"io"
	"runtime"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/pcapfile"
)

// writer is the merged output.
type writer interface {
	addInterface(k ifaceKey) (int, error)
	write(ci gopacket.CaptureInfo, data []byte) error
	close() error
}

func newWriter(w io.Writer, pcap bool) writer {
	if pcap {
		return &pcapWriter{w: w}
	}
	return &ngWriter{w: w}
}

// ngWriter writes pcapng; the section starts with the first interface.
type ngWriter struct {
	w  io.Writer
	ng *pcapgo.NgWriter
	n  int
}

var section = pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
	Application: "dpcap fetch", OS: runtime.GOOS, Hardware: runtime.GOARCH,
}}

func (n *ngWriter) addInterface(k ifaceKey) (int, error) {
	ifc := pcapgo.NgInterface{Name: k.name, Description: k.desc, LinkType: k.link, SnapLength: k.snap, TimestampResolution: 9}
	var err error
	if n.ng == nil {
		n.ng, err = pcapgo.NewNgWriterInterface(n.w, ifc, section)
		if err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
	} else if _, err = n.ng.AddInterface(ifc); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	n.n++
	return n.n - 1, nil
}

func (n *ngWriter) write(ci gopacket.CaptureInfo, data []byte) error {
	if err := n.ng.WritePacket(ci, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// close flushes; a capture without packets is a section header alone.
func (n *ngWriter) close() error {
	if n.ng == nil {
		le := binary.LittleEndian
		b := le.AppendUint32(nil, pcapfile.BlockSectionHeader)
		b = le.AppendUint32(b, 28)
		b = le.AppendUint32(b, pcapfile.ByteOrderMagic)
		b = le.AppendUint16(b, 1)
		b = le.AppendUint16(b, 0)
		b = le.AppendUint64(b, ^uint64(0))
		b = le.AppendUint32(b, 28)
		_, err := n.w.Write(b)
		return err
	}
	if err := n.ng.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// pcapWriter writes nanosecond pcap: one link type, no interfaces.
type pcapWriter struct {
	w    io.Writer
	bw   *bufio.Writer
	p    *pcapgo.Writer
	link layers.LinkType
}

func (p *pcapWriter) addInterface(k ifaceKey) (int, error) {
	if p.p == nil {
		p.bw = bufio.NewWriterSize(p.w, 1<<20)
		p.p = pcapgo.NewWriterNanos(p.bw)
		p.link = k.link
		if err := p.p.WriteFileHeader(capture.MaxSnapLen, k.link); err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
	} else if k.link != p.link {
		return 0, fmt.Errorf("the packets have link types %s and %s, which pcap cannot hold together: write pcapng", p.link, k.link)
	}
	return 0, nil
}

func (p *pcapWriter) write(ci gopacket.CaptureInfo, data []byte) error {
	if err := p.p.WritePacket(ci, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (p *pcapWriter) close() error {
	if p.p == nil {
		if _, err := p.addInterface(ifaceKey{link: layers.LinkTypeEthernet}); err != nil {
			return err
		}
	}
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
