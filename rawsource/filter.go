package rawsource

import (
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
)

// Filter builds the kernel filter for envelopes: IPv4 or IPv6 UDP to one of
// ports, GRE (ERSPAN, GRE-TAP), and whatever the filter cannot judge
// without walking headers (IPv4 fragments, IPv6 extension headers), which
// the decoder then sorts out. It never rejects a frame the decoder would
// take; it only keeps other traffic from being copied to user space.
//
// The frames it sees are untagged: the kernel strips VLAN tags into
// metadata before AF_PACKET's filter runs.
func Filter(ports []uint16) ([]bpf.RawInstruction, error) {
	ports = slices.Compact(slices.Sorted(slices.Values(ports)))
	const (
		accept = 0xFFFFFFFF
		reject = 0
	)
	// Classic BPF only jumps forward, by counts: the blocks are laid out
	// in order and each jump counts the instructions it skips.
	var p []bpf.Instruction
	portCheck := func() []bpf.Instruction {
		var c []bpf.Instruction
		for i, port := range ports {
			// Jump to accept (the last instruction after the checks) or
			// on to the next comparison; after the last, reject.
			toAccept := uint8(len(ports) - i)
			c = append(c, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: toAccept})
		}
		return append(c, bpf.RetConstant{Val: reject}, bpf.RetConstant{Val: accept})
	}
	// IPv6: next header at 20, UDP destination port at 14+40+2 = 56.
	ipv6 := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 20, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: 1},
		bpf.LoadAbsolute{Off: 56, Size: 2}, // falls into the port checks
	}
	ipv6Other := []bpf.Instruction{
		// GRE, and extension headers the decoder walks: hop-by-hop,
		// routing, fragment, destination options, authentication.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 47, SkipTrue: 6},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 5},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 43, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 44, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 60, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 51, SkipTrue: 1},
		bpf.RetConstant{Val: reject},
		bpf.RetConstant{Val: accept},
	}
	// IPv4: protocol at 23; fragments (offset or MF in 20..21) go up;
	// the UDP destination port is at 14 + IHL + 2.
	ipv4 := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 23, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 47, SkipTrue: 0, SkipFalse: 1},
		bpf.RetConstant{Val: accept},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: 5},
		bpf.LoadAbsolute{Off: 20, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3FFF, SkipFalse: 1},
		bpf.RetConstant{Val: accept},
		bpf.LoadMemShift{Off: 14},
		bpf.LoadIndirect{Off: 16, Size: 2},
		// falls into the port checks; the protocol miss lands past them
	}
	checks := portCheck()
	// Layout: ethertype dispatch | ipv4 (ends with its port checks) |
	// ipv4 miss: reject | ipv6 | ipv6 port checks | ipv6 other.
	ipv4Block := append(slices.Clone(ipv4), checks...)
	ipv4Block = append(ipv4Block, bpf.RetConstant{Val: reject}) // protocol neither GRE nor UDP
	// Fix ipv4's "not UDP" jump (index 3) to land on the final reject.
	ipv4Block[3] = bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: uint8(len(ipv4Block) - 1 - 4)}
	ipv6Block := append(slices.Clone(ipv6), checks...)
	// ipv6[1]'s miss must skip the load and the port checks to ipv6Other.
	ipv6Block[1] = bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: uint8(1 + len(checks))}
	ipv6Block = append(ipv6Block, ipv6Other...)
	// ipv6Other compares the next header, which the port load replaced
	// only on the UDP path; on the miss path A still holds it.
	p = append(p,
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: uint8(len(ipv4Block))},
	)
	p = append(p, ipv4Block...)
	p = append(p,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x86DD, SkipFalse: uint8(len(ipv6Block))},
	)
	p = append(p, ipv6Block...)
	p = append(p, bpf.RetConstant{Val: reject})
	raw, err := bpf.Assemble(p)
	if err != nil {
		return nil, fmt.Errorf("assemble the envelope filter: %w", err)
	}
	return raw, nil
}
