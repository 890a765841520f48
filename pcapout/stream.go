package pcapout

import (
	"fmt"
	"io"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/gopacket/gopacket/layers"
)

// StreamOptions say what a Stream writes.
type StreamOptions struct {
	Format Format
	// Application, Hardware and OS describe a pcapng section.
	Application, Hardware, OS string
	// FlushSize is how much is buffered before a write: a reader of a
	// pipe sees nothing before it fills. 0 is DefaultFlushSize.
	FlushSize int
}

// DefaultFlushSize is a Stream's buffer by default, as bufio's.
const DefaultFlushSize = 4096

// Stream writes one capture to an io.Writer, through the encoders sinkd's
// files use, with interfaces declared as they appear, each with its own
// link type and snap length: dpcap fetch's merged output. It neither
// rotates nor counts.
type Stream struct {
	w      io.Writer
	opts   StreamOptions
	buf    output // the encoders append here
	enc    encoder
	ng     *pcapngEncoder // enc, for pcapng
	ifaces int
}

// NewStream returns a stream to w; nothing is written before the first
// interface or Close.
func NewStream(w io.Writer, opts StreamOptions) *Stream {
	if opts.FlushSize <= 0 {
		opts.FlushSize = DefaultFlushSize
	}
	return &Stream{w: w, opts: opts}
}

// Begin writes the stream's header now, before any interface: a pcapng
// section header, or a pcap file header of link type lt and snap length
// snap, which a pcap stream's interfaces then share. A live stream begins
// so that its reader starts at once.
func (s *Stream) Begin(lt layers.LinkType, snap uint32) error {
	switch {
	case s.enc != nil:
		return nil
	case s.opts.Format == FormatPcapng:
		s.ng = &pcapngEncoder{app: s.opts.Application, hardware: s.opts.Hardware, os: s.opts.OS}
		s.enc = s.ng
	default:
		s.enc = &pcapEncoder{snapLen: snap, linkType: lt}
	}
	s.enc.header(&s.buf, nil)
	return s.flush(s.opts.FlushSize)
}

// AddInterface declares an interface of link type lt whose packets are
// at most snap bytes, and returns its index. The first starts the stream;
// in pcap, it alone is declared: its link type is the file's, and the
// snap length the largest (the packets come from several files).
func (s *Stream) AddInterface(ifc Interface, lt layers.LinkType, snap uint32) (int, error) {
	switch {
	case s.opts.Format == FormatPcapng:
		if s.ng == nil {
			_ = s.Begin(lt, snap) // buffered: a write comes below
		}
		s.ng.linkType, s.ng.snapLen = lt, snap
		s.ng.addInterface(&s.buf, ifc)
	case s.enc == nil:
		_ = s.Begin(lt, capture.MaxSnapLen)
	}
	s.ifaces++
	return s.ifaces - 1, s.flush(s.opts.FlushSize)
}

// WritePacket writes a packet of interface iface, captured at ts, length
// bytes on the wire.
func (s *Stream) WritePacket(iface int, ts time.Time, data []byte, length int) error {
	switch {
	case iface < 0 || iface >= s.ifaces:
		return fmt.Errorf("interface %d of %d", iface, s.ifaces)
	case len(data) > length:
		return fmt.Errorf("%d bytes captured of a packet of %d", len(data), length)
	}
	s.enc.packet(&s.buf, iface, ts, data, length)
	return s.flush(s.opts.FlushSize)
}

// InterfaceStats are one interface's counts for a stream's reader, in a
// pcapng interface statistics block.
type InterfaceStats struct {
	// Received is isb_ifrecv, Dropped isb_ifdrop and Accepted
	// isb_filteraccept.
	Received, Dropped, Accepted uint64
}

// WriteStats writes interface iface's statistics block for the span from
// start to end, in pcapng; a pcap stream has nowhere to write them.
func (s *Stream) WriteStats(iface int, st InterfaceStats, start, end time.Time) error {
	switch {
	case s.ng == nil:
		return nil
	case iface < 0 || iface >= s.ifaces:
		return fmt.Errorf("interface %d of %d", iface, s.ifaces)
	}
	b := isbHead(iface, start, end)
	b = optU64(b, isbIfRecv, st.Received)
	b = optU64(b, isbIfDrop, st.Dropped)
	b = optU64(b, isbFilterOK, st.Accepted)
	b = opt(b, optEnd, nil)
	block(&s.buf, ngISB, b)
	return s.flush(s.opts.FlushSize)
}

// Flush writes what is buffered now.
func (s *Stream) Flush() error { return s.flush(1) }

// Close writes what is buffered. A stream without interfaces is a file
// header alone: pcap for Ethernet, or a pcapng section header without
// options.
func (s *Stream) Close() error {
	switch {
	case s.enc != nil:
	case s.opts.Format == FormatPcapng:
		block(&s.buf, ngSHB, sectionHeader())
	default:
		if _, err := s.AddInterface(Interface{}, layers.LinkTypeEthernet, 0); err != nil {
			return err
		}
	}
	return s.flush(0)
}

// flush writes the buffer once it holds at least n bytes.
func (s *Stream) flush(n int) error {
	if len(s.buf.buf) < n || len(s.buf.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf.buf)
	s.buf.buf = s.buf.buf[:0]
	return err
}
