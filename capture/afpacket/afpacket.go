//go:build linux

// Package afpacket captures envelopes from a network interface with
// AF_PACKET (a TPACKET_V3 ring, as tcpdump uses), for the sinks a UDP
// socket cannot serve: envelopes whose length fields the NIC left unset
// (the kernel drops them before any socket), envelopes addressed to an IP
// the sink does not own, and the other envelope kinds.
package afpacket

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dpcap/dpcap/capture"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	blockSize = 1 << 20
	frameSize = 1 << 16
	// blockTimeout bounds how long a partly filled ring block waits before
	// the kernel hands it over, and so the capture's latency.
	blockTimeout = 5 * time.Millisecond
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
	tp       *afpacket.TPacket
	arena    []byte
	pkts     []capture.Packet
	deadline capture.Deadline
	closed   atomic.Bool
	// shut is set by Shut; drops then holds the final drop count.
	shut      bool
	drops     uint64
	dropsShut atomic.Bool
	// loopback: the interface shows each frame twice (see Filter).
	loopback bool
}

// Open starts capturing on cfg.Interface (needs CAP_NET_RAW).
func Open(cfg Config) (*Source, error) {
	s, err := open(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.setFilter(cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenGroup opens n captures on cfg.Interface in a PACKET_FANOUT group of
// their own whose classic BPF program steer picks the capture of each frame
// (PACKET_FANOUT_CBPF; the kernel takes its result modulo n), in the order
// returned. The kernel picks the group's id (PACKET_FANOUT_FLAG_UNIQUEID),
// so two sinkds on one interface never join each other's group. Each
// capture takes nothing until all have joined, so that no frame reaches two.
func OpenGroup(cfg Config, n int, steer []bpf.RawInstruction) ([]*Source, error) {
	var group []*Source
	fail := func(err error) ([]*Source, error) {
		for _, s := range group {
			s.Close()
		}
		return nil, err
	}
	where := fmt.Sprintf("capture on %s: fanout group", cfg.Interface)
	dropAll, _ := bpf.RetConstant{Val: 0}.Assemble()
	var id uint16
	for i := range n {
		s, err := open(cfg)
		if err != nil {
			return fail(err)
		}
		group = append(group, s)
		if err := s.tp.SetBPF([]bpf.RawInstruction{dropAll}); err != nil {
			return fail(fmt.Errorf("%s: kernel filter: %w", where, err))
		}
		if i == 0 {
			if id, err = s.newFanout(steer); err != nil {
				return fail(fmt.Errorf("%s: %w", where, err))
			}
			where = fmt.Sprintf("%s %d", where, id)
			continue
		}
		if err := s.tp.SetFanout(afpacket.FanoutCBPF, id); err != nil {
			return fail(fmt.Errorf("%s: join (PACKET_FANOUT): %w", where, err))
		}
	}
	for _, s := range group {
		if err := s.setFilter(cfg); err != nil {
			return fail(err)
		}
	}
	return group, nil
}

// newFanout makes a PACKET_FANOUT_CBPF group with a kernel-chosen id,
// with the socket in it, gives it its program (PACKET_FANOUT_DATA) and
// returns the id for the others to join.
func (s *Source) newFanout(steer []bpf.RawInstruction) (uint16, error) {
	if len(steer) == 0 {
		return 0, errors.New("no steering program")
	}
	fd, err := s.fd()
	if err != nil {
		return 0, err
	}
	mode := (unix.PACKET_FANOUT_CBPF | unix.PACKET_FANOUT_FLAG_UNIQUEID) << 16
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, mode); err != nil {
		return 0, fmt.Errorf("create (PACKET_FANOUT with a unique id): %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(steer)), Filter: (*unix.SockFilter)(unsafe.Pointer(&steer[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &prog); err != nil {
		return 0, fmt.Errorf("attach the steering program (PACKET_FANOUT_DATA): %w", err)
	}
	return s.fanoutID()
}

// fanoutID returns the id of the fanout group the socket is in.
func (s *Source) fanoutID() (uint16, error) {
	fd, err := s.fd()
	if err != nil {
		return 0, err
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return 0, fmt.Errorf("read the fanout group (PACKET_FANOUT): %w", err)
	}
	return uint16(v), nil // the id; type and flags are above it
}

// fd returns the socket. gopacket's TPacket keeps its descriptor to itself:
// it is read by reflection, and a gopacket without it is an error here.
func (s *Source) fd() (int, error) {
	fd := reflect.ValueOf(s.tp).Elem().FieldByName("fd")
	if !fd.IsValid() || !fd.CanInt() {
		return 0, errors.New("gopacket's afpacket.TPacket has no descriptor field fd: cannot make a steered fanout group")
	}
	return int(fd.Int()), nil
}

// setFilter attaches the envelope filter.
func (s *Source) setFilter(cfg Config) error {
	filter, err := Filter(cfg.Ports, s.loopback)
	if err == nil {
		err = s.tp.SetBPF(filter)
	}
	if err != nil {
		return fmt.Errorf("capture on %s: kernel filter: %w", cfg.Interface, err)
	}
	return nil
}

// open opens the ring, taking every frame.
func open(cfg Config) (*Source, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", cfg.Interface, err)
	}
	blocks := max(cfg.BufferSize/blockSize, 1)
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(cfg.Interface),
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.OptFrameSize(frameSize),
		afpacket.OptBlockSize(blockSize),
		afpacket.OptNumBlocks(blocks),
		afpacket.OptBlockTimeout(blockTimeout),
		afpacket.OptPollTimeout(capture.PollInterval),
		afpacket.OptAddVLANHeader(true),
	)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", cfg.Interface, err)
	}
	return &Source{tp: tp, arena: make([]byte, 0, 1<<20), loopback: ifi.Flags&net.FlagLoopback != 0}, nil
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
		data, ci, err := s.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			break // a short or empty batch: the ring is idle
		}
		if err != nil {
			if n > 0 {
				break
			}
			return nil, fmt.Errorf("read the capture ring: %w", err)
		}
		start := len(s.arena)
		s.arena = append(s.arena, data...)
		s.pkts[n] = capture.Packet{
			Data:      s.arena[start:len(s.arena):len(s.arena)],
			Length:    ci.Length,
			Timestamp: ci.Timestamp,
			LinkType:  layers.LinkTypeEthernet,
			IfIndex:   ci.InterfaceIndex,
		}
		n++
	}
	if n == 0 && s.shut {
		return nil, io.EOF // the ring is empty and nothing enters it any more
	}
	return s.pkts[:n], nil
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
	if err := s.tp.SetBPF([]bpf.RawInstruction{dropAll}); err != nil {
		return fmt.Errorf("shut the capture: kernel filter: %w", err)
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
	_, v3, err := s.tp.SocketStats()
	if err != nil {
		return 0, fmt.Errorf("read the ring's statistics: %w", err)
	}
	return uint64(v3.Drops()), nil
}

// Close implements capture.Source. Call it once no Read is running.
func (s *Source) Close() error {
	if !s.closed.Swap(true) {
		s.tp.Close()
	}
	return nil
}
