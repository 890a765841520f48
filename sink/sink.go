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
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/decap/reassembly"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
)

const (
	// DefaultDrainTimeout bounds how long a stopped capture goes on writing
	// what its source still holds: a full 64 MiB socket buffer takes a
	// fraction of it.
	DefaultDrainTimeout = 2 * time.Second
)

// Config wires an Engine.
type Config struct {
	// Source's Framing says what its packets are: UDP payloads, each one
	// NIC envelope, or whole frames for Decoder.
	Source capture.Source
	// Decoder decapsulates the whole frames of a source of capture.Frames;
	// decap.NewDecoder(decap.DefaultPorts()) when nil.
	Decoder Decoder
	Output  pcapout.Output
	// PerSource gives each source (sender, envelope kind, tag, or the port
	// of PortMap a copy came from) an interface of its own in the output:
	// pcapng, or --split-by source. MaxSources bounds them
	// (DefaultMaxSources when zero); copies of sources past it share one
	// overflow interface.
	PerSource  bool
	MaxSources int
	// PortMap names the ports copies come from, by tag or by what their
	// inner frames carry (portmap.Identifier); when it is given, only its
	// tags are taken.
	PortMap *portmap.Map
	// Reassembly bounds the reassembly of outer IP fragments, which the
	// sources of whole frames hold (a UDP socket gets datagrams the kernel
	// reassembled); the zero value takes reassembly's defaults.
	Reassembly reassembly.Config
	// Filter keeps only the inner frames it matches; nil keeps all.
	Filter Filter
	// Tap, when set, sees every frame written, with its source (live
	// viewers); sources are then told apart without PerSource too.
	Tap Tap
	// Allow, when set, takes envelopes only from these sources: anyone who
	// reaches the sink port could otherwise inject packets.
	Allow []AllowRule
	// Count stops the capture after this many packets are written (-c).
	Count uint64
	// Stream flushes the output after every batch (-w -, a fifo).
	Stream    bool
	BatchSize int
	// DrainTimeout bounds the writing of what is still queued after Stop
	// (DefaultDrainTimeout when zero, none when negative); what is left
	// then is counted as Stopped.
	DrainTimeout time.Duration
	Logger       *slog.Logger
}

// Decoder decapsulates a whole frame; *decap.Decoder is the one sinkd uses.
type Decoder interface {
	Decode(lt layers.LinkType, frame []byte, length int, r *decap.Result) decap.Reason
}

// Filter decides whether an inner Ethernet frame is written.
type Filter interface {
	Match(frame []byte) bool
}

// Engine runs one capture.
type Engine struct {
	cfg     Config
	framing capture.Framing
	// acc holds the engine's own counts, and handed the packets given to
	// the output; only Run's goroutine touches them. publish copies them
	// into snap for other goroutines.
	acc       Stats
	handed    uint64
	written   uint64 // packets counted against -c
	snapMu    sync.Mutex
	snap      Stats
	sources   sources
	res       decap.Result
	frag      *reassembly.Reassembler // outer fragments of whole frames
	ether     []byte                  // a synthetic Ethernet header and a bare IP packet
	rotateReq atomic.Bool
	newPorts  atomic.Pointer[portmap.Identifier] // a port map read again, for Run to take
	stopReq   atomic.Bool
	goneReq   atomic.Bool // ReaderGone
	running   atomic.Bool
	fileLimit bool
}

// New returns an engine for cfg.
func New(cfg Config) *Engine {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = capture.DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Decoder == nil {
		cfg.Decoder = decap.NewDecoder(decap.DefaultPorts())
	}
	e := &Engine{cfg: cfg, framing: cfg.Source.Framing(), sources: sources{index: map[sourceKey]int{}, max: cfg.MaxSources, overflow: -1}}
	if e.framing.Kind != capture.Payloads {
		rc := cfg.Reassembly
		if rc.Protocol == nil {
			rc.Protocol = envelopeTransport
		}
		e.frag = reassembly.New(rc)
	}
	if cfg.PortMap != nil {
		var notes []string
		e.sources.ports, notes = portmap.NewIdentifier(*cfg.PortMap)
		for _, n := range notes {
			cfg.Logger.Warn("port map: " + n)
		}
	}
	return e
}

// Stop ends Run after the batch in hand; safe from any goroutine.
func (e *Engine) Stop() {
	e.stopReq.Store(true)
	e.wake()
}

// ReaderGone ends Run as a write to a stream whose reader went away does
// (pcapout.ErrReaderGone), without waiting for that write, which may not
// come while the input is quiet: what the source still holds is counted as
// Stopped. Safe from any goroutine.
func (e *Engine) ReaderGone() {
	e.goneReq.Store(true)
	e.wake()
}

