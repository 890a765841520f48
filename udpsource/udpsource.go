//go:build linux

// Package udpsource receives the NIC's encapsulated copies on a UDP socket.
//
// The socket is set up for the envelope the hardware sends: zero UDP
// checksums over IPv6 are accepted (UDP_NO_CHECK6_RX; without it the kernel
// drops every copy), each datagram gets a kernel receive timestamp
// (SO_TIMESTAMPNS), and the receive buffer is forced past rmem_max
// (SO_RCVBUFFORCE) to absorb bursts. Datagrams are read in batches with
// recvmmsg into preallocated buffers.
package udpsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/internal/mmsg"
	"golang.org/x/sys/unix"
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
	Logger    *slog.Logger
}

// Source is a listening UDP socket. It implements capture.Source.
type Source struct {
	conn   *net.UDPConn
	raw    syscall.RawConn
	batch  *mmsg.Batch
	pkts   []capture.Packet
	recvFn func(fd uintptr) bool
	max    int
	n      int
	err    error
	rcvBuf int
	forced bool
}

// Listen opens the socket. A port already in use or an address not on this
// host fails here, with the address in the error.
func Listen(ctx context.Context, cfg Config) (*Source, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.SnapLen <= 0 || cfg.SnapLen > 65535 {
		cfg.SnapLen = 65535
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Source{}
	var optErr error
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		if err := c.Control(func(fd uintptr) { optErr = s.setOptions(int(fd), cfg) }); err != nil {
			return err
		}
		return optErr
	}}
	network, host := "udp", ""
	if cfg.Addr.IsValid() {
		host = cfg.Addr.String()
		if cfg.Addr.Is4() {
			network = "udp4"
		} else {
			network = "udp6"
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(cfg.Port)))
	pc, err := lc.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on udp %s: %w", addr, err)
	}
	s.conn = pc.(*net.UDPConn)
	if s.raw, err = s.conn.SyscallConn(); err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("listen on udp %s: %w", addr, err)
	}
	if !s.forced {
		cfg.Logger.Warn("could not force the socket receive buffer (needs CAP_NET_ADMIN); bursts may be dropped",
			"requested_bytes", cfg.BufferSize, "granted_bytes", s.rcvBuf)
	}
	s.batch = mmsg.NewBatch(cfg.BatchSize, cfg.SnapLen)
	s.pkts = make([]capture.Packet, cfg.BatchSize)
	s.recvFn = s.recv
	return s, nil
}

func (s *Source) setOptions(fd int, cfg Config) error {
	// Zero-checksum IPv6 datagrams are what the NIC sends; accept them. The
	// option exists for every UDP socket, so it also applies to udp4.
	if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_NO_CHECK6_RX, 1); err != nil {
		return fmt.Errorf("setsockopt UDP_NO_CHECK6_RX: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("setsockopt SO_TIMESTAMPNS: %w", err)
	}
	if cfg.BufferSize > 0 {
		// The kernel doubles the value it is given; ask for half.
		half := cfg.BufferSize / 2
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, half); err == nil {
			s.forced = true
		} else if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, half); err != nil {
			return fmt.Errorf("setsockopt SO_RCVBUF: %w", err)
		}
	} else {
		s.forced = true
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return fmt.Errorf("getsockopt SO_RCVBUF: %w", err)
	}
	s.rcvBuf = v
	return nil
}

// ReceiveBuffer returns the receive buffer size the kernel granted, in bytes.
func (s *Source) ReceiveBuffer() int { return s.rcvBuf }

// LocalAddr returns the address the socket is bound to.
func (s *Source) LocalAddr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (s *Source) recv(fd uintptr) bool {
	for {
		s.n, s.err = s.batch.Recv(fd, s.max)
		if s.err != unix.EINTR {
			break
		}
	}
	return s.err != unix.EAGAIN
}

// Read implements capture.Source.
func (s *Source) Read(max int) ([]capture.Packet, error) {
	s.max = max
	if err := s.raw.Read(s.recvFn); err != nil {
		return nil, err
	}
	if s.err != nil {
		return nil, fmt.Errorf("recvmmsg: %w", s.err)
	}
	var now time.Time
	for i := 0; i < s.n; i++ {
		p := &s.pkts[i]
		p.Data, p.Length = s.batch.Received(i)
		p.Src = s.batch.Source(i)
		p.Timestamp = s.batch.Timestamp(i)
		if p.Timestamp.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			p.Timestamp = now
		}
	}
	return s.pkts[:s.n], nil
}

// SetReadDeadline implements capture.Source.
func (s *Source) SetReadDeadline(t time.Time) error { return s.conn.SetReadDeadline(t) }

// Drops implements capture.Source with the kernel's count of datagrams
// dropped on this socket (SO_MEMINFO), mostly for a full receive buffer.
func (s *Source) Drops() (uint64, error) {
	var drops uint32
	var cerr error
	err := s.raw.Control(func(fd uintptr) {
		var info [unix.SK_MEMINFO_VARS]uint32
		l := uint32(len(info) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&l)), 0)
		if errno != 0 {
			cerr = errno
			return
		}
		drops = info[unix.SK_MEMINFO_DROPS]
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("getsockopt SO_MEMINFO: %w", err)
	}
	return uint64(drops), nil
}

// Close implements capture.Source.
func (s *Source) Close() error {
	if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
