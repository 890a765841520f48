// Package capture defines what every sinkd input yields: packets with a
// receive time, the sender's address and their full length.
package capture

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/layers"
)

const (
	// MaxSnapLen is the longest packet record dpcap keeps, writes or
	// reads: tcpdump's largest snapshot length. A longer record in a file
	// means the file is corrupt.
	MaxSnapLen = 262144
	// DefaultBatchSize is how many packets one Read takes, and one
	// recvmmsg or sendmmsg moves, unless told otherwise.
	DefaultBatchSize = 64
	// PollInterval is how long a live Source's Read waits before it
	// returns an empty batch, and so bounds how late it notices a new
	// deadline or Close, and how stale an idle engine's statistics get.
	PollInterval = 20 * time.Millisecond
)

// Packet is one received datagram or frame. Data may be shorter than Length
// when the input truncated it (snaplen); it is only valid until the next
// Read on the Source that returned it.
type Packet struct {
	Data      []byte
	Length    int
	Timestamp time.Time
	// Src is the sender, and FlowLabel the IPv6 flow label, for packets
	// read from a socket.
	Src       netip.AddrPort
	FlowLabel uint32
	// IfIndex is the interface the packet arrived on, when the source
	// knows it (0 otherwise).
	IfIndex int
	// LinkType is the framing of Data, for packets read from an interface
	// or a file; socket payloads have none.
	LinkType layers.LinkType
}

// Source is a stream of packets read in batches.
type Source interface {
	// Read blocks until at least one packet is available and returns up to
	// max of them. A live source returns an empty batch when nothing came
	// for a while (PollInterval), so that its caller can do idle
	// work. It returns an error wrapping os.ErrDeadlineExceeded when the
	// read deadline passes first, and io.EOF when the input is finished.
	Read(max int) ([]Packet, error)
	// SetReadDeadline makes a blocked or future Read return at t; a time in
	// the past wakes a blocked Read at once.
	SetReadDeadline(t time.Time) error
	// Drops reports packets the kernel dropped before they could be read.
	Drops() (uint64, error)
	// Shut ends the intake when a capture stops: no new packet enters the
	// source's queue (one arriving later is not received at all), Drops
	// keeps its value from this moment, and Read returns what was already
	// queued without blocking, then io.EOF.
	Shut() error
	Close() error
	// Framing says what the packets are.
	Framing() Framing
}

// Framing says what a Source's packets are, and so how the engine finds the
// envelope in each: every source declares it.
type Framing struct {
	Kind FramingKind
	// Port is the UDP port Payloads were received on.
	Port uint16
}

// FramingKind is what each packet of a Source is.
type FramingKind uint8

const (
	// Frames are whole frames of their Packet.LinkType (an interface's
	// Ethernet frames, a capture file's records), which carry envelopes
	// in their outer headers.
	Frames FramingKind = iota
	// Payloads are the payloads of UDP datagrams received on a socket,
	// each one NIC envelope, sent by Packet.Src with Packet.FlowLabel.
	Payloads
)

// Deadline is a read deadline that a live source's blocked Read polls;
// safe for concurrent use.
type Deadline struct{ ns atomic.Int64 }

// Set sets the deadline; the zero time clears it.
func (d *Deadline) Set(t time.Time) {
	if t.IsZero() {
		d.ns.Store(0)
		return
	}
	d.ns.Store(t.UnixNano())
}

// Passed reports whether the deadline is set and has passed.
func (d *Deadline) Passed() bool {
	n := d.ns.Load()
	return n != 0 && time.Now().UnixNano() >= n
}
