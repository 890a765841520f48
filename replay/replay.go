//go:build linux

// Package replay sends the frames of a capture file to a sink wrapped as the
// NIC wraps its copies: one frame per UDP datagram, with a zero UDP checksum
// over IPv6, hop limit 64, and flow label 0 or a port's tag. It is how a sink path is tested
// before hardware capture is turned on.
package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"github.com/dpcap/dpcap/capfile"
	"github.com/dpcap/dpcap/internal/mmsg"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// MaxFrame is the largest frame one UDP datagram can carry.
const MaxFrame = 65507

// Config says where and how fast to send.
type Config struct {
	Sink netip.AddrPort
	// SrcPort is the UDP source port; 0 lets the kernel choose.
	SrcPort uint16
	// PPS paces sending at this many packets per second; 0 sends as fast
	// as possible.
	PPS float64
	// Loops is how many times the file is sent; 0 means until ctx ends.
	Loops int
	// Count stops after this many packets; 0 means no limit.
	Count uint64
	// Tag is put in the IPv6 flow label, as dpcap's templates tag a port
	// (IPv6 sinks only); 0 leaves the label 0.
	Tag       uint32
	BatchSize int
	Logger    *slog.Logger
}

// Stats count what was sent and skipped.
type Stats struct {
	Sent    uint64
	Bytes   uint64 // inner frame bytes sent
	Skipped uint64 // frames too large for a datagram, or cut short in the file
	// Refused counts ICMP port-unreachable reports: nothing listened at the
	// sink when an earlier datagram arrived.
	Refused uint64
	Elapsed time.Duration
}

// Opener opens the capture file anew for each loop.
type Opener func() (io.ReadCloser, error)

type sender struct {
	cfg   Config
	raw   syscall.RawConn
	batch *mmsg.Batch
	n     int // slots filled
	from  int
	sent  int
	err   error
	fn    func(fd uintptr) bool
	stats Stats
	start time.Time
}

// Send replays the file until it has been sent Loops times, Count packets
// were sent, or ctx ends (which is not an error).
func Send(ctx context.Context, cfg Config, open Opener) (Stats, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		return Stats{}, err
	}
	defer conn.Close()
	s := &sender{cfg: cfg, batch: mmsg.NewBatch(cfg.BatchSize, MaxFrame)}
	if s.raw, err = conn.SyscallConn(); err != nil {
		return Stats{}, err
	}
	s.fn = s.sendmmsg
	s.start = time.Now()
	for loop := 0; cfg.Loops == 0 || loop < cfg.Loops; loop++ {
		done, err := s.sendFile(ctx, open)
		if err != nil {
			return s.finish(), err
		}
		if done {
			break
		}
	}
	if err := s.flush(); err != nil {
		return s.finish(), err
	}
	return s.finish(), nil
}

func (s *sender) finish() Stats {
	s.stats.Elapsed = time.Since(s.start)
	return s.stats
}

func dial(ctx context.Context, cfg Config) (*net.UDPConn, error) {
	v6 := cfg.Sink.Addr().Is6() && !cfg.Sink.Addr().Is4In6()
	if cfg.Tag != 0 && !v6 {
		return nil, fmt.Errorf("a tag travels in the IPv6 flow label; %s is not an IPv6 sink", cfg.Sink)
	}
	d := net.Dialer{
		LocalAddr: &net.UDPAddr{Port: int(cfg.SrcPort)},
		Control: func(network, address string, c syscall.RawConn) error {
			var optErr error
			err := c.Control(func(fd uintptr) {
				optErr = setSendOptions(int(fd), v6)
				if optErr == nil && cfg.Tag != 0 {
					optErr = leaseFlowLabel(int(fd), cfg.Sink.Addr(), cfg.Tag)
				}
			})
			if err != nil {
				return err
			}
			return optErr
		},
	}
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	c, err := d.DialContext(ctx, network, cfg.Sink.String())
	if err != nil {
		return nil, fmt.Errorf("open socket to %s: %w", cfg.Sink, err)
	}
	conn := c.(*net.UDPConn)
	if cfg.Tag != 0 {
		if err := connectWithFlowLabel(conn, cfg.Sink, cfg.Tag); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// leaseFlowLabel takes the label for this socket (IPV6_FLOWLABEL_MGR) and
// makes it send the label of its destination address (IPV6_FLOWINFO_SEND);
// Linux sends no label a socket has not leased.
func leaseFlowLabel(fd int, dst netip.Addr, label uint32) error {
	// struct in6_flowlabel_req: dst, label, action, share, flags, expires,
	// linger, padding.
	var req [32]byte
	a := dst.As16()
	copy(req[0:16], a[:])
	binary.BigEndian.PutUint32(req[16:20], label)
	req[20] = 0                                  // IPV6_FL_A_GET
	req[21] = 1                                  // IPV6_FL_S_EXCL
	binary.NativeEndian.PutUint16(req[22:24], 1) // IPV6_FL_F_CREATE
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_IPV6, mmsg.IPv6FlowLabelMgr,
		uintptr(unsafe.Pointer(&req[0])), uintptr(len(req)), 0)
	if errno != 0 {
		return fmt.Errorf("lease flow label %d (IPV6_FLOWLABEL_MGR): %w", label, errno)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, mmsg.IPv6FlowInfoSend, 1); err != nil {
		return fmt.Errorf("setsockopt IPV6_FLOWINFO_SEND: %w", err)
	}
	return nil
}

// connectWithFlowLabel connects again, naming the label in the address;
// Go's dialer has no field for it.
func connectWithFlowLabel(c *net.UDPConn, dst netip.AddrPort, label uint32) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	sa := mmsg.Sockaddr(dst, true)
	binary.BigEndian.PutUint32((*[4]byte)(unsafe.Pointer(&sa.Flowinfo))[:], label)
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_CONNECT, fd, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("connect to %s with flow label %d: %w", dst, label, errno)
	}
	return nil
}

