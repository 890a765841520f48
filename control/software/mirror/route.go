//go:build linux

package mirror

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/control/software/rtnl"
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
	c, err := rtnl.Dial(0)
	if err != nil {
		return hop, err
	}
	defer c.Close()
	ifindex, gw, err := routeTo(c, dst)
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
	if hop.dst, err = neighbour(c, ifindex, gw); err != nil {
		return hop, err
	}
	return hop, nil
}

// routeTo returns the output interface and gateway (if any) to dst.
func routeTo(c *rtnl.Conn, dst netip.Addr) (int, netip.Addr, error) {
	var none netip.Addr
	a := dst.As16()
	// struct rtmsg, then RTA_DST.
	req := make([]byte, unix.SizeofRtMsg, unix.SizeofRtMsg+4+16)
	req[0] = unix.AF_INET6
	req[1] = 128 // rtm_dst_len
	req = rtnl.AppendAttr(req, unix.RTA_DST, a[:])
	msgs, err := c.Execute(unix.RTM_GETROUTE, 0, req)
	if err != nil {
		return 0, none, fmt.Errorf("route to %s: %w", dst, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		oif, gw := 0, none
		for _, at := range rtnl.Attrs(m.Data[unix.SizeofRtMsg:]) {
			switch {
			case at.Type == unix.RTA_OIF && len(at.Value) == 4:
				oif = int(binary.NativeEndian.Uint32(at.Value))
			case at.Type == unix.RTA_GATEWAY:
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
func neighbour(c *rtnl.Conn, ifindex int, addr netip.Addr) (net.HardwareAddr, error) {
	req := make([]byte, unix.SizeofNdMsg)
	req[0] = unix.AF_INET6
	msgs, err := c.Execute(unix.RTM_GETNEIGH, unix.NLM_F_DUMP, req)
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
		for _, at := range rtnl.Attrs(m.Data[unix.SizeofNdMsg:]) {
			switch at.Type {
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
