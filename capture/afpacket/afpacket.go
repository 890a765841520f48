//go:build linux

// Package afpacket captures envelopes from a network interface with
// AF_PACKET (a TPACKET_V3 ring, as tcpdump uses), for the sinks a UDP
// socket cannot serve: envelopes whose length fields the NIC left unset
// (the kernel drops them before any socket), envelopes addressed to an IP
// the sink does not own, and the other envelope kinds.
package afpacket

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dpcap/dpcap/capture"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Config says what to capture.
type Config struct {
	Interface string
	// Ports are the UDP ports of the envelopes, for the kernel filter.
	Ports []uint16
	// BufferSize is the ring size in bytes (at least one 1 MiB block).
	BufferSize int
}

// Source is an AF_PACKET capture. It implements capture.Source.
type Source struct {
	ring     *ring
	arena    []byte
	pkts     []capture.Packet
	deadline capture.Deadline
	closed   atomic.Bool
	// shut is set by Shut; drops then holds the final drop count.
	shut      bool
	drops     uint64
	dropsShut atomic.Bool
	// dropMu guards dropped, the kernel's counts summed (each read of
	// them resets them).
	dropMu  sync.Mutex
	dropped uint64
}

var _ capture.Source = (*Source)(nil)

// Open starts capturing on cfg.Interface (needs CAP_NET_RAW). The
// envelope filter is attached before the socket is bound, so no other
// frame ever reaches the ring.
func Open(cfg Config) (*Source, error) {
	ifi, filter, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	return open(cfg, ifi, filter, nil)
}

// OpenGroup opens n captures on cfg.Interface in a PACKET_FANOUT group of
// their own whose classic BPF program steer picks the capture of each frame
// (PACKET_FANOUT_CBPF; the kernel takes its result modulo n), in the order
// returned. The kernel picks the group's id (PACKET_FANOUT_FLAG_UNIQUEID),
// so two sinkds on one interface never join each other's group. Each
// capture takes nothing until all have joined, so that no frame reaches two.
func OpenGroup(cfg Config, n int, steer []bpf.RawInstruction) ([]*Source, error) {
	if len(steer) == 0 {
		return nil, fmt.Errorf("capture on %s: fanout group: no steering program", cfg.Interface)
	}
	ifi, filter, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	var group []*Source
	fail := func(err error) ([]*Source, error) {
		for _, s := range group {
			s.Close()
		}
		return nil, err
	}
	dropAll, _ := bpf.RetConstant{Val: 0}.Assemble()
	var id uint16
	for i := range n {
		join := func(fd int) error {
			if i == 0 {
				var err error
				id, err = newFanout(fd, steer)
				return err
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, unix.PACKET_FANOUT_CBPF<<16|int(id)); err != nil {
				return fmt.Errorf("fanout group %d: join (PACKET_FANOUT): %w", id, err)
			}
			return nil
		}
		s, err := open(cfg, ifi, []bpf.RawInstruction{dropAll}, join)
		if err != nil {
			return fail(err)
		}
		group = append(group, s)
	}
	for _, s := range group {
		if err := attach(s.ring.fd, filter); err != nil {
			return fail(fmt.Errorf("capture on %s: %w", cfg.Interface, err))
		}
	}
	return group, nil
}

// newFanout makes a PACKET_FANOUT_CBPF group with a kernel-chosen id,
// with the socket fd in it, gives it its program (PACKET_FANOUT_DATA) and
// returns the id for the others to join.
func newFanout(fd int, steer []bpf.RawInstruction) (uint16, error) {
	mode := (unix.PACKET_FANOUT_CBPF | unix.PACKET_FANOUT_FLAG_UNIQUEID) << 16
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, mode); err != nil {
		return 0, fmt.Errorf("fanout group: create (PACKET_FANOUT with a unique id): %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(steer)), Filter: (*unix.SockFilter)(unsafe.Pointer(&steer[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &prog); err != nil {
		return 0, fmt.Errorf("fanout group: attach the steering program (PACKET_FANOUT_DATA): %w", err)
	}
	return fanoutID(fd)
}

// fanoutID returns the id of the fanout group the socket fd is in.
func fanoutID(fd int) (uint16, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return 0, fmt.Errorf("fanout group: read its id (PACKET_FANOUT): %w", err)
	}
	return uint16(v), nil // the id; type and flags are above it
}