// setSendOptions makes the kernel's headers match the NIC's template.
func setSendOptions(fd int, v6 bool) error {
	set := func(level, opt, v int, name string) error {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			return fmt.Errorf("setsockopt %s: %w", name, err)
		}
		return nil
	}
	if v6 {
		if err := set(unix.SOL_UDP, unix.UDP_NO_CHECK6_TX, 1, "UDP_NO_CHECK6_TX"); err != nil {
			return err
		}
		if err := set(unix.IPPROTO_IPV6, unix.IPV6_AUTOFLOWLABEL, 0, "IPV6_AUTOFLOWLABEL"); err != nil {
			return err
		}
		if err := set(unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 64, "IPV6_UNICAST_HOPS"); err != nil {
			return err
		}
	} else {
		if err := set(unix.SOL_SOCKET, unix.SO_NO_CHECK, 1, "SO_NO_CHECK"); err != nil {
			return err
		}
		if err := set(unix.IPPROTO_IP, unix.IP_TTL, 64, "IP_TTL"); err != nil {
			return err
		}
	}
	// A larger send buffer keeps sendmmsg from stalling on bursts; not
	// being allowed to force it is fine.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	return nil
}

// sendFile sends one pass over the file; done reports that Count was
// reached or ctx ended.
func (s *sender) sendFile(ctx context.Context, open Opener) (done bool, err error) {
	f, err := open()
	if err != nil {
		return true, err
	}
	defer f.Close()
	r, err := capfile.NewReader(f)
	if err != nil {
		return true, err
	}
	if lt := r.LinkType(); lt != layers.LinkTypeEthernet {
		return true, fmt.Errorf("replay needs Ethernet frames; the file's link type is %s (%d)", lt, int(lt))
	}
	for {
		if ctx.Err() != nil {
			return true, nil
		}
		if s.cfg.Count > 0 && s.stats.Sent+uint64(s.n) >= s.cfg.Count {
			return true, nil
		}
		data, ci, _, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return true, fmt.Errorf("read capture file: %w", err)
		}
		if len(data) > MaxFrame || ci.CaptureLength < ci.Length {
			s.stats.Skipped++
			continue
		}
		n := copy(s.batch.Buf(s.n), data)
		s.batch.SetSend(s.n, n, nil)
		s.n++
		s.stats.Bytes += uint64(n)
		if s.n == s.batch.Len() || s.cfg.PPS > 0 {
			if err := s.paced(ctx); err != nil {
				return true, err
			}
		}
	}
}

// paced sends the filled slots, waiting for each one's turn when a rate is
// set.
func (s *sender) paced(ctx context.Context) error {
	if s.cfg.PPS <= 0 {
		return s.flush()
	}
	due := s.start.Add(time.Duration(float64(s.stats.Sent+uint64(s.n)-1) / s.cfg.PPS * float64(time.Second)))
	if wait := time.Until(due); wait > 0 {
		// Send what is filled when the wait is long, and batch when the
		// rate is high enough that the wait is shorter than a wake-up.
		if wait < 200*time.Microsecond && s.n < s.batch.Len() {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return s.flush()
}

func (s *sender) sendmmsg(fd uintptr) bool {
	for s.from < s.n {
		n, err := s.batch.Send(fd, s.from, s.n)
		if err == unix.EAGAIN {
			return false
		}
		if err == unix.ECONNREFUSED {
			// An earlier datagram drew an ICMP port unreachable: nothing
			// listens at the sink yet. Keep going; it may start.
			s.stats.Refused++
			continue
		}
		if err != nil {
			s.err = err
			return true
		}
		s.from += n
		s.sent += n
	}
	return true
}

// flush sends every filled slot.
func (s *sender) flush() error {
	if s.n == 0 {
		return nil
	}
	s.from, s.sent, s.err = 0, 0, nil
	err := s.raw.Write(s.fn)
	s.stats.Sent += uint64(s.sent)
	s.n = 0
	if err != nil {
		return fmt.Errorf("send to %s: %w", s.cfg.Sink, err)
	}
	if s.err != nil {
		return fmt.Errorf("send to %s: %w", s.cfg.Sink, s.err)
	}
	return nil
}
