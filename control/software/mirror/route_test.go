//go:build linux

package mirror

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/control/software/rtnl"
	"github.com/dpcap/dpcap/control/software/rtnl/rtnltest"
)

func routeMsg(oif uint32, gw string) rtnl.Message {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET6
	var v [4]byte
	binary.NativeEndian.PutUint32(v[:], oif)
	b = rtnl.AppendAttr(b, unix.RTA_OIF, v[:])
	if gw != "" {
		a := netip.MustParseAddr(gw).As16()
		b = rtnl.AppendAttr(b, unix.RTA_GATEWAY, a[:])
	}
	return rtnl.Message{Header: unix.NlMsghdr{Type: unix.RTM_NEWROUTE}, Data: b}
}

func neighMsg(ifindex int32, state uint16, addr, mac string) rtnl.Message {
	b := make([]byte, unix.SizeofNdMsg)
	nd := (*unix.NdMsg)(unsafe.Pointer(&b[0]))
	nd.Family, nd.Ifindex, nd.State = unix.AF_INET6, ifindex, state
	a := netip.MustParseAddr(addr).As16()
	b = rtnl.AppendAttr(b, unix.NDA_DST, a[:])
	hw, _ := net.ParseMAC(mac)
	b = rtnl.AppendAttr(b, unix.NDA_LLADDR, hw)
	return rtnl.Message{Header: unix.NlMsghdr{Type: unix.RTM_NEWNEIGH, Flags: unix.NLM_F_MULTI}, Data: b}
}

// TestRouteTo: the route is the reply to this request, not a late one to
// an earlier request, and the kernel's refusal is the error.
func TestRouteTo(t *testing.T) {
	sink := netip.MustParseAddr("2001:db8::2")
	for _, tt := range []struct {
		name    string
		answer  func(req rtnl.Message) []rtnl.Message
		oif     int
		gw      string
		wantErr string
	}{
		{"direct", func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{routeMsg(3, ""), rtnltest.Error(req, 0)}
		}, 3, "", ""},
		{"through a gateway", func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{routeMsg(4, "fe80::1"), rtnltest.Error(req, 0)}
		}, 4, "fe80::1", ""},
		{"a late reply to another request first", func(req rtnl.Message) []rtnl.Message {
			late := routeMsg(9, "fe80::9")
			late.Header.Seq, late.Header.Pid = req.Header.Seq-1, req.Header.Pid
			return []rtnl.Message{late, routeMsg(3, ""), rtnltest.Error(req, 0)}
		}, 3, "", ""},
		{"unreachable", func(req rtnl.Message) []rtnl.Message {
			return []rtnl.Message{rtnltest.Error(req, unix.ENETUNREACH)}
		}, 0, "", "route to 2001:db8::2: network is unreachable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := rtnltest.Dial(func(req rtnl.Message) ([]rtnl.Message, error) {
				if req.Header.Type != unix.RTM_GETROUTE {
					t.Errorf("request type %d", req.Header.Type)
				}
				return tt.answer(req), nil
			})
			oif, gw, err := routeTo(c, sink)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			var wantGW netip.Addr
			if tt.gw != "" {
				wantGW = netip.MustParseAddr(tt.gw)
			}
			if err != nil || oif != tt.oif || gw != wantGW {
				t.Fatalf("oif %d, gateway %v, %v; want %d, %v", oif, gw, err, tt.oif, wantGW)
			}
		})
	}
}

// TestNeighbour: the MAC is the resolved entry's for the address on the
// interface; an unresolved one is errNoNeighbour.
func TestNeighbour(t *testing.T) {
	c := rtnltest.Dial(func(req rtnl.Message) ([]rtnl.Message, error) {
		return []rtnl.Message{
			neighMsg(2, unix.NUD_REACHABLE, "2001:db8::2", "02:00:00:00:00:01"), // another interface
			neighMsg(3, unix.NUD_FAILED, "2001:db8::2", "02:00:00:00:00:02"),    // not resolved
			neighMsg(3, unix.NUD_STALE, "2001:db8::2", "02:00:00:00:00:03"),     // this one
			neighMsg(3, unix.NUD_PERMANENT, "2001:db8::7", "02:00:00:00:00:04"), // another address
			rtnltest.Done(),
		}, nil
	})
	mac, err := neighbour(c, 3, netip.MustParseAddr("2001:db8::2"))
	if err != nil || mac.String() != "02:00:00:00:00:03" {
		t.Fatalf("%v %v", mac, err)
	}
	if _, err := neighbour(c, 3, netip.MustParseAddr("2001:db8::5")); !errors.Is(err, errNoNeighbour) {
		t.Fatalf("unresolved: %v", err)
	}
}
