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
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// DefaultBatchSize is how many packets one read takes at most.
const DefaultBatchSize = 64

// Config wires an Engine.
type Config struct {
	Source capture.Source
	// Decoder decapsulates whole frames (from an interface or a file). When
	// nil, packets are UDP payloads from a socket, each one NIC envelope,
	// received on Port.
	Decoder *decap.Decoder
	Port    uint16
	Output  pcapout.Output
	// PerSource gives each source (sender, envelope kind, tag) an interface
	// of its own in the output: pcapng, or --split-by source.
	PerSource bool
	// PortMap names the ports whose tags the envelopes carry.
	PortMap flowprog.PortMap
	// Filter keeps only the inner frames it matches; nil keeps all.
	Filter Filter
	// Allow, when set, takes envelopes only from these source prefixes:
	// anyone who reaches the sink port could otherwise inject packets.
	Allow []netip.Prefix
	// Count stops the capture after this many packets are written (-c).
	Count uint64
	// Stream flushes the output after every batch (-w -, a fifo).
	Stream    bool
	BatchSize int
	Logger    *slog.Logger
}

// Filter decides whether an inner Ethernet frame is written.
type Filter interface {
	Match(frame []byte) bool
}

// Engine runs one capture.
type Engine struct {
	cfg       Config
	received  atomic.Uint64
	truncated atomic.Uint64
	filtered  atomic.Uint64
	denied    atomic.Uint64
	rejected  [decap.NumReasons]atomic.Uint64
	sources   sources
	res       decap.Result
	ether     []byte // a synthetic Ethernet header and a bare IP packet
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
	e := &Engine{cfg: cfg, sources: sources{index: map[sourceKey]int{}}}
	cfg.Output.SetInterfaceStats(e.interfaceStats)
	return e
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
			if err := out.Closed(); err != nil {
				e.cfg.Logger.Info("the reader of the output went away; stopping", "err", err)
				return nil
			}
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

// process decapsulates, filters and writes one batch; it returns the
// packets written.
func (e *Engine) process(pkts []capture.Packet) uint64 {
	var ok, truncated, filtered, denied uint64
	r := &e.res
	for i := range pkts {
		p := &pkts[i]
		var reason decap.Reason
		if e.cfg.Decoder == nil {
			// A datagram's sender is known before it is parsed.
			if !e.allowed(p.Src.Addr()) {
				denied++
				continue
			}
			reason = decap.DecodePayload(decap.KindNIC, p.Data, p.Length, r)
			r.Src, r.SrcPort, r.DstPort, r.ID = p.Src.Addr(), p.Src.Port(), e.cfg.Port, p.FlowLabel
		} else {
			reason = e.cfg.Decoder.Decode(p.LinkType, p.Data, p.Length, r)
			if reason == decap.OK && !e.allowed(r.Src) {
				denied++
				continue
			}
		}
		if reason != decap.OK {
			e.rejected[reason].Add(1)
			continue
		}
		inner, length := r.Inner, r.InnerLength
		if r.InnerLinkType != layers.LinkTypeEthernet {
			inner, length = e.withEther(inner), length+decap.EtherHeaderLen
		}
		iface := 0
		if e.cfg.PerSource {
			iface = e.sources.lookup(r, e)
			e.sources.received[iface]++
		}
		if e.cfg.Filter != nil && !e.cfg.Filter.Match(inner) {
			filtered++
			if e.cfg.PerSource {
				e.sources.filtered[iface]++
			}
			continue
		}
		if len(inner) < length {
			truncated++
		}
		e.cfg.Output.WritePacket(iface, p.Timestamp, inner, length)
		ok++
	}
	e.received.Add(uint64(len(pkts)))
	if truncated > 0 {
		e.truncated.Add(truncated)
	}
	if filtered > 0 {
		e.filtered.Add(filtered)
	}
	if denied > 0 {
		e.denied.Add(denied)
	}
	return ok
}

// allowed reports whether envelopes from src are taken (--allow).
func (e *Engine) allowed(src netip.Addr) bool {
	if len(e.cfg.Allow) == 0 {
		return true
	}
	for _, p := range e.cfg.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// withEther puts a bare IP packet (GENEVE or ERSPAN III can carry one)
// behind an Ethernet header with zero addresses, so that the output keeps
// one link type that every reader understands.
func (e *Engine) withEther(ip []byte) []byte {
	if e.ether == nil {
		e.ether = make([]byte, decap.EtherHeaderLen, decap.EtherHeaderLen+65536)
	}
	etype := uint16(0x0800)
	if len(ip) > 0 && ip[0]>>4 == 6 {
		etype = 0x86DD
	}
	e.ether[12], e.ether[13] = byte(etype>>8), byte(etype)
	return append(e.ether[:decap.EtherHeaderLen], ip...)
}

// Stats is a snapshot of an engine's accounting. Every received packet is
// written, rejected (malformed or skipped), filtered, denied (--allow),
// dropped on a write error, or still buffered: Received = Written +
// sum(Rejected) + Filtered + Denied + WriteDropped + buffered.
type Stats struct {
	Received     uint64
	Written      uint64
	BytesWritten uint64
	Filtered     uint64
	Denied       uint64 // from a source --allow does not name
	// Rejected counts packets by the reason they were not written;
	// Reason.Malformed tells broken envelopes from other traffic.
	Rejected     [decap.NumReasons]uint64
	Truncated    uint64 // written, but cut to the snap length
	WriteDropped uint64
	WriteErrors  uint64
	Rotations    uint64
	// KernelDrops is the socket's drop count; KernelDropsErr is set when it
	// could not be read.
	KernelDrops    uint64
	KernelDropsErr error
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

// Stats returns a snapshot; safe from any goroutine.
func (e *Engine) Stats() Stats {
	o := e.cfg.Output.Stats()
	s := Stats{
		Received:     e.received.Load(),
		Written:      o.Packets.Load(),
		BytesWritten: o.Bytes.Load(),
		Truncated:    e.truncated.Load(),
		Filtered:     e.filtered.Load(),
		Denied:       e.denied.Load(),
		WriteDropped: o.Dropped.Load(),
		WriteErrors:  o.WriteErrors.Load(),
		Rotations:    o.Rotations.Load(),
	}
	for r := range s.Rejected {
		s.Rejected[r] = e.rejected[r].Load()
	}
	s.KernelDrops, s.KernelDropsErr = e.cfg.Source.Drops()
	return s
}
