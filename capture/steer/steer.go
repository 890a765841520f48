// Package steer builds the classic BPF programs that spread envelopes over
// sinkd's receive sockets (sinkd --workers) by the flow of the frame inside
// them, so that the copies of one flow always reach the same socket, in
// order.
//
// Envelopes from one hypervisor share their outer addresses and ports, so
// the kernel's own hash would put all of them on one socket. These programs
// hash the inner frame instead: for IPv4 and IPv6, the addresses and the
// protocol, and the ports of TCP, UDP and SCTP packets that are not IPv4
// fragments (every fragment of a datagram is hashed by its addresses, as
// NICs' RSS does); for other frames, the MAC addresses. Up to two VLAN tags
// are skipped. Each end (its address and port) is hashed and the two ends
// are combined with XOR, so both directions of a conversation land on the
// same socket, and addresses and ports that count up together (a test
// generator's flows) still spread. A frame too short
// for a load ends the program with 0: the first socket.
package steer

import (
	"fmt"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/cbpf"
	"golang.org/x/net/bpf"
)

// NetOff is the base of classic BPF loads relative to the network header
// (the kernel's SKF_NET_OFF, -0x100000): where the data pointer is when a
// fanout program runs differs between received and sent frames, the network
// header does not.
const NetOff uint32 = 0xFFF00000

// MaxSockets is the largest group a program steers.
const MaxSockets = 1024

// Scratch memory: the hash being built, the offset of the inner frame, a
// temporary, the two ports (multiplied out), one endpoint's hash and a
// running XOR of address words.
const (
	mHash  = 0
	mBase  = 1
	mTmp   = 2
	mSport = 3
	mDport = 4
	mSide  = 5
	mAcc   = 6
)

// Multipliers: mixMul spreads a word's bits (a multiplicative hash),
// portMul a port's over the word it is combined with, so that addresses
// and ports that count up together do not cancel out.
const (
	mixMul  = 0x45D9F3B
	portMul = 0x9E3779B1
)

// IP protocols whose ports are hashed.
var portProtocols = []uint32{6, 17, 132}

// Reuseport returns the program for a SO_REUSEPORT group of n UDP sockets
// (SO_ATTACH_REUSEPORT_CBPF). The kernel runs it with the packet's data
// starting at the UDP payload, which for the NIC's envelope is the inner
// Ethernet frame, and takes its result as the index of the socket, in the
// order the sockets were bound.
func Reuseport(n int) ([]bpf.RawInstruction, error) {
	if n < 1 || n > MaxSockets {
		return nil, fmt.Errorf("steer %d sockets: want 1-%d", n, MaxSockets)
	}
	var p cbpf.Program
	p.Add(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	inner(&p, n)
	return assemble(&p)
}

// Fanout returns the program for a PACKET_FANOUT_CBPF group of n AF_PACKET
// sockets, which sees the whole outer frame (the kernel takes the result
// modulo n). A NIC envelope (IPv6 or unfragmented IPv4, UDP to one of
// nicPorts) is steered by its inner frame, as Reuseport does; any other IP packet (the
// other envelope kinds, whose headers vary in length, and every outer
// fragment, of which only the first holds the UDP header) by its outer
// addresses, so one sender's envelopes of those kinds stay on one socket,
// in order, and the worker reassembling a datagram gets all its
// fragments (the IP ID is left out on purpose: one sender's reassembled
// envelopes stay in order too); anything else goes to the first socket. netOff is where loads
// find the outer IP header: NetOff in the kernel, 14 to run the program on
// whole untagged Ethernet frames in a user-space VM. Without nicPorts (the
// NIC kind turned off) every IP packet goes by its outer addresses.
func Fanout(n int, nicPorts []uint16, netOff uint32) ([]bpf.RawInstruction, error) {
	if n < 1 || n > MaxSockets {
		return nil, fmt.Errorf("steer %d sockets: want 1-%d", n, MaxSockets)
	}
	var p cbpf.Program
	p.Add(bpf.LoadAbsolute{Off: netOff, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4})
	p.JumpIf(bpf.JumpEqual, 6, "outer6", "")
	p.JumpIf(bpf.JumpEqual, 4, "outer4", "first")

	// IPv6: next header at 6, UDP destination port at 40+2, inner frame at 48.
	p.Label("outer6")
	p.Add(bpf.LoadAbsolute{Off: netOff + 6, Size: 1})
	p.JumpIf(bpf.JumpEqual, 17, "", "by outer6")
	p.Add(bpf.LoadAbsolute{Off: netOff + 42, Size: 2})
	jumpIfNone(&p, nicPorts, "by outer6")
	p.Add(bpf.LoadConstant{Dst: bpf.RegX, Val: netOff + 48})
	p.Jump("inner")
	p.Label("by outer6")
	p.Add(bpf.LoadConstant{Dst: bpf.RegX, Val: netOff})
	start(&p)
	for w := uint32(0); w < 8; w++ {
		mixIn(&p, bpf.LoadIndirect{Off: 8 + 4*w, Size: 4})
	}
	p.Jump("mix")

	// IPv4: protocol at 9, fragment bits at 6, UDP at 4*IHL.
	p.Label("outer4")
	p.Add(bpf.LoadAbsolute{Off: netOff + 9, Size: 1})
	p.JumpIf(bpf.JumpEqual, 17, "", "by outer4")
	p.Add(bpf.LoadAbsolute{Off: netOff + 6, Size: 2})
	p.JumpIf(bpf.JumpBitsSet, 0x3FFF, "by outer4", "")
	p.Add(bpf.LoadMemShift{Off: netOff}, bpf.LoadIndirect{Off: netOff + 2, Size: 2})
	jumpIfNone(&p, nicPorts, "by outer4")
	p.Add(bpf.TXA{}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: netOff + 8}, bpf.TAX{})
	p.Jump("inner")
	p.Label("by outer4")
	p.Add(bpf.LoadConstant{Dst: bpf.RegX, Val: netOff})
	start(&p)
	mixIn(&p, bpf.LoadIndirect{Off: 12, Size: 4})
	mixIn(&p, bpf.LoadIndirect{Off: 16, Size: 4})
	p.Jump("mix")

	p.Label("first")
	p.Add(bpf.RetConstant{Val: 0})

	p.Label("inner")
	inner(&p, n)
	return assemble(&p)
}

