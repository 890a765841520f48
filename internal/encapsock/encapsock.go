//go:build linux

// Package encapsock opens UDP sockets whose datagrams leave with the header
// fields of the NIC's envelope (docs/ENVELOPE.md §1): a zero UDP checksum over
// IPv6, hop limit 64, traffic class 0, and a flow label of 0 or the port's
// tag. The kernel fills in the lengths and the addresses.
package encapsock

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"github.com/dpcap/dpcap/internal/mmsg"
	"golang.org/x/sys/unix"
)

// Config says where to send from and to.
type Config struct {
	Sink netip.AddrPort
	// SrcPort is the UDP source port; 0 lets the kernel choose.
	SrcPort uint16
	// Tag goes in the IPv6 flow label (IPv6 sinks only); 0 for none.
	Tag uint32
}

// Dial opens a UDP socket connected to cfg.Sink.
func Dial(ctx context.Context, cfg Config) (*net.UDPConn, error) {
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
	req[20] = 0 // IPV6_FL_A_GET
	// Shared with any socket: a label lingers for seconds after its socket
	// closes, and a restarted mirror or a second replay needs it again.
	req[21] = 255                                // IPV6_FL_S_ANY
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
