// Package cbpf writes classic BPF programs with named jump targets.
package cbpf

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Program is classic BPF with named jump targets. Classic BPF jumps only
// forward, by a count of instructions skipped (8 bits for conditional
// jumps); Assemble counts them, so no offset is written by hand.
type Program struct {
	insts  []bpf.Instruction
	labels map[string]int
	jumps  []jump
}

// jump is a jump whose targets are labels ("" is the next instruction).
type jump struct {
	at            int
	ifTrue, ifNot string
}

// Add appends instructions.
func (p *Program) Add(insts ...bpf.Instruction) { p.insts = append(p.insts, insts...) }

// Label names the next instruction.
func (p *Program) Label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.insts)
}

// JumpIf compares A with val and goes on at ifTrue or ifNot.
func (p *Program) JumpIf(cond bpf.JumpTest, val uint32, ifTrue, ifNot string) {
	p.jumps = append(p.jumps, jump{at: len(p.insts), ifTrue: ifTrue, ifNot: ifNot})
	p.Add(bpf.JumpIf{Cond: cond, Val: val})
}

// Jump goes on at to.
func (p *Program) Jump(to string) {
	p.jumps = append(p.jumps, jump{at: len(p.insts), ifTrue: to})
	p.Add(bpf.Jump{})
}

// Assemble resolves the jumps and assembles the program.
func (p *Program) Assemble() ([]bpf.RawInstruction, error) {
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
