//go:build linux

package mirror

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// Registers of a translated classic program: A and X as the kernel's own
// converter keeps them (A in R0, where LD_ABS and LD_IND load; X in R7),
// the context in R6 (LD_ABS and LD_IND read the packet through it) and R8
// to keep A across the load of LDX MSH. The scratch words M[0..15] live on
// the stack below scratchBase.
const (
	regA        = asm.R0
	regX        = asm.R7
	regCtx      = asm.R6
	regSave     = asm.R8
	scratchBase = -128
	scratchLen  = 16
)

// classic opcode fields (linux/filter.h).
const (
	clsLD, clsLDX, clsST, clsSTX, clsALU, clsJMP, clsRET, clsMISC = 0, 1, 2, 3, 4, 5, 6, 7

	modeIMM, modeABS, modeIND, modeMEM, modeLEN, modeMSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0
	sizeW, sizeH, sizeB                                  = 0x00, 0x08, 0x10
	srcX                                                 = 0x08
	rvalA, rvalX                                         = 0x10, 0x08
	miscTXA                                              = 0x80
)

// translateFilter turns a classic (tcpdump) filter into eBPF instructions
// for a tc program whose context is in R6 and whose packet data starts at
// the Ethernet header, as a packet socket's filter sees it. A frame the
// filter accepts continues at the symbol accept, one it rejects at reject.
// Truncation (the accept length) is ignored: mirrors copy whole frames.
func translateFilter(prog []bpf.RawInstruction, accept, reject string) (asm.Instructions, error) {
	if len(prog) == 0 || len(prog) > 4096 {
		return nil, fmt.Errorf("filter has %d instructions", len(prog))
	}
	label := func(i int) string { return fmt.Sprintf("cbpf_%d", i) }
	insns := asm.Instructions{
		asm.Mov.Imm32(regA, 0),
		asm.Mov.Imm32(regX, 0),
	}
	for i := range scratchLen {
		insns = append(insns, asm.StoreImm(asm.RFP, int16(scratchBase+4*i), 0, asm.Word))
	}
	for i, ins := range prog {
		k := ins.K
		target := func(off uint32) (string, error) {
			t := i + 1 + int(off)
			if t >= len(prog) {
				return "", fmt.Errorf("instruction %d jumps past the end", i)
			}
			return label(t), nil
		}
		scratch := func() (int16, error) {
			if k >= scratchLen {
				return 0, fmt.Errorf("instruction %d: scratch word %d", i, k)
			}
			return int16(scratchBase + 4*int(k)), nil
		}
		var out asm.Instructions
		var err error
		code := ins.Op
		switch code & 7 {
		case clsLD, clsLDX:
			out, err = translateLoad(code, k, scratch)
		case clsST, clsSTX:
			off, serr := scratch()
			if serr != nil {
				return nil, serr
			}
			src := regA
			if code&7 == clsSTX {
				src = regX
			}
			out = asm.Instructions{asm.StoreMem(asm.RFP, off, src, asm.Word)}
		case clsALU:
			out, err = translateALU(code, k, reject)
		case clsJMP:
			op := code & 0xf0
			if op == 0 { // JA
				t, terr := target(k)
				if terr != nil {
					return nil, terr
				}
				out = asm.Instructions{asm.Ja.Label(t)}
				break
			}
			jt, terr := target(uint32(ins.Jt))
			if terr != nil {
				return nil, terr
			}
			jf, ferr := target(uint32(ins.Jf))
			if ferr != nil {
				return nil, ferr
			}
			var jop asm.JumpOp
			switch op {
			case 0x10:
				jop = asm.JEq
			case 0x20:
				jop = asm.JGT
			case 0x30:
				jop = asm.JGE
			case 0x40:
				jop = asm.JSet
			default:
				return nil, fmt.Errorf("instruction %d: unknown jump %#x", i, code)
			}
			if code&srcX != 0 {
				out = asm.Instructions{jop.Reg32(regA, regX, jt)}
			} else {
				out = asm.Instructions{jop.Imm32(regA, int32(k), jt)}
			}
			out = append(out, asm.Ja.Label(jf))
		case clsRET:
			switch code & 0x18 {
			case 0: // RET K
				if k == 0 {
					out = asm.Instructions{asm.Ja.Label(reject)}
				} else {
					out = asm.Instructions{asm.Ja.Label(accept)}
				}
			case rvalA:
				out = asm.Instructions{asm.JEq.Imm32(regA, 0, reject), asm.Ja.Label(accept)}
			case rvalX:
				out = asm.Instructions{asm.JEq.Imm32(regX, 0, reject), asm.Ja.Label(accept)}
			default:
				return nil, fmt.Errorf("instruction %d: unknown return %#x", i, code)
			}
		case clsMISC:
			if code&0xf8 == miscTXA {
				out = asm.Instructions{asm.Mov.Reg32(regA, regX)}
			} else {
				out = asm.Instructions{asm.Mov.Reg32(regX, regA)}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("instruction %d: %w", i, err)
		}
		out[0] = out[0].WithSymbol(label(i))
		insns = append(insns, out...)
	}
	return insns, nil
}

func translateLoad(code uint16, k uint32, scratch func() (int16, error)) (asm.Instructions, error) {
	dst := regA
	if code&7 == clsLDX {
		dst = regX
	}
	var size asm.Size
	switch code & 0x18 {
	case sizeW:
		size = asm.Word
	case sizeH:
		size = asm.Half
	case sizeB:
		size = asm.Byte
	default:
		return nil, fmt.Errorf("unknown load size %#x", code)
	}
	// Negative offsets are the kernel's ancillary data (SKF_AD_*), which
	// pcap_compile only emits for live Linux handles.
	if (code&0xe0 == modeABS || code&0xe0 == modeIND || code&0xe0 == modeMSH) && int32(k) < 0 {
		return nil, fmt.Errorf("ancillary load at %d", int32(k))
	}
	switch code & 0xe0 {
	case modeIMM:
		return asm.Instructions{asm.Mov.Imm32(dst, int32(k))}, nil
	case modeLEN:
		return asm.Instructions{asm.LoadMem(dst, regCtx, skbLen, asm.Word)}, nil
	case modeMEM:
		off, err := scratch()
		if err != nil {
			return nil, err
		}
		return asm.Instructions{asm.LoadMem(dst, asm.RFP, off, asm.Word)}, nil
	case modeABS:
		if dst != regA {
			return nil, fmt.Errorf("LDX ABS %#x", code)
		}
		return asm.Instructions{asm.LoadAbs(int32(k), size)}, nil
	case modeIND:
		if dst != regA {
			return nil, fmt.Errorf("LDX IND %#x", code)
		}
		return asm.Instructions{asm.LoadInd(regA, regX, int32(k), size)}, nil
	case modeMSH:
		// X = 4 * (P[k] & 0xf); the load goes through A, which is kept.
		return asm.Instructions{
			asm.Mov.Reg(regSave, regA),
			asm.LoadAbs(int32(k), asm.Byte),
			asm.And.Imm32(regA, 0xf),
			asm.LSh.Imm32(regA, 2),
			asm.Mov.Reg32(regX, regA),
			asm.Mov.Reg(regA, regSave),
		}, nil
	}
	return nil, fmt.Errorf("unknown load mode %#x", code)
}

// aluOps maps classic ALU operations (but NEG) to eBPF's.
var aluOps = map[uint16]asm.ALUOp{
	0x00: asm.Add, 0x10: asm.Sub, 0x20: asm.Mul, 0x30: asm.Div, 0x40: asm.Or,
	0x50: asm.And, 0x60: asm.LSh, 0x70: asm.RSh, 0x90: asm.Mod, 0xa0: asm.Xor,
}

func translateALU(code uint16, k uint32, reject string) (asm.Instructions, error) {
	if code&0xf0 == 0x80 {
		return asm.Instructions{asm.Neg.Imm32(regA, 0)}, nil
	}
	op, ok := aluOps[code&0xf0]
	if !ok {
		return nil, fmt.Errorf("unknown ALU operation %#x", code)
	}
	if code&srcX != 0 {
		if op == asm.Div || op == asm.Mod {
			// Classic BPF rejects the packet on division by zero; eBPF
			// would yield 0 and go on.
			return asm.Instructions{asm.JEq.Imm32(regX, 0, reject), op.Reg32(regA, regX)}, nil
		}
		return asm.Instructions{op.Reg32(regA, regX)}, nil
	}
	if (op == asm.Div || op == asm.Mod) && k == 0 {
		return nil, fmt.Errorf("division by constant zero")
	}
	if (op == asm.LSh || op == asm.RSh) && k >= 32 {
		return nil, fmt.Errorf("shift by %d", k)
	}
	return asm.Instructions{op.Imm32(regA, int32(k))}, nil
}