// inner hashes the Ethernet frame at X and returns the hash modulo n. It
// defines the label "mix", which hashes M[mHash] and returns.
func inner(p *cbpf.Program, n int) {
	start(p)
	p.Add(bpf.LoadIndirect{Off: 12, Size: 2}) // ethertype
	// decap.SkipVLANs walks the tags everywhere else; a fanout program
	// runs in the kernel and cannot call Go, so it unrolls the walk with
	// decap's tag identifiers, two tags deep (classic BPF has no loops).
	for i := range 2 {
		tag := fmt.Sprintf("tag %d", i)
		p.JumpIf(bpf.JumpEqual, decap.EtherTypeVLAN, tag, "")
		p.JumpIf(bpf.JumpEqual, decap.EtherTypeQinQ, tag, "l3")
		p.Label(tag)
		// Move the frame's start by the tag, so the offsets below hold.
		p.Add(bpf.TXA{}, bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: decap.VLANTagLen}, bpf.TAX{},
			bpf.StoreScratch{Src: bpf.RegA, N: mBase}, bpf.LoadIndirect{Off: 12, Size: 2})
	}
	p.Label("l3")
	p.JumpIf(bpf.JumpEqual, 0x0800, "ip4", "")
	p.JumpIf(bpf.JumpEqual, 0x86DD, "ip6", "")
	for _, off := range []uint32{0, 6} {
		mixIn(p, bpf.LoadIndirect{Off: off, Size: 4})
		mixIn(p, bpf.LoadIndirect{Off: off + 4, Size: 2})
	}
	p.Jump("mix")

	// IPv4 at 14: protocol at 23, fragment bits at 20, addresses at 26 and
	// 30, ports at 14 + 4*IHL.
	p.Label("ip4")
	noPorts(p)
	p.Add(bpf.LoadIndirect{Off: 20, Size: 2})
	p.JumpIf(bpf.JumpBitsSet, 0x3FFF, "ip4 addresses", "")
	p.Add(bpf.LoadIndirect{Off: 23, Size: 1})
	portsTo(p, "ports4", "ip4 addresses")
	p.Label("ports4")
	p.Add(bpf.LoadIndirect{Off: 14, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xF}, bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
		bpf.ALUOpX{Op: bpf.ALUOpAdd}, bpf.TAX{})
	ports(p, 14)
	p.Label("ip4 addresses")
	endpoints(p, []uint32{26}, []uint32{30}, 23)

	// IPv6 at 14: next header at 20, addresses at 22-53, ports at 54.
	p.Label("ip6")
	noPorts(p)
	p.Add(bpf.LoadIndirect{Off: 20, Size: 1})
	portsTo(p, "ports6", "ip6 addresses")
	p.Label("ports6")
	ports(p, 54)
	p.Label("ip6 addresses")
	endpoints(p, []uint32{22, 26, 30, 34}, []uint32{38, 42, 46, 50}, 20)

	// Spread the bits (a multiplicative hash), then pick the socket.
	p.Label("mix")
	p.Add(bpf.LoadScratch{Dst: bpf.RegA, N: mHash})
	mixA(p)
	p.Add(bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)}, bpf.RetA{})
}

