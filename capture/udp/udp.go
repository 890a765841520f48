//go:build linux

// Package udp receives the NIC's encapsulated copies on a UDP socket.
//
// The socket is set up for the envelope the hardware sends: zero UDP
// checksums over IPv6 are accepted (UDP_NO_CHECK6_RX; without it the kernel
// drops every copy), each datagram gets a kernel receive timestamp
// (SO_TIMESTAMPNS) and its IPv6 flow label, which carries the captured
// port's tag (IPV6_FLOWINFO), and the receive buffer is forced past
// rmem_max (SO_RCVBUFFORCE) to absorb bursts.
//
// Datagrams are read in batches with a blocking recvmmsg into preallocated
// buffers, outside Go's network poller: at a hundred thousand packets a
// second the poller's park and wake-up cycle costs more than the reads.
// After a short batch the reader sleeps briefly in the kernel, so that the
// next read finds a full batch, as a NIC's interrupt moderation does.
package udp

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
	"unsafe"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/internal/mmsg"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	// DefaultCoalesce is the pause after a short batch.
	DefaultCoalesce = time.Millisecond
	// minCoalesceBuffer is the smallest receive buffer that pauses: it
	// holds over a millisecond of traffic at a million packets a second. A
	// smaller one (rmem_max, when the buffer could not be forced) could
	// overflow during the pause, so the reader then never pauses.
	minCoalesceBuffer = 4 << 20
)

// Config says where and how to listen.
type Config struct {
	// Addr is the local address; the zero Addr listens on all IPv6 and IPv4
	// addresses with one dual-stack socket.
	Addr netip.Addr
	Port uint16
	// BufferSize is the requested socket receive buffer in bytes.
	BufferSize int
	// SnapLen bounds the bytes kept of each datagram; longer ones are
	// truncated with their full length preserved.
	SnapLen int
	// BatchSize is the most datagrams one Read returns.
	BatchSize int
	// Coalesce is the pause after a short batch: DefaultCoalesce when zero,
	// none when negative or when the receive buffer granted is small.
	Coalesce time.Duration
	// ArrivalInterface asks the kernel for each datagram's arrival
	// interface (capture.Packet.IfIndex), for --allow rules with a zone.
	ArrivalInterface bool
	Logger           *slog.Logger
}

// Source is a listening UDP socket. It implements capture.Source.
type Source struct {
	fd       int
	batch    *mmsg.Batch
	pkts     []capture.Packet
	coalesce unix.Timespec
	short    bool // the last read drained the queue
	deadline capture.Deadline
	closed   atomic.Bool
	// shut is set by Shut, and drops then holds the final drop count.
	shut      bool
	drops     uint64
	dropsShut atomic.Bool // drops is final; readable from any goroutine
	local     netip.AddrPort
	rcvBuf    int
	ifindex   bool // the kernel attaches arrival interfaces
}

// Listen opens the socket. A port already in use or an address not on this
// host fails here, with the address in the error.
func Listen(cfg Config) (*Source, error) {
	return open(cfg, false)
}

// ListenGroup opens n sockets in one SO_REUSEPORT group on the same
// address and port (the port of the first when cfg.Port is 0) and attaches
// steer, a classic BPF program whose result is the index of the socket
// that gets a datagram (SO_ATTACH_REUSEPORT_CBPF), in the order returned.
// When the program's result is out of range the kernel picks by its hash.
func ListenGroup(cfg Config, n int, steer []bpf.RawInstruction) ([]*Source, error) {
	var group []*Source
	fail := func(err error) ([]*Source, error) {
		for _, s := range group {
			s.Close()
		}
		return nil, err
	}
	for i := range n {
		s, err := open(cfg, true)
		if err != nil {
			return fail(err)
		}
		group = append(group, s)
		if i > 0 {
			continue
		}
		cfg.Port = s.local.Port()
		if len(steer) == 0 {
			continue
		}
		prog := unix.SockFprog{Len: uint16(len(steer)), Filter: (*unix.SockFilter)(unsafe.Pointer(&steer[0]))}
		if err := unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &prog); err != nil {
			return fail(fmt.Errorf("listen on udp %s: attach the steering program (SO_ATTACH_REUSEPORT_CBPF): %w", s.local, err))
		}
	}
	return group, nil
}

