package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
)

// Progress counts a watch while it runs; its fields may be read at any
// time.
type Progress struct {
	// Frames is the frames passed to the output.
	Frames atomic.Uint64
	// Lost is the frames the sink lost for this viewer (its queue was
	// full), as its statistics said last.
	Lost atomic.Uint64
	// Reconnects is how many times the watch connected again.
	Reconnects atomic.Uint64
}

// Summary is what a watch did.
type Summary struct {
	Frames, Lost, Reconnects uint64
	// Ports are the counts by the stream's interfaces (pcapng: a port of
	// the sink's map or a source), in the order they came.
	Ports []PortCounts
}

// PortCounts are one port's counts for a viewer, summed over the
// stream's sections.
type PortCounts struct {
	Name string
	// Frames is the frames of the port passed to the output.
	Frames uint64
	// Received (isb_ifrecv) is the port's frames the sink offered this
	// viewer, Lost (isb_ifdrop) those it lost for it, Accepted
	// (isb_filteraccept) those that matched its expression.
	Received, Lost, Accepted uint64
}

// Options tune a watch.
type Options struct {
	// Logf says when the sink goes away and when the watch is back;
	// nil says nothing.
	Logf func(format string, args ...any)
	// Progress, if set, is updated as the frames come.
	Progress *Progress
	// Connected, if set, is called each time the sink answers a
	// stream: from then on the frames it writes come.
	Connected func()
	// MinBackoff and MaxBackoff bound the wait before a reconnection,
	// which doubles from the first to the second while the sink stays
	// away (0: 0.5 s and 10 s).
	MinBackoff, MaxBackoff time.Duration
}

// The waits between reconnections by default.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// drainAfterCount is how long a stream that delivered its last frame is
// still read for the sink's final statistics.
const drainAfterCount = 2 * time.Second

// ErrNotCapture is a stream that is not the capture asked for.
var ErrNotCapture = errors.New("not the capture asked for")

// Watch streams r's frames from the sink to out until ctx ends, r.Count
// frames came or the sink refuses the viewer. What reaches out is whole
// pcap records or pcapng blocks as the sink sent them, one capture across
// reconnections: each new connection's pcapng is a new section, a pcap's
// repeated file header is left out. The first connection must succeed;
// after it, a sink that goes away is asked again with a growing wait,
// until it answers or refuses (400, 401, 403, 404: a *StatusError). An
// end by ctx is no error.
func (s *Sink) Watch(ctx context.Context, r Request, out io.Writer, o Options) (Summary, error) {
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	w := &watch{sink: s, req: r, out: out, opts: o, p: o.Progress}
	wait := o.MinBackoff
	for first := true; ; first = false {
		streamed, err := w.stream(ctx)
		sum := Summary{Frames: w.p.Frames.Load(), Lost: w.p.Lost.Load(), Reconnects: w.p.Reconnects.Load(), Ports: w.ports()}
		var se *StatusError
		switch {
		case ctx.Err() != nil, w.done():
			return sum, nil
		case err == nil:
			err = errors.New("the stream ended")
		case w.fatal, errors.As(err, &se) && !se.Retryable():
			return sum, err
		case first && !streamed:
			return sum, fmt.Errorf("connect to %s: %w", s, err)
		}
		if streamed {
			wait = o.MinBackoff
		}
		o.Logf("sink went away: %v; reconnecting in %v", err, wait)
		select {
		case <-ctx.Done():
			return sum, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, o.MaxBackoff)
	}
}

// watch is one Watch's state across its connections.
type watch struct {
	sink *Sink
	req  Request
	out  io.Writer
	opts Options
	p    *Progress
	// pcapHeader is the pcap file header written, which a reconnection's
	// must equal.
	pcapHeader []byte
	// lostBefore is the losses of the streams and sections past.
	lostBefore uint64
	// connected is whether a stream was answered before.
	connected bool
	// byPort are the ports' counts of the sections past, and the frames
	// passed; names the ports in the order they came.
	byPort map[string]*PortCounts
	names  []string
	// fatal marks an error no reconnection can help: the output failed
	// or the sink sent something else than asked.
	fatal bool
}

// port returns name's counts.
func (w *watch) port(name string) *PortCounts {
	c, ok := w.byPort[name]
	if !ok {
		if w.byPort == nil {
			w.byPort = map[string]*PortCounts{}
		}
		c = &PortCounts{Name: name}
		w.byPort[name], w.names = c, append(w.names, name)
	}
	return c
}

// ports are the ports' counts, in the order they came.
func (w *watch) ports() []PortCounts {
	var out []PortCounts
	for _, n := range w.names {
		out = append(out, *w.byPort[n])
	}
	return out
}

// done reports whether the frames asked for all came.
func (w *watch) done() bool { return w.req.Count > 0 && w.p.Frames.Load() >= w.req.Count }

