package cbpf

import (
	"testing"

	"golang.org/x/net/bpf"
)

// TestProgramCountsJumps checks the assembler: jumps land on
// their labels, and a jump it cannot encode is an error, not a program
// that jumps elsewhere.
func TestProgramCountsJumps(t *testing.T) {
	var p Program
	p.Add(bpf.LoadAbsolute{Off: 0, Size: 1})
	p.JumpIf(bpf.JumpEqual, 1, "one", "")
	p.Jump("other")
	p.Label("one")
	p.Add(bpf.RetConstant{Val: 1})
	p.Label("other")
	p.Add(bpf.RetConstant{Val: 2})
	raw, err := p.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	insts, _ := bpf.Disassemble(raw)
	v, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	for first, want := range map[byte]int{1: 1, 7: 2} {
		if n, err := v.Run([]byte{first}); n != want || err != nil {
			t.Errorf("first byte %d: returned %d (%v), want %d", first, n, err, want)
		}
	}

	var far Program
	far.JumpIf(bpf.JumpEqual, 1, "end", "")
	for range 256 {
		far.Add(bpf.LoadConstant{Val: 0})
	}
	far.Label("end")
	far.Add(bpf.RetA{})
	for name, bad := range map[string]*Program{"undefined": {}, "backwards": {}, "too far": &far} {
		switch name {
		case "undefined":
			bad.Jump("nowhere")
		case "backwards":
			bad.Label("top")
			bad.Add(bpf.LoadConstant{Val: 0})
			bad.Jump("top")
		}
		bad.Add(bpf.RetA{})
		if _, err := bad.Assemble(); err == nil {
			t.Errorf("%s: a jump it cannot encode assembled", name)
		}
	}
}
