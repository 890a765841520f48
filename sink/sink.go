// Package sink is sinkd's engine: it reads packets from a source, checks
// each envelope, writes the inner frames and accounts for every packet.
//
// One goroutine does all of it, as tcpdump does; the socket buffer absorbs
// bursts while a write is under way. Rotation on the clock and requests from
// signal handlers wake it through the source's read deadline.
package sink

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/pcapout"
)

// DefaultBatchSize is how many packets one read takes at most.
const DefaultBatchSize = 64

// Config wires an Engine.
type Config struct {
	Source capture.Source
	Output *pcapout.Rotator
	// Count stops the capture after this many packets are written (-c).
	Count uint64
	// Stream flushes the output after every batch (-w -).
	Stream    bool
	BatchSize int
	Logger    *slog.Logger
}

// Engine runs one capture.
type Engine struct {
	cfg       Config
	received  atomic.Uint64
	truncated atomic.Uint64
	malformed [decap.NumReasons]atomic.Uint64
	rotateReq atomic.Bool
	stopReq   atomic.Bool
	running   atomic.Bool
	fileLimit bool
}

// New returns an engine for cfg.
func New(cfg Config) *Engine {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Engine{cfg: cfg}
}

// Stop ends Run after the batch in hand; safe from any goroutine.
func (e *Engine) Stop() {
	e.stopReq.Store(true)
	e.wake()
}

// Rotate makes Run start a new file now; safe from any goroutine.
func (e *Engine) Rotate() {
	e.rotateReq.Store(true)
	e.wake()
}

func (e *Engine) wake() { _ = e.cfg.Source.SetReadDeadline(time.Unix(1, 0)) }

// Running reports whether Run is receiving.
func (e *Engine) Running() bool { return e.running.Load() }

// FileLimitReached reports whether Run ended because -W files were written.
func (e *Engine) FileLimitReached() bool { return e.fileLimit }

// Run captures until Stop, the packet count, the file limit or the end of
// the input, then flushes and closes the output. It returns an error only
// when the source fails.
func (e *Engine) Run() error {
	e.running.Store(true)
	defer e.running.Store(false)
	defer e.cfg.Output.Close()
	out := e.cfg.Output
	var written uint64
	for {
		deadline := out.Deadline()
		// The deadline is set before the requests are read, so a request
		// made after this point finds its wake-up deadline in place.
		if err := e.cfg.Source.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("set read deadline: %w", err)
		}
		if e.rotateReq.Swap(false) {
			out.Rotate()
		}
		if e.stopReq.Load() {
			return nil
		}
		max := e.cfg.BatchSize
		if e.cfg.Count > 0 {
			max = int(min(uint64(max), e.cfg.Count-written))
		}
		pkts, err := e.cfg.Source.Read(max)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			out.Flush()
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			return nil
		case err != nil:
			return err
		}
		written += e.process(pkts)
		if e.cfg.Stream || len(pkts) < max {
			// A short batch means the queue is empty: write now, so the
			// file is current whenever sinkd is idle.
			out.Flush()
		}
		if !deadline.IsZero() {
			if err := out.Tick(); errors.Is(err, pcapout.ErrFileLimit) {
				e.fileLimit = true
				return nil
			}
		}
		if e.cfg.Count > 0 && written >= e.cfg.Count {
			return nil
		}
	}
}

// process checks and writes one batch; it returns the packets written.
func (e *Engine) process(pkts []capture.Packet) uint64 {
	var ok, truncated uint64
	for i := range pkts {
		p := &pkts[i]
		inner, reason := decap.UDPPayload(p.Data, p.Length)
		if reason != decap.OK {
			e.malformed[reason].Add(1)
			continue
		}
		if len(p.Data) < p.Length {
			truncated++
		}
		e.cfg.Output.WritePacket(p.Timestamp, inner, p.Length)
		ok++
	}
	e.received.Add(uint64(len(pkts)))
	if truncated > 0 {
		e.truncated.Add(truncated)
	}
	return ok
}

// Stats is a snapshot of an engine's accounting. Every received packet is
// written, malformed, dropped on a write error, or still buffered:
// Received = Written + sum(Malformed) + WriteDropped + buffered.
type Stats struct {
	Received     uint64
	Written      uint64
	BytesWritten uint64
	Malformed    [decap.NumReasons]uint64
	Truncated    uint64 // written, but cut to the snap length
	WriteDropped uint64
	WriteErrors  uint64
	Rotations    uint64
	// KernelDrops is the socket's drop count; KernelDropsErr is set when it
	// could not be read.
	KernelDrops    uint64
	KernelDropsErr error
}

// MalformedTotal sums Malformed over all reasons.
func (s Stats) MalformedTotal() uint64 {
	var n uint64
	for _, v := range s.Malformed {
		n += v
	}
	return n
}

// Stats returns a snapshot; safe from any goroutine.
func (e *Engine) Stats() Stats {
	o := e.cfg.Output.Stats()
	s := Stats{
		Received:     e.received.Load(),
		Written:      o.Packets.Load(),
		BytesWritten: o.Bytes.Load(),
		Truncated:    e.truncated.Load(),
		WriteDropped: o.Dropped.Load(),
		WriteErrors:  o.WriteErrors.Load(),
		Rotations:    o.Rotations.Load(),
	}
	for r := range s.Malformed {
		s.Malformed[r] = e.malformed[r].Load()
	}
	s.KernelDrops, s.KernelDropsErr = e.cfg.Source.Drops()
	return s
}