func open(cfg Config, reusePort bool) (*Source, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = capture.DefaultBatchSize
	}
	if cfg.SnapLen <= 0 || cfg.SnapLen > 65535 {
		cfg.SnapLen = 65535
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = DefaultCoalesce
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	bind := netip.AddrPortFrom(cfg.Addr, cfg.Port)
	if !cfg.Addr.IsValid() {
		bind = netip.AddrPortFrom(netip.IPv6Unspecified(), cfg.Port)
	}
	family := unix.AF_INET6
	if bind.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("listen on udp %s: socket: %w", bind, err)
	}
	s := &Source{fd: fd, ifindex: cfg.ArrivalInterface}
	if err := s.setOptions(cfg, family); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on udp %s: %w", bind, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("listen on udp %s: setsockopt SO_REUSEPORT: %w", bind, err)
		}
	}
	sa := mmsg.Sockaddr(bind, family == unix.AF_INET6)
	if _, _, errno := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), sockaddrLen(&sa)); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on udp %s: bind: %w", bind, errno)
	}
	if s.local, err = localAddr(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen on udp %s: %w", bind, err)
	}
	if cfg.Coalesce > 0 && s.rcvBuf >= minCoalesceBuffer {
		s.coalesce = unix.NsecToTimespec(cfg.Coalesce.Nanoseconds())
	}
	s.batch = mmsg.NewBatch(cfg.BatchSize, cfg.SnapLen)
	s.pkts = make([]capture.Packet, cfg.BatchSize)
	if cfg.BufferSize > 0 && s.rcvBuf < cfg.BufferSize {
		cfg.Logger.Warn("could not force the socket receive buffer (needs CAP_NET_ADMIN); bursts may be dropped",
			"requested_bytes", cfg.BufferSize, "granted_bytes", s.rcvBuf)
	}
	return s, nil
}

func (s *Source) setOptions(cfg Config, family int) error {
	set := func(level, opt, v int, name string) error {
		if err := unix.SetsockoptInt(s.fd, level, opt, v); err != nil {
			return fmt.Errorf("setsockopt %s: %w", name, err)
		}
		return nil
	}
	if family == unix.AF_INET6 && !cfg.Addr.IsValid() {
		// One socket for IPv6 and IPv4 senders.
		if err := set(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0, "IPV6_V6ONLY"); err != nil {
			return err
		}
	}
	// Zero-checksum IPv6 datagrams are what the NIC sends; accept them.
	if err := set(unix.SOL_UDP, unix.UDP_NO_CHECK6_RX, 1, "UDP_NO_CHECK6_RX"); err != nil {
		return err
	}
	if err := set(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS"); err != nil {
		return err
	}
	if family == unix.AF_INET6 {
		// The flow label carries the captured port's tag.
		if err := set(unix.IPPROTO_IPV6, mmsg.IPv6FlowInfo, 1, "IPV6_FLOWINFO"); err != nil {
			return err
		}
	}
	if cfg.ArrivalInterface {
		// On a dual-stack socket IPV6_RECVPKTINFO covers IPv4 senders too.
		err := set(unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO")
		if family == unix.AF_INET {
			err = set(unix.IPPROTO_IP, unix.IP_PKTINFO, 1, "IP_PKTINFO")
		}
		if err != nil {
			return err
		}
	}
	tv := unix.NsecToTimeval(capture.PollInterval.Nanoseconds())
	if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("setsockopt SO_RCVTIMEO: %w", err)
	}
	if cfg.BufferSize > 0 {
		// The kernel doubles the value it is given; ask for half.
		half := cfg.BufferSize / 2
		if unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, half) != nil {
			if err := set(unix.SOL_SOCKET, unix.SO_RCVBUF, half, "SO_RCVBUF"); err != nil {
				return err
			}
		}
	}
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return fmt.Errorf("getsockopt SO_RCVBUF: %w", err)
	}
	s.rcvBuf = v
	return nil
}

func sockaddrLen(sa *unix.RawSockaddrInet6) uintptr {
	if sa.Family == unix.AF_INET {
		return unix.SizeofSockaddrInet4
	}
	return unix.SizeofSockaddrInet6
}

func localAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockname: %w", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("getsockname: unexpected address %T", sa)
}

// ReceiveBuffer returns the receive buffer size the kernel granted, in bytes.
func (s *Source) ReceiveBuffer() int { return s.rcvBuf }