// mixA spreads A's bits (xorshift, multiply, xorshift); it clobbers X.
func mixA(p *cbpf.Program) {
	p.Add(bpf.StoreScratch{Src: bpf.RegA, N: mTmp}, bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 16},
		bpf.LoadScratch{Dst: bpf.RegX, N: mTmp}, bpf.ALUOpX{Op: bpf.ALUOpXor},
		bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: mixMul},
		bpf.StoreScratch{Src: bpf.RegA, N: mTmp}, bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 16},
		bpf.LoadScratch{Dst: bpf.RegX, N: mTmp}, bpf.ALUOpX{Op: bpf.ALUOpXor})
}

// jumpIfNone jumps to none unless A holds one of ports.
func jumpIfNone(p *cbpf.Program, ports []uint16, none string) {
	match := "nic port, else " + none
	for _, port := range ports {
		p.JumpIf(bpf.JumpEqual, uint32(port), match, "")
	}
	p.Jump(none)
	p.Label(match)
}

// noPorts sets both ports to 0: fragments and protocols without ports.
func noPorts(p *cbpf.Program) {
	p.Add(bpf.LoadConstant{Dst: bpf.RegA, Val: 0},
		bpf.StoreScratch{Src: bpf.RegA, N: mSport}, bpf.StoreScratch{Src: bpf.RegA, N: mDport})
}

// ports keeps the source and destination ports at X+off, multiplied out,
// and puts X back at the frame's start.
func ports(p *cbpf.Program, off uint32) {
	p.Add(bpf.LoadIndirect{Off: off, Size: 2}, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: portMul},
		bpf.StoreScratch{Src: bpf.RegA, N: mSport},
		bpf.LoadIndirect{Off: off + 2, Size: 2}, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: portMul},
		bpf.StoreScratch{Src: bpf.RegA, N: mDport}, bpf.LoadScratch{Dst: bpf.RegX, N: mBase})
}

// endpoints hashes each end (its address words XOR its port, mixed), XORs
// the two, so both directions agree, adds the protocol byte at proto and
// goes on at "mix".
func endpoints(p *cbpf.Program, src, dst []uint32, proto uint32) {
	endpoint(p, src, mSport)
	p.Add(bpf.StoreScratch{Src: bpf.RegA, N: mSide})
	endpoint(p, dst, mDport)
	p.Add(bpf.LoadScratch{Dst: bpf.RegX, N: mSide}, bpf.ALUOpX{Op: bpf.ALUOpXor},
		bpf.StoreScratch{Src: bpf.RegA, N: mHash}, bpf.LoadScratch{Dst: bpf.RegX, N: mBase})
	mixIn(p, bpf.LoadIndirect{Off: proto, Size: 1})
	p.Jump("mix")
}

// endpoint leaves in A the mixed XOR of the address words at X+offs and
// the port in scratch port; X is back at the frame's start.
func endpoint(p *cbpf.Program, offs []uint32, port uint32) {
	p.Add(bpf.LoadIndirect{Off: offs[0], Size: 4})
	for _, off := range offs[1:] {
		p.Add(bpf.StoreScratch{Src: bpf.RegA, N: mAcc}, bpf.LoadIndirect{Off: off, Size: 4},
			bpf.LoadScratch{Dst: bpf.RegX, N: mAcc}, bpf.ALUOpX{Op: bpf.ALUOpXor}, bpf.LoadScratch{Dst: bpf.RegX, N: mBase})
	}
	p.Add(bpf.LoadScratch{Dst: bpf.RegX, N: int(port)}, bpf.ALUOpX{Op: bpf.ALUOpXor})
	mixA(p)
	p.Add(bpf.LoadScratch{Dst: bpf.RegX, N: mBase})
}

// start begins a hash of the frame (or header) at X.
func start(p *cbpf.Program) {
	p.Add(bpf.TXA{}, bpf.StoreScratch{Src: bpf.RegA, N: mBase},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.StoreScratch{Src: bpf.RegA, N: mHash})
}

// mixIn XORs what load loads into the hash, keeping X at the frame's start.
func mixIn(p *cbpf.Program, load bpf.Instruction) {
	p.Add(load, bpf.LoadScratch{Dst: bpf.RegX, N: mHash}, bpf.ALUOpX{Op: bpf.ALUOpXor},
		bpf.StoreScratch{Src: bpf.RegA, N: mHash}, bpf.LoadScratch{Dst: bpf.RegX, N: mBase})
}

// portsTo goes on at label when A holds a protocol with ports, else at
// other.
func portsTo(p *cbpf.Program, label, other string) {
	for i, proto := range portProtocols {
		not := ""
		if i == len(portProtocols)-1 {
			not = other
		}
		p.JumpIf(bpf.JumpEqual, proto, label, not)
	}
}

func assemble(p *cbpf.Program) ([]bpf.RawInstruction, error) {
	raw, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the steering program: %w", err)
	}
	return raw, nil
}
