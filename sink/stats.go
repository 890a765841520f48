package sink

import (
	"errors"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/decap/reassembly"
)

// Stats is a snapshot of an engine's accounting. Every received packet is
// in exactly one of: written, buffered (handed to the writer, not yet on
// disk), rejected (malformed or skipped), filtered, denied (--allow),
// dropped on a write error, dropped because the capture stopped before
// it could be written, or, for an outer IP fragment, held (its datagram
// incomplete), absorbed into a reassembled datagram or evicted. The
// fragment completing a datagram is the packet the datagram became, counted
// by what became of it (written, filtered...). Within one snapshot the
// identity
//
//	Received = Written + Buffered + sum(Rejected) + Filtered + Denied + WriteDropped + Stopped
//	         + Fragments.Held + Fragments.Absorbed + sum(Fragments.Evicted)
//
// holds exactly (Accounted), and snapshots of several engines add up
// (Add), so that one report can cover several receive paths.
type Stats struct {
	Received     uint64
	Written      uint64
	Buffered     uint64
	BytesWritten uint64
	Filtered     uint64
	Denied       uint64 // from a source --allow does not name
	// Rejected counts packets by the reason they were not written;
	// Reason.Malformed tells broken envelopes from other traffic.
	Rejected     [decap.NumReasons]uint64
	WriteDropped uint64
	// Stopped counts the packets still queued when the capture stopped
	// that could not be written in time (or, after -c, the file limit or
	// the reader's departure, at all).
	Stopped uint64
	// Fragments counts the outer IP fragments the reassembler took.
	Fragments   reassembly.Stats
	Truncated   uint64 // written, but cut to the snap length
	WriteErrors uint64
	Rotations   uint64
	// Sources is how many sources have an interface of their own;
	// Overflowed counts the packets of sources past the bound, which share
	// the overflow interface, and UnknownTags those whose flow label the
	// port map does not list (named after their sender). Both are counted in the
	// identity by what became of them (written, filtered...).
	Sources     uint64
	Overflowed  uint64
	UnknownTags uint64
	// KernelDrops is the kernel's count of packets dropped before they
	// could be read; KernelDropsErr is set when it could not be read.
	// Neither is part of the identity: those packets were never received.
	KernelDrops    uint64
	KernelDropsErr error
}

// Add adds o's counts to s. Kernel drop errors are joined.
func (s *Stats) Add(o Stats) {
	s.Received += o.Received
	s.Written += o.Written
	s.Buffered += o.Buffered
	s.BytesWritten += o.BytesWritten
	s.Filtered += o.Filtered
	s.Denied += o.Denied
	for r := range s.Rejected {
		s.Rejected[r] += o.Rejected[r]
	}
	s.WriteDropped += o.WriteDropped
	s.Stopped += o.Stopped
	s.Fragments.Add(o.Fragments)
	s.Truncated += o.Truncated
	s.WriteErrors += o.WriteErrors
	s.Rotations += o.Rotations
	s.Sources += o.Sources
	s.Overflowed += o.Overflowed
	s.UnknownTags += o.UnknownTags
	s.KernelDrops += o.KernelDrops
	s.KernelDropsErr = errors.Join(s.KernelDropsErr, o.KernelDropsErr)
}

// Accounted sums the places a received packet can be; it equals Received
// in every snapshot.
func (s Stats) Accounted() uint64 {
	n := s.Written + s.Buffered + s.Filtered + s.Denied + s.WriteDropped + s.Stopped
	n += s.Fragments.Held + s.Fragments.Absorbed + s.Fragments.EvictedTotal()
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

// MalformedTotal counts the broken envelopes.
func (s Stats) MalformedTotal() uint64 { return s.rejectedTotal(true) }

// SkippedTotal counts the packets that were not envelopes.
func (s Stats) SkippedTotal() uint64 { return s.rejectedTotal(false) }

func (s Stats) rejectedTotal(malformed bool) uint64 {
	var n uint64
	for r, v := range s.Rejected {
		if r != int(decap.OK) && decap.Reason(r).Malformed() == malformed {
			n += v
		}
	}
	return n
}

// Total sums the snapshots of several engines, each writing to an output
// of its own.
func Total(engines ...*Engine) Stats {
	var s Stats
	for _, e := range engines {
		s.Add(e.Stats())
	}
	return s
}

// Stats returns the snapshot the engine published last (after its latest
// batch, within a poll interval when idle) with the kernel's drop count
// read now; safe from any goroutine.
func (e *Engine) Stats() Stats {
	e.snapMu.Lock()
	s := e.snap
	e.snapMu.Unlock()
	s.KernelDrops, s.KernelDropsErr = e.cfg.Source.Drops()
	return s
}

// publish makes the engine's counts, and its output's read at the same
// moment, the snapshot Stats returns. Only the engine's goroutine calls
// the output, so the two agree.
func (e *Engine) publish() {
	s := e.acc
	o := e.cfg.Output.Stats()
	s.Written = o.Packets.Load()
	s.BytesWritten = o.Bytes.Load()
	s.WriteDropped = o.Dropped.Load()
	s.WriteErrors = o.WriteErrors.Load()
	s.Rotations = o.Rotations.Load()
	s.Buffered = e.handed - s.Written - s.WriteDropped
	if e.frag != nil {
		s.Fragments = e.frag.Stats()
	}
	e.snapMu.Lock()
	e.snap = s
	e.snapMu.Unlock()
}
