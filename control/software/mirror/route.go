//go:build linux

package mirror

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nextHop is how an IPv6 datagram to a sink leaves this host, as the
// kernel would send it from a socket: the interface, its MAC address and
// the neighbour's (the sink's or the gateway's).
type nextHop struct {
	ifindex  int
	src, dst net.HardwareAddr
}

// errNoNeighbour: the next hop is not resolved (yet).
var errNoNeighbour = errors.New("the next hop's MAC address is not resolved")

// lookupNextHop asks the kernel's routing table (RTM_GETROUTE, as `ip
// route get`) and neighbour table (RTM_GETNEIGH) for the next hop to dst.
func lookupNextHop(dst netip.Addr) (nextHop, error) {
	var hop nextHop
	ifindex, gw, err := routeTo(dst)
	if err != nil {
		return hop, err
	}
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return hop, fmt.Errorf("interface %d: %w", ifindex, err)
	}
	hop.ifindex, hop.src = ifindex, ifi.HardwareAddr
	if !gw.IsValid() {
		gw = dst
	}
	if hop.dst, err = neighbour(ifindex, gw); err != nil {
		return hop, err
	}
	return hop, nil
}

// routeTo returns the output interface and gateway (if any) to dst.
func routeTo(dst netip.Addr) (int, netip.Addr, error) {
	var none netip.Addr
	a := dst.As16()
	// struct rtmsg, then RTA_DST.
	req := make([]byte, unix.SizeofRtMsg, unix.SizeofRtMsg+4+16)
	req[0] = unix.AF_INET6
	req[1] = 128 // rtm_dst_len
	req = appendAttr(req, unix.RTA_DST, a[:])
	msgs, err := netlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_REQUEST, req)
	if err != nil {
		return 0, none, fmt.Errorf("route to %s: %w", dst, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		oif, gw := 0, none
		for _, at := range attrs(m.Data[unix.SizeofRtMsg:]) {
			switch at.Attr.Type {
			case unix.RTA_OIF:
				oif = int(binary.NativeEndian.Uint32(at.Value))
			case unix.RTA_GATEWAY:
				gw, _ = netip.AddrFromSlice(at.Value)
			}
		}
		if oif != 0 {
			return oif, gw, nil
		}
	}
	return 0, none, fmt.Errorf("no route to %s", dst)
}

// neighbour returns the MAC address of addr on ifindex if the kernel has
// resolved it.
func neighbour(ifindex int, addr netip.Addr) (net.HardwareAddr, error) {
	req := make([]byte, unix.SizeofNdMsg)
	req[0] = unix.AF_INET6
	msgs, err := netlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, req)
	if err != nil {
		return nil, fmt.Errorf("neighbours: %w", err)
	}
	const valid = unix.NUD_PERMANENT | unix.NUD_NOARP | unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNEIGH || len(m.Data) < unix.SizeofNdMsg {
			continue
		}
		nd := (*unix.NdMsg)(unsafe.Pointer(&m.Data[0]))
		if int(nd.Ifindex) != ifindex || nd.State&valid == 0 {
			continue
		}
		var dst netip.Addr
		var mac net.HardwareAddr
		for _, at := range attrs(m.Data[unix.SizeofNdMsg:]) {
			switch at.Attr.Type {
			case unix.NDA_DST:
				dst, _ = netip.AddrFromSlice(at.Value)
			case unix.NDA_LLADDR:
				mac = net.HardwareAddr(append([]byte(nil), at.Value...))
			}
		}
		if dst == addr && len(mac) == 6 {
			return mac, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", addr, errNoNeighbour)
}

// attrs splits rtnetlink attributes (syscall's parser knows only links,
// addresses and routes).
func attrs(b []byte) []syscall.NetlinkRouteAttr {
	var out []syscall.NetlinkRouteAttr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			break
		}
		out = append(out, syscall.NetlinkRouteAttr{
			Attr:  syscall.RtAttr{Len: uint16(l), Type: binary.NativeEndian.Uint16(b[2:4])},
			Value: b[4:l],
		})
		b = b[min((l+3)&^3, len(b)):]
	}
	return out
}

func appendAttr(b []byte, typ uint16, v []byte) []byte {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(append(b, h[:]...), v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// netlinkRequest sends one rtnetlink request and collects the answer.
func netlinkRequest(typ uint16, flags uint16, body []byte) ([]syscall.NetlinkMessage, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	var out []syscall.NetlinkMessage
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netlink parse: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return nil, unix.Errno(-e)
					}
				}
				return out, nil
			}
			out = append(out, m)
			if flags&unix.NLM_F_DUMP == 0 {
				return out, nil
			}
		}
	}
}