// stream reads one connection's stream to its end; streamed is whether
// the sink answered it.
func (w *watch) stream(ctx context.Context) (streamed bool, err error) {
	left := uint64(0)
	if w.req.Count > 0 {
		left = w.req.Count - w.p.Frames.Load()
	}
	resp, err := w.sink.get(ctx, "/v1/stream", w.req.query(left))
	if err != nil {
		return false, err
	}
	body := resp.Body
	defer body.Close()
	if w.connected {
		w.p.Reconnects.Add(1)
		w.opts.Logf("reconnected")
	}
	w.connected = true
	if w.opts.Connected != nil {
		w.opts.Connected()
	}
	s := &section{w: w, stats: map[uint32]pcapfile.IfStats{}}
	defer s.close()
	buf := make([]byte, 0, 256<<10)
	var drain *time.Timer
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // a unit larger than the buffer
		}
		n, rerr := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		used, err := s.pass(buf)
		if err != nil {
			return true, err
		}
		buf = buf[:copy(buf, buf[used:])]
		if w.done() && drain == nil {
			// Read on for the statistics that end the stream, not for
			// ever.
			drain = time.AfterFunc(drainAfterCount, func() { body.Close() })
			defer drain.Stop()
		}
		switch {
		case rerr == io.EOF:
			s.trailer(resp.Trailer.Get("Dpcap-Lost"))
			return true, nil
		case rerr != nil && w.done():
			return true, nil
		case rerr != nil:
			return true, w.sink.redact(fmt.Errorf("the stream broke off: %w", rerr))
		}
	}
}

// section follows one connection's stream: the units it passed and the
// losses its statistics said.
type section struct {
	w     *watch
	sp    pcapfile.Splitter
	names []string                    // the current section's interfaces
	stats map[uint32]pcapfile.IfStats // the last by interface, in the current section
}

// pass writes the whole units at the start of b to the output and
// returns how many bytes they took.
func (s *section) pass(b []byte) (int, error) {
	w := s.w
	from, off := 0, 0 // b[from:off] is still to write
	flush := func(upTo int) error {
		if from < upTo {
			if _, err := w.out.Write(b[from:upTo]); err != nil {
				w.fatal = true
				return err
			}
		}
		return nil
	}
	for {
		u, n, err := s.sp.Next(b[off:])
		if err != nil {
			w.fatal = true
			return off, fmt.Errorf("%w: %v", ErrNotCapture, err)
		}
		if n == 0 {
			break
		}
		unit := b[off : off+n]
		switch u {
		case pcapfile.UnitFileHeader, pcapfile.UnitSection:
			if (u == pcapfile.UnitFileHeader) != w.req.Pcap {
				w.fatal = true
				return off, fmt.Errorf("%w: the sink sent the other format than asked", ErrNotCapture)
			}
			if u == pcapfile.UnitSection {
				s.close()
				break
			}
			if w.pcapHeader == nil {
				w.pcapHeader = bytes.Clone(unit)
				break
			}
			if !bytes.Equal(unit, w.pcapHeader) {
				w.fatal = true
				return off, fmt.Errorf("%w: the sink's pcap header changed (link type or snap length): a new capture, not one to append to", ErrNotCapture)
			}
			// One capture: its header once.
			if err := flush(off); err != nil {
				return off, err
			}
			from = off + n
		case pcapfile.UnitPacket, pcapfile.UnitRecord:
			if w.done() {
				// The sink sent more than asked: left out.
				if err := flush(off); err != nil {
					return off, err
				}
				from = off + n
				break
			}
			w.p.Frames.Add(1)
			if u == pcapfile.UnitPacket {
				if iface, ok := s.sp.Interface(unit); ok && int(iface) < len(s.names) {
					w.port(s.names[iface]).Frames++
				}
			}
		case pcapfile.UnitInterface:
			s.names = append(s.names, s.sp.IfName(unit))
		case pcapfile.UnitStats:
			if iface, st, ok := s.sp.IfStats(unit); ok {
				s.stats[iface] = st
				w.p.Lost.Store(w.lostBefore + s.lost())
			}
		}
		off += n
	}
	return off, flush(off)
}

// lost sums the current section's losses.
func (s *section) lost() uint64 {
	var n uint64
	for _, st := range s.stats {
		n += st.Drop
	}
	return n
}

// close ends a section: its counts are final.
func (s *section) close() {
	s.w.lostBefore += s.lost()
	for iface, st := range s.stats {
		if int(iface) < len(s.names) {
			c := s.w.port(s.names[iface])
			c.Received, c.Lost, c.Accepted = c.Received+st.Recv, c.Lost+st.Drop, c.Accepted+st.Accept
		}
	}
	clear(s.stats)
	s.names = s.names[:0]
	s.w.p.Lost.Store(s.w.lostBefore)
}

// trailer adds a pcap stream's Dpcap-Lost.
func (s *section) trailer(v string) {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		s.w.lostBefore += n
		s.w.p.Lost.Store(s.w.lostBefore)
	}
}
