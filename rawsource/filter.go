package rawsource

import (
	"fmt"
	"slices"

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
func Filter(ports []uint16) ([]bpf.RawInstruction, error) {
	ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	var p program
	p.add(bpf.LoadAbsolute{Off: 12, Size: 2}) // ethertype
	p.jumpIf(bpf.JumpEqual, 0x0800, "", "ipv6")

	// IPv4: protocol at 23; fragments (offset or MF in 20..21) go up;
	// the UDP destination port is at 14 + IHL + 2.
	p.add(bpf.LoadAbsolute{Off: 23, Size: 1})
	p.jumpIf(bpf.JumpEqual, ipProtoGRE, "accept", "")
	p.jumpIf(bpf.JumpEqual, ipProtoUDP, "", "reject")
	p.add(bpf.LoadAbsolute{Off: 20, Size: 2})
	p.jumpIf(bpf.JumpBitsSet, 0x3FFF, "accept", "")
	p.add(bpf.LoadMemShift{Off: 14}, bpf.LoadIndirect{Off: 16, Size: 2})
	p.jump("ports")

	// IPv6: next header at 20, UDP destination port at 14+40+2 = 56.
	p.label("ipv6")
	p.jumpIf(bpf.JumpEqual, 0x86DD, "", "reject")
	p.add(bpf.LoadAbsolute{Off: 20, Size: 1})
	p.jumpIf(bpf.JumpEqual, ipProtoUDP, "", "ipv6 other")
	p.add(bpf.LoadAbsolute{Off: 56, Size: 2})
	p.jump("ports")
	// GRE, and the extension headers the decoder walks: hop-by-hop,
	// routing, fragment, destination options, authentication.
	p.label("ipv6 other")
	for _, next := range []uint32{ipProtoGRE, 0, 43, 44, 60, 51} {
		p.jumpIf(bpf.JumpEqual, next, "accept", "")
	}
	p.jump("reject")

	// A holds the UDP destination port.
	p.label("ports")
	for _, port := range ports {
		p.jumpIf(bpf.JumpEqual, uint32(port), "accept", "")
	}
	p.label("reject")
	p.add(bpf.RetConstant{Val: 0})
	p.label("accept")
	p.add(bpf.RetConstant{Val: 0xFFFFFFFF})

	raw, err := p.assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble the envelope filter: %w", err)
	}
	return raw, nil
}

const (
	ipProtoUDP = 17
	ipProtoGRE = 47
)

// program is classic BPF with named jump targets. Classic BPF jumps only
// forward, by a count of instructions skipped (8 bits for conditional
// jumps); assemble counts them, so no offset is written by hand.
type program struct {
	insts  []bpf.Instruction
	labels map[string]int
	jumps  []jump
}

// jump is a jump whose targets are labels ("" is the next instruction).
type jump struct {
	at            int
	ifTrue, ifNot string
}

func (p *program) add(insts ...bpf.Instruction) { p.insts = append(p.insts, insts...) }

// label names the next instruction.
func (p *program) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.insts)
}

// jumpIf compares A with val and goes on at ifTrue or ifNot.
func (p *program) jumpIf(cond bpf.JumpTest, val uint32, ifTrue, ifNot string) {
	p.jumps = append(p.jumps, jump{at: len(p.insts), ifTrue: ifTrue, ifNot: ifNot})
	p.add(bpf.JumpIf{Cond: cond, Val: val})
}

// jump goes on at to.
func (p *program) jump(to string) {
	p.jumps = append(p.jumps, jump{at: len(p.insts), ifTrue: to})
	p.add(bpf.Jump{})
}

// assemble resolves the jumps and assembles the program.
func (p *program) assemble() ([]bpf.RawInstruction, error) {
	skip := func(j jump, to string) (uint32, error) {
		if to == "" {
			return 0, nil
		}
		target, ok := p.labels[to]
		if !ok {
			return 0, fmt.Errorf("instruction %d jumps to %q, which is not defined", j.at, to)
		}
		if target <= j.at {
			return 0, fmt.Errorf("instruction %d jumps back to %q", j.at, to)
		}
		return uint32(target - j.at - 1), nil
	}
	for _, j := range p.jumps {
		t, err := skip(j, j.ifTrue)
		if err != nil {
			return nil, err
		}
		f, err := skip(j, j.ifNot)
		if err != nil {
			return nil, err
		}
		switch in := p.insts[j.at].(type) {
		case bpf.Jump:
			in.Skip = t
			p.insts[j.at] = in
		case bpf.JumpIf:
			if t > 255 || f > 255 {
				return nil, fmt.Errorf("instruction %d: a conditional jump of more than 255 instructions", j.at)
			}
			in.SkipTrue, in.SkipFalse = uint8(t), uint8(f)
			p.insts[j.at] = in
		}
	}
	return bpf.Assemble(p.insts)
}
