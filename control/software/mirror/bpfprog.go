//go:build linux

package mirror

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/dpcap/dpcap/decap"
	"golang.org/x/net/bpf"
)

// Field offsets in struct __sk_buff (linux/bpf.h).
const (
	skbLen            = 0
	skbMark           = 8
	skbIngressIfindex = 36
	skbData           = 76
	skbDataEnd        = 80
)

// Return codes of tc programs (TC_ACT_*, and TCX_* for the same values).
const (
	actNext = -1 // the next program, or the stack
	actOK   = 0
	actShot = 2
)

// Counter slots of a port's per-CPU counter array.
const (
	slotMirrored = iota // clones handed to the underlay
	slotFailed          // clones the underlay program or device refused
	numSlots
)

// cfgSize is the size of the underlay program's configuration: the
// envelope with the fixed fields filled in, padded to 8 bytes.
const cfgSize = (decap.EnvelopeLen + 7) &^ 7

// markShift puts a port's mark (its magic) above the 20-bit tag in
// skb->mark while the clone travels from the port to the underlay.
const markShift = 20

// portProgram is the program on the port's ingress: it runs filter (if
// any), and clones each matching frame to the underlay's egress, carrying
// mark (magic<<20 | tag) for the underlay program to find. The frame
// itself goes on unchanged.
func portProgram(filter []bpf.RawInstruction, underlay int, mark uint32, counters *ebpf.Map) (asm.Instructions, error) {
	insns := asm.Instructions{asm.Mov.Reg(regCtx, asm.R1)}
	if len(filter) > 0 {
		f, err := translateFilter(filter, "mirror", "pass")
		if err != nil {
			return nil, err
		}
		insns = append(insns, f...)
	}
	insns = append(insns,
		asm.LoadMem(asm.R7, regCtx, skbMark, asm.Word).WithSymbol("mirror"),
		asm.Mov.Imm32(asm.R1, int32(mark)),
		asm.StoreMem(regCtx, skbMark, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R1, regCtx),
		asm.Mov.Imm(asm.R2, int32(underlay)),
		asm.Mov.Imm(asm.R3, 0), // to the egress
		asm.FnCloneRedirect.Call(),
		asm.StoreMem(regCtx, skbMark, asm.R7, asm.Word),
		asm.StoreImm(asm.RFP, -4, slotMirrored, asm.Word),
		asm.JEq.Imm(asm.R0, 0, "count"),
		asm.StoreImm(asm.RFP, -4, slotFailed, asm.Word),
	)
	insns = append(insns, count(counters, "count")...)
	return append(insns,
		asm.Mov.Imm(asm.R0, actNext).WithSymbol("pass"),
		asm.Return(),
	), nil
}

// count adds one to the counter whose slot is on the stack at -4; its
// first instruction carries symbol.
func count(counters *ebpf.Map, symbol string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, counters.FD()).WithSymbol(symbol),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, symbol+"_done"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(symbol + "_done"),
	}
}

// underlayProgram is the program on the underlay's egress: a clone that
// carries mark from port becomes an envelope (the template from config,
// which user space keeps up to date with the next hop's MAC address; the
// tag in the flow label; the lengths of this frame) and leaves; anything
// else passes untouched. A clone that
// cannot be wrapped is dropped, which the port program counts as failed.
func underlayProgram(port int, mark uint32, maxFrame int, config *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(regCtx, asm.R1),
		asm.LoadMem(asm.R1, regCtx, skbMark, asm.Word),
		asm.Mov.Reg32(asm.R2, asm.R1),
		asm.RSh.Imm32(asm.R2, markShift),
		asm.JNE.Imm32(asm.R2, int32(mark>>markShift), "next"),
		asm.LoadMem(asm.R2, regCtx, skbIngressIfindex, asm.Word),
		asm.JNE.Imm32(asm.R2, int32(port), "next"),
		asm.And.Imm32(asm.R1, 1<<markShift-1),
		asm.Mov.Reg32(asm.R7, asm.R1), // the tag
		asm.Mov.Imm32(asm.R1, 0),
		asm.StoreMem(regCtx, skbMark, asm.R1, asm.Word),
		asm.LoadMem(asm.R8, regCtx, skbLen, asm.Word), // the frame's length
		asm.JGT.Imm(asm.R8, int32(maxFrame), "drop"),
		// Room for the envelope in front of the frame.
		asm.Mov.Reg(asm.R1, regCtx),
		asm.Mov.Imm(asm.R2, decap.EnvelopeLen),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnSkbChangeHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, config.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.Mov.Reg(asm.R1, regCtx),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.R9),
		asm.Mov.Imm(asm.R4, decap.EnvelopeLen),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "drop"),
		// Direct writes: the head is private since skb_change_head.
		asm.LoadMem(asm.R2, regCtx, skbData, asm.Word),
		asm.LoadMem(asm.R3, regCtx, skbDataEnd, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R2),
		asm.Add.Imm(asm.R1, decap.EnvelopeLen),
		asm.JGT.Reg(asm.R1, asm.R3, "drop"),
		// Version 6, traffic class 0, the tag as flow label.
		asm.Or.Imm32(asm.R7, 0x60000000),
		asm.HostTo(asm.BE, asm.R7, asm.Word),
		asm.StoreMem(asm.R2, decap.EnvelopeIPv6, asm.R7, asm.Word),
		// IPv6 payload length = UDP length = 8 + the frame.
		asm.Add.Imm(asm.R8, decap.UDPHeaderLen),
		asm.HostTo(asm.BE, asm.R8, asm.Half),
		asm.StoreMem(asm.R2, decap.EnvelopePayloadLength, asm.R8, asm.Half),
		asm.StoreMem(asm.R2, decap.EnvelopeUDPLength, asm.R8, asm.Half),
		asm.Mov.Imm(asm.R0, actOK),
		asm.Return(),
		asm.Mov.Imm(asm.R0, actShot).WithSymbol("drop"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, actNext).WithSymbol("next"),
		asm.Return(),
	}
}
