package afpacket

import (
	"fmt"
	"slices"

	"github.com/dpcap/dpcap/internal/cbpf"
	"golang.org/x/net/bpf"
)

// Filter builds the kernel filter for envelopes: IPv4 or IPv6 UDP to one of
// ports (decap.UDPPorts), GRE (the GRE kinds), and whatever the filter
// cannot judge without walking headers (IPv4 fragments, IPv6 extension
// headers), which the decoder then sorts out. It never rejects a frame the
// decoder would take; it only keeps other traffic from being copied to user
// space.
//
// The frames it sees are untagged: the kernel strips VLAN tags into
// metadata before AF_PACKET's filter runs.
//
// With loopback set it also rejects the frames the host sends
// (PACKET_OUTGOING): on a loopback interface every frame passes AF_PACKET
// twice, leaving and arriving, and libpcap likewise keeps only the
// arriving copy.
func Filter(ports []uint16, loopback bool) ([]bpf.RawInstruction, error) {
	ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	var p cbpf.Program
	if loopback {
		p.Add(bpf.LoadExtension{Num: bpf.ExtType}) // the skb's packet type
		p.JumpIf(bpf.JumpEqual, packetOutgoing, "reject", "")
	}
	p.Add(bpf.LoadAbsolute{Off: 12, Size: 2}) // ethertype
	p.JumpIf(bpf.JumpEqual, 0x0800, "", "ipv6")

	// IPv4: protocol at 23; fragments (offset or MF in 20..21) go up;
	// the UDP destination port is at 14 + IHL + 2.
	p.Add(bpf.LoadAbsolute{Off: 23, Size: 1})
	p.JumpIf(bpf.JumpEqual, ipProtoGRE, "accept", "")
	p.JumpIf(bpf.JumpEqual, ipProtoUDP, "", "reject")
	p.Add(bpf.LoadAbsolute{Off: 20, Size: 2})
	p.JumpIf(bpf.JumpBitsSet, 0x3FFF, "accept", "")
	p.Add(bpf.LoadMemShift{Off: 14}, bpf.LoadIndirect{Off: 16, Size: 2})
	p.Jump("ports")

	// IPv6: next header at 20, UDP destination port at 14+40+2 = 56.
	p.Label("ipv6")
	p.JumpIf(bpf.JumpEqual, 0x86DD, "", "reject")
	p.Add(bpf.LoadAbsolute{Off: 20, Size: 1})
	p.JumpIf(bpf.JumpEqual, ipProtoUDP, "", "ipv6 other")
	p.Add(bpf.LoadAbsolute{Off: 56, Size: 2})
	p.Jump("ports")
	// GRE, and the extension headers the decoder walks: hop-by-hop,
	// routing, fragment, destination options, authentication.
	p.Label("ipv6 other")
	for _, next := range []uint32{ipProtoGRE, 0, 43, 44, 60, 51} {
		p.JumpIf(bpf.JumpEqual, next, "accept", "")
	}
	p.Jump("reject")

	// A holds the UDP destination port.
	p.Label("ports")
	for _, port := range ports {
		p.JumpIf(bpf.JumpEqual, uint32(port), "accept", "")
	}
	p.Label("reject")
	p.Add(bpf.RetConstant{Val: 0})
	p.Label("accept")
	p.Add(bpf.RetConstant{Val: 0xFFFFFFFF})

	raw, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the envelope filter: %w", err)
	}
	return raw, nil
}

const (
	ipProtoUDP = 17
	ipProtoGRE = 47
	// packetOutgoing is PACKET_OUTGOING (linux/if_packet.h).
	packetOutgoing = 4
)
