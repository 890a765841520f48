//go:build linux

package mirror

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// ipFrame builds an Ethernet frame: IPv4 (ihl words of header) with proto,
// then ports, or IPv6 when v6.
func ipFrame(v6 bool, proto byte, ihl int, sport, dport uint16) []byte {
	b := make([]byte, 14, 128)
	copy(b[0:12], []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2})
	if v6 {
		binary.BigEndian.PutUint16(b[12:], 0x86DD)
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, proto, 64
		b = append(b, ip...)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, ihl*4)
		ip[0], ip[8], ip[9] = 0x40|byte(ihl), 64, proto
		b = append(b, ip...)
	}
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	return append(b, l4...)
}

// TestTranslateFilterAgreesWithClassic runs classic programs in x/net/bpf's
// interpreter and, translated, in the kernel (BPF_PROG_TEST_RUN) on the
// same frames: both must accept the same ones.
func TestTranslateFilterAgreesWithClassic(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	programs := map[string][]bpf.Instruction{
		// ip and tcp dst port 443, through the IPv4 header length (LDX MSH, LD IND).
		"ipv4 tcp dst port 443": {
			bpf.LoadAbsolute{Off: 12, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 6},
			bpf.LoadAbsolute{Off: 23, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 4},
			bpf.LoadMemShift{Off: 14},
			bpf.LoadIndirect{Off: 16, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 443, SkipFalse: 1},
			bpf.RetConstant{Val: 65535},
			bpf.RetConstant{Val: 0},
		},
		// ip6 and (udp or frame longer than 100): JGT, LEN, scratch, ALU, RET A.
		"ip6 udp or long": {
			bpf.LoadAbsolute{Off: 12, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x86DD, SkipFalse: 9},
			bpf.LoadAbsolute{Off: 20, Size: 1},
			bpf.StoreScratch{Src: bpf.RegA, N: 3},
			bpf.LoadExtension{Num: bpf.ExtLen},
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: 100, SkipTrue: 3},
			bpf.LoadScratch{Dst: bpf.RegA, N: 3},
			bpf.ALUOpConstant{Op: bpf.ALUOpXor, Val: 17},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipFalse: 2},
			bpf.LoadConstant{Dst: bpf.RegA, Val: 1500},
			bpf.RetA{},
			bpf.RetConstant{Val: 0},
		},
		// dst port & 0xff00 == 0x1f00 and sport / 2 > 100 via X: JSET, DIV by X, TAX, TXA.
		"jset and division": {
			bpf.LoadAbsolute{Off: 12, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 9},
			bpf.LoadAbsolute{Off: 36, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x0100, SkipFalse: 7},
			bpf.LoadConstant{Dst: bpf.RegX, Val: 2},
			bpf.LoadAbsolute{Off: 34, Size: 2},
			bpf.ALUOpX{Op: bpf.ALUOpDiv},
			bpf.TAX{},
			bpf.TXA{},
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 100, SkipFalse: 1},
			bpf.RetConstant{Val: 1},
			bpf.RetConstant{Val: 0},
		},
		// A load past the end rejects, as in classic BPF.
		"out of bounds": {
			bpf.LoadAbsolute{Off: 1000, Size: 4},
			bpf.RetConstant{Val: 1},
		},
	}
	frames := [][]byte{
		ipFrame(false, 6, 5, 1000, 443),
		ipFrame(false, 6, 6, 1000, 443),
		ipFrame(false, 6, 5, 443, 80),
		ipFrame(false, 17, 5, 1000, 443),
		ipFrame(false, 17, 5, 400, 0x1f01),
		ipFrame(false, 17, 5, 100, 0x1f01),
		ipFrame(true, 17, 0, 1, 2),
		ipFrame(true, 6, 0, 1, 2),
		append(ipFrame(true, 6, 0, 1, 2), make([]byte, 100)...),
	}
	for name, prog := range programs {
		raw, err := bpf.Assemble(prog)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		insns := asm.Instructions{asm.Mov.Reg(regCtx, asm.R1)}
		f, err := translateFilter(raw, "accept", "reject")
		if err != nil {
			t.Fatalf("%s: translate: %v", name, err)
		}
		insns = append(insns, f...)
		// (The conditional jump keeps reject reachable for the verifier
		// when a filter never rejects.)
		insns = append(insns,
			asm.Mov.Imm(asm.R0, 1).WithSymbol("accept"), asm.JNE.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("reject"),
			asm.Return().WithSymbol("out"))
		kp, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: insns, License: "Dual MIT/GPL"})
		if errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("BPF: %v", err)
		}
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		for i, fr := range frames {
			want, err := vm.Run(fr)
			if err != nil {
				t.Fatalf("%s: classic: %v", name, err)
			}
			got, err := kp.Run(&ebpf.RunOptions{Data: fr})
			if err != nil {
				t.Fatalf("%s: test run: %v", name, err)
			}
			if (want != 0) != (got != 0) {
				t.Errorf("%s, frame %d: classic accepts=%v, translated accepts=%v", name, i, want != 0, got != 0)
			}
		}
		kp.Close()
	}
}

// TestTranslateFilterRefuses: what the kernel mirror cannot run is an
// error (the backend then falls back to AF_PACKET), never a wrong match.
func TestTranslateFilterRefuses(t *testing.T) {
	for name, prog := range map[string][]bpf.RawInstruction{
		"empty":           nil,
		"ancillary load":  {{Op: 0x20, K: 0xfffff000}, {Op: 0x06, K: 1}},
		"jump past end":   {{Op: 0x05, K: 5}, {Op: 0x06, K: 1}},
		"scratch word 16": {{Op: 0x02, K: 16}, {Op: 0x06, K: 1}},
		"divide by zero":  {{Op: 0x34, K: 0}, {Op: 0x06, K: 1}},
	} {
		if _, err := translateFilter(prog, "a", "r"); err == nil {
			t.Errorf("%s: translated without error", name)
		}
	}
}
