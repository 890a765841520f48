package pcapfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dpcap/dpcap/capture"
)

// Source reads a capture file as a capture.Source, for offline conversion.
type Source struct {
	r     *Reader      // pcapng (and anything but classic pcap)
	b     *blockReader // classic pcap, read in blocks
	c     io.Closer
	name  string
	arena []byte
	pkts  []capture.Packet
	err   error // a read error met after a batch had begun
	shut  bool
}

// OpenSource opens a capture file ("-" for standard input).
func OpenSource(name string) (*Source, error) {
	var rc io.ReadCloser = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, errors.Unwrap(err))
		}
		rc = f
	}
	// The magic says which reader; both read it again.
	head := make([]byte, 4)
	n, _ := io.ReadFull(rc, head)
	stream := io.MultiReader(bytes.NewReader(head[:n]), rc)
	b, ok, err := newBlockReader(stream, head[:n])
	if ok {
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &Source{b: b, c: rc, name: name}, nil
	}
	r, err := NewReader(stream)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Source{r: r, c: rc, name: name, arena: make([]byte, 0, 1<<20)}, nil
}

// Read implements capture.Source: up to max packets, valid until the next
// Read (classic pcap: where they lie in the block read; pcapng: copied
// out of the reader). It returns io.EOF at the end.
func (s *Source) Read(max int) ([]capture.Packet, error) {
	if s.shut {
		return nil, io.EOF
	}
	if s.err != nil {
		err := s.err
		s.err = nil
		return nil, err
	}
	if cap(s.pkts) < max {
		s.pkts = make([]capture.Packet, max)
	}
	if s.b != nil {
		n, err := s.b.read(s.pkts[:max])
		if err != nil && !errors.Is(err, io.EOF) {
			err = fmt.Errorf("read %s: %w", s.name, err)
		}
		if n == 0 {
			return nil, err
		}
		s.err = err
		return s.pkts[:n], nil
	}
	s.arena = s.arena[:0]
	n := 0
	for n < max {
		data, ci, lt, err := s.r.ReadPacket()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("read %s: %w", s.name, err)
			}
			if n == 0 {
				return nil, err
			}
			s.err = err
			break
		}
		// A packet that does not fit moves the arena; the earlier packets
		// keep the old one alive until the batch is done.
		start := len(s.arena)
		s.arena = append(s.arena, data...)
		s.pkts[n] = capture.Packet{
			Data:      s.arena[start:len(s.arena):len(s.arena)],
			Length:    ci.Length,
			Timestamp: ci.Timestamp,
			LinkType:  lt,
		}
		n++
	}
	return s.pkts[:n], nil
}

// SetReadDeadline implements capture.Source; reading a file never waits.
func (s *Source) SetReadDeadline(time.Time) error { return nil }

// Drops implements capture.Source; a file drops nothing.
func (s *Source) Drops() (uint64, error) { return 0, nil }

// Shut implements capture.Source: a file queues nothing, so the packets
// not yet read are not received at all (-c, or a stop mid-conversion).
func (s *Source) Shut() error {
	s.shut = true
	return nil
}

// Close implements capture.Source.
func (s *Source) Close() error { return s.c.Close() }

var _ capture.Source = (*Source)(nil)

// Framing implements capture.Source: the file's records, frames of its
// link type.
func (s *Source) Framing() capture.Framing { return capture.Framing{Kind: capture.Frames} }