// prepare finds the interface and builds its envelope filter.
func prepare(cfg Config) (*net.Interface, []bpf.RawInstruction, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, nil, fmt.Errorf("capture on %s: %w", cfg.Interface, err)
	}
	filter, err := Filter(cfg.Ports, ifi.Flags&net.FlagLoopback != 0)
	if err != nil {
		return nil, nil, fmt.Errorf("capture on %s: kernel filter: %w", cfg.Interface, err)
	}
	return ifi, filter, nil
}

// open opens a ring on ifi with filter attached before it is bound.
func open(cfg Config, ifi *net.Interface, filter []bpf.RawInstruction, join func(fd int) error) (*Source, error) {
	r, err := newRing(ifi.Index, max(cfg.BufferSize/blockSize, 1), filter, join)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", cfg.Interface, err)
	}
	return &Source{ring: r, arena: make([]byte, 0, 1<<20)}, nil
}

// Read implements capture.Source. It waits up to capture.PollInterval for a first
// packet, then takes what the ring holds, up to max.
func (s *Source) Read(max int) ([]capture.Packet, error) {
	if cap(s.pkts) < max {
		s.pkts = make([]capture.Packet, max)
	}
	s.arena = s.arena[:0]
	n := 0
	if s.closed.Load() {
		return nil, net.ErrClosed
	}
	if s.deadline.Passed() && !s.shut {
		return nil, os.ErrDeadlineExceeded
	}
	for n < max {
		f, ok := s.ring.next()
		if !ok {
			if n > 0 {
				break // a short batch: the ring holds no more
			}
			ready, err := s.ring.wait(capture.PollInterval)
			if err != nil {
				return nil, fmt.Errorf("read the capture ring: %w", err)
			}
			if !ready {
				break // an empty batch: the ring is idle
			}
			continue
		}
		start := len(s.arena)
		s.arena = appendFrame(s.arena, f)
		s.ring.done()
		s.pkts[n] = capture.Packet{
			Data:      s.arena[start:len(s.arena):len(s.arena)],
			Length:    f.length + len(s.arena) - start - len(f.data),
			Timestamp: f.ts,
			LinkType:  layers.LinkTypeEthernet,
			IfIndex:   f.ifindex,
		}
		n++
	}
	if n == 0 && s.shut {
		return nil, io.EOF // the ring is empty and nothing enters it any more
	}
	return s.pkts[:n], nil
}

// appendFrame appends f's frame to b with the VLAN tag the kernel stripped
// put back behind the two MAC addresses, with the TPID the kernel reported
// (802.1Q when it reports none).
func appendFrame(b []byte, f frame) []byte {
	if f.vlanTCI == 0 || len(f.data) < 12 {
		return append(b, f.data...)
	}
	tpid := f.vlanTPID
	if tpid == 0 {
		tpid = unix.ETH_P_8021Q
	}
	b = append(b, f.data[:12]...)
	b = append(b, byte(tpid>>8), byte(tpid), byte(f.vlanTCI>>8), byte(f.vlanTCI))
	return append(b, f.data[12:]...)
}

// Shut implements capture.Source: a kernel filter that takes nothing stops
// new frames entering the ring, whose contents stay readable; a Read that
// then finds the ring empty for a poll interval returns io.EOF. Call it
// from the reading goroutine.
func (s *Source) Shut() error {
	if s.shut {
		return nil
	}
	d, err := s.Drops()
	if err != nil {
		return err
	}
	dropAll, _ := bpf.RetConstant{Val: 0}.Assemble()
	if err := attach(s.ring.fd, []bpf.RawInstruction{dropAll}); err != nil {
		return fmt.Errorf("shut the capture: %w", err)
	}
	s.drops, s.shut = d, true
	s.dropsShut.Store(true)
	return nil
}

// SetReadDeadline implements capture.Source. A blocked Read notices the
// change within capture.PollInterval.
func (s *Source) SetReadDeadline(t time.Time) error {
	s.deadline.Set(t)
	return nil
}

// Drops implements capture.Source with the ring's count of packets the
// kernel could not store.
func (s *Source) Drops() (uint64, error) {
	if s.dropsShut.Load() {
		return s.drops, nil
	}
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	s.dropMu.Lock()
	defer s.dropMu.Unlock()
	d, err := s.ring.drops()
	if err != nil {
		return 0, err
	}
	s.dropped += d
	return s.dropped, nil
}

// Framing implements capture.Source: the interface's Ethernet frames.
func (s *Source) Framing() capture.Framing { return capture.Framing{Kind: capture.Frames} }

// Close implements capture.Source. Call it once no Read is running.
func (s *Source) Close() error {
	if !s.closed.Swap(true) {
		s.ring.close()
	}
	return nil
}