// SetPortMap makes Run identify copies with x from the next batch on: the
// port map was read again. x may be shared with other engines. Safe from
// any goroutine; without a port map in Config, it has no effect.
func (e *Engine) SetPortMap(x *portmap.Identifier) { e.newPorts.Store(x) }

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

// ending says why the capture loop ended, and so what becomes of the
// packets the source still holds.
type ending int

const (
	endOfInput ending = iota // the input ended or was closed: nothing is queued
	endWrite                 // Stop: write what is queued, within DrainTimeout
	endDiscard               // -c, -W or the reader left: count what is queued as stopped
)

// Run captures until Stop, the packet count, the file limit or the end of
// the input, then drains the source, flushes and closes the output. It
// returns an error only when the source fails.
func (e *Engine) Run() error {
	e.running.Store(true)
	defer e.running.Store(false)
	defer e.publish()
	defer e.cfg.Output.Close()
	defer e.flushFragments()
	end, err := e.capture()
	if err != nil || end == endOfInput {
		return err
	}
	return e.drain(end == endWrite)
}

// capture is the receive loop.
func (e *Engine) capture() (ending, error) {
	out := e.cfg.Output
	for {
		deadline := out.Deadline()
		// The deadline is set before the requests are read, so a request
		// made after this point finds its wake-up deadline in place.
		if err := e.cfg.Source.SetReadDeadline(deadline); err != nil {
			return endOfInput, fmt.Errorf("set read deadline: %w", err)
		}
		if e.rotateReq.Swap(false) {
			out.Rotate()
			e.publish()
		}
		if e.goneReq.Load() {
			e.cfg.Logger.Info("stopping", "err", pcapout.ErrReaderGone)
			return endDiscard, nil
		}
		if e.stopReq.Load() {
			return endWrite, nil
		}
		max := e.cfg.BatchSize
		if e.cfg.Count > 0 {
			max = int(min(uint64(max), e.cfg.Count-e.written))
		}
		pkts, err := e.cfg.Source.Read(max)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			out.Flush()
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			return endOfInput, nil
		case err != nil:
			return endOfInput, err
		}
		e.written += e.process(pkts)
		if e.cfg.Stream || len(pkts) < max {
			// A short batch means the queue is empty: write now, so the
			// file is current whenever sinkd is idle.
			if err := out.Flush(); errors.Is(err, pcapout.ErrReaderGone) {
				e.cfg.Logger.Info("stopping", "err", err)
				return endDiscard, nil
			}
		}
		e.publish()
		if !deadline.IsZero() {
			err := out.Tick()
			e.publish()
			if errors.Is(err, pcapout.ErrFileLimit) {
				e.fileLimit = true
				return endDiscard, nil
			}
		}
		if e.cfg.Count > 0 && e.written >= e.cfg.Count {
			return endDiscard, nil
		}
	}
}

// drain empties the source once the capture has stopped, so that no
// received packet goes unaccounted: it shuts the source to new packets,
// writes what was queued (when write is set, for up to DrainTimeout and
// within -c) and counts the rest as Stopped.
func (e *Engine) drain(write bool) error {
	if err := e.cfg.Source.Shut(); err != nil {
		e.cfg.Logger.Error("cannot stop the input at stop; packets still queued in the kernel are not counted", "err", err)
		return nil
	}
	until := time.Now().Add(e.cfg.DrainTimeout)
	before := e.acc
	for {
		pkts, err := e.cfg.Source.Read(e.cfg.BatchSize)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded):
			if n := e.acc.Received - before.Received; n > 0 {
				e.cfg.Logger.Info("drained the input at stop", "packets", n,
					"dropped", e.acc.Stopped-before.Stopped, "drain_timeout", e.cfg.DrainTimeout)
			}
			return nil
		case err != nil:
			return err
		}
		k := 0
		if write && time.Now().Before(until) {
			k = len(pkts)
			if e.cfg.Count > 0 {
				k = int(min(uint64(k), e.cfg.Count-e.written))
			}
			e.written += e.process(pkts[:k])
		}
		e.acc.Received += uint64(len(pkts) - k)
		e.acc.Stopped += uint64(len(pkts) - k)
		e.publish()
	}
}