// LocalAddr returns the address the socket is bound to.
func (s *Source) LocalAddr() netip.AddrPort { return s.local }

var _ capture.Source = (*Source)(nil)

// Framing implements capture.Source: NIC envelopes, the payloads of the
// datagrams to the socket's port.
func (s *Source) Framing() capture.Framing {
	return capture.Framing{Kind: capture.Payloads, Port: s.local.Port()}
}

// Read implements capture.Source. It returns net.ErrClosed after Close.
func (s *Source) Read(max int) ([]capture.Packet, error) {
	if s.shut {
		return s.drain(max)
	}
	if s.short && s.coalesce.Nsec > 0 {
		// A raw call keeps the P: a millisecond is too short for the
		// scheduler's hand-off to another thread to pay off.
		unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&s.coalesce)), 0, 0)
	}
	if s.closed.Load() {
		return nil, net.ErrClosed
	}
	if s.deadline.Passed() {
		s.short = false
		return nil, os.ErrDeadlineExceeded
	}
	// Blocks until one datagram arrives, then takes whatever else is
	// queued; after capture.PollInterval with nothing, returns an empty batch.
	n, err := s.batch.Recv(uintptr(s.fd), max, unix.MSG_WAITFORONE)
	if err != nil {
		s.short = false
		if mmsg.Temporary(err) {
			return s.pkts[:0], nil
		}
		return nil, fmt.Errorf("recvmmsg: %w", err)
	}
	s.short = n < max
	return s.packets(n), nil
}

// drain reads what the queue holds after Shut without waiting.
func (s *Source) drain(max int) ([]capture.Packet, error) {
	if s.closed.Load() {
		return nil, net.ErrClosed
	}
	n, err := s.batch.Recv(uintptr(s.fd), max, unix.MSG_DONTWAIT)
	switch {
	case err == unix.EINTR:
		return s.pkts[:0], nil
	case mmsg.Temporary(err):
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("recvmmsg: %w", err)
	}
	return s.packets(n), nil
}

// packets fills the first n packets from the batch just received.
func (s *Source) packets(n int) []capture.Packet {
	var now time.Time
	for i := range n {
		p := &s.pkts[i]
		p.Data, p.Length = s.batch.Received(i)
		p.Src = s.batch.Source(i)
		p.FlowLabel = s.batch.FlowLabel(i)
		if s.ifindex {
			p.IfIndex = s.batch.IfIndex(i)
		}
		p.Timestamp = s.batch.Timestamp(i)
		if p.Timestamp.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			p.Timestamp = now
		}
	}
	return s.pkts[:n]
}

// SetReadDeadline implements capture.Source. A blocked Read notices the
// change within capture.PollInterval.
func (s *Source) SetReadDeadline(t time.Time) error {
	s.deadline.Set(t)
	return nil
}

// Shut implements capture.Source: a filter that takes nothing closes the
// socket to new datagrams (the kernel counts those as drops, which Drops
// no longer reports), while the queued ones stay readable. Call it from
// the reading goroutine.
func (s *Source) Shut() error {
	if s.shut {
		return nil
	}
	d, err := s.Drops()
	if err != nil {
		return err
	}
	if err := unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &dropAll); err != nil {
		return fmt.Errorf("shut the socket: attach a filter: %w", err)
	}
	s.drops, s.shut = d, true
	s.dropsShut.Store(true)
	return nil
}

// dropAll is a classic BPF program that accepts no packet.
var dropAll = unix.SockFprog{Len: 1, Filter: &[]unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}[0]}

// Drops implements capture.Source with the kernel's count of datagrams
// dropped on this socket (SO_MEMINFO), mostly for a full receive buffer.
func (s *Source) Drops() (uint64, error) {
	if s.dropsShut.Load() {
		return s.drops, nil
	}
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	var info [unix.SK_MEMINFO_VARS]uint32
	l := uint32(len(info) * 4)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return 0, fmt.Errorf("getsockopt SO_MEMINFO: %w", errno)
	}
	return uint64(info[unix.SK_MEMINFO_DROPS]), nil
}

// Close implements capture.Source. Call it once no Read is running: wake a
// blocked Read with SetReadDeadline first.
func (s *Source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := unix.Close(s.fd); err != nil && !errors.Is(err, unix.EBADF) {
		return fmt.Errorf("close udp socket: %w", err)
	}
	return nil
}