// process decapsulates, filters and writes one batch; it returns the
// packets written.
func (e *Engine) process(pkts []capture.Packet) uint64 {
	var ok uint64
	a := &e.acc
	r := &e.res
	if x := e.newPorts.Swap(nil); x != nil && e.sources.ports != nil {
		e.sources.ports = x
	}
	for i := range pkts {
		p := &pkts[i]
		var reason decap.Reason
		if e.framing.Kind == capture.Payloads {
			// A datagram's sender is known before it is parsed.
			if !e.allowed(p.Src.Addr(), p.IfIndex) {
				a.Denied++
				continue
			}
			reason = decap.DecodePayload(decap.KindNIC, p.Data, p.Length, r)
			r.Src, r.SrcPort, r.DstPort, r.ID = p.Src.Addr(), p.Src.Port(), e.framing.Port, p.FlowLabel
		} else {
			reason = e.cfg.Decoder.Decode(p.LinkType, p.Data, p.Length, r)
			// A fragment's sender is checked before it is held; the
			// datagram it completes has the same.
			if (reason == decap.OK || reason == decap.Fragment) && !e.allowed(r.Src, p.IfIndex) {
				a.Denied++
				continue
			}
			if reason == decap.Fragment {
				var held bool
				if reason, held = e.reassemble(p, r); held {
					continue // counted by the reassembler
				}
			}
		}
		if reason != decap.OK {
			a.Rejected[reason]++
			continue
		}
		inner, length := r.Inner, r.InnerLength
		if r.InnerEtherType != 0 {
			inner, length = e.withEther(r.InnerEtherType, inner), length+decap.EtherHeaderLen
		}
		iface, src := 0, 0
		if e.cfg.PerSource || e.cfg.Tap != nil {
			src = e.sources.lookup(r, inner, e)
			iface = e.sources.iface[src]
		}
		if e.cfg.Filter != nil && !e.cfg.Filter.Match(inner) {
			a.Filtered++
			e.cfg.Output.Filtered(iface)
			continue
		}
		if len(inner) < length {
			a.Truncated++
		}
		e.cfg.Output.WritePacket(iface, p.Timestamp, inner, length)
		if e.cfg.Tap != nil {
			e.cfg.Tap.Frame(src, p.Timestamp, inner, length)
		}
		ok++
	}
	if e.cfg.Tap != nil {
		e.cfg.Tap.Flush()
	}
	a.Received += uint64(len(pkts))
	e.handed += ok
	if e.frag != nil && e.frag.Pending() && len(pkts) > 0 {
		// The clock moves on with every packet, fragment or not.
		e.frag.Expire(pkts[len(pkts)-1].Timestamp)
	}
	return ok
}

// reassemble gives the fragment p to the reassembler. When it completes a
// datagram, r becomes the decoding of that datagram, to be written with
// p's timestamp (the packet in which Wireshark shows a reassembled
// datagram is the one completing it); otherwise held reports that the
// reassembler counted p.
func (e *Engine) reassemble(p *capture.Packet, r *decap.Result) (reason decap.Reason, held bool) {
	ip, o := e.frag.Add(p.Data[r.IPOffset:], p.Timestamp)
	switch o {
	case reassembly.Complete:
		return e.cfg.Decoder.Decode(layers.LinkTypeRaw, ip, len(ip), r), false
	case reassembly.OtherProtocol:
		return decap.NotUDPOrGRE, false
	}
	return decap.Fragment, true
}

// envelopeTransport reports whether fragments of an outer IP protocol
// (IPv6: the first header after the fragment header) can hold envelopes:
// UDP, GRE, or, in IPv6, the extension headers decap walks to them.
func envelopeTransport(v6 bool, proto uint8) bool {
	return proto == 17 || proto == 47 || v6 && decap.IPv6Extension(proto)
}

// flushFragments counts the fragments of datagrams still incomplete when
// the capture ends.
func (e *Engine) flushFragments() {
	if e.frag != nil {
		e.frag.Flush()
	}
}

// allowed reports whether envelopes from src, arrived on interface
// ifindex, are taken (--allow).
func (e *Engine) allowed(src netip.Addr, ifindex int) bool {
	if len(e.cfg.Allow) == 0 {
		return true
	}
	for _, r := range e.cfg.Allow {
		if r.Matches(src, ifindex) {
			return true
		}
	}
	return false
}

// withEther puts a bare packet of EtherType etype (IP, which GENEVE,
// VXLAN-GPE and ERSPAN III carry, or anything else GENEVE does) behind an Ethernet header with zero
// addresses, so that the output keeps one link type that every reader
// understands.
func (e *Engine) withEther(etype uint16, pkt []byte) []byte {
	if e.ether == nil {
		e.ether = make([]byte, decap.EtherHeaderLen, decap.EtherHeaderLen+65536)
	}
	e.ether[12], e.ether[13] = byte(etype>>8), byte(etype)
	return append(e.ether[:decap.EtherHeaderLen], pkt...)
}
