// Package filter selects inner frames with tcpdump's filter expressions.
//
// Expressions are compiled by libpcap's own compiler, the reference for
// their meaning (no pure-Go compiler gets ip6, vlan or portrange right), and
// the program runs in user space on each decapsulated Ethernet frame. The
// compiler needs cgo and libpcap: build with -tags libpcap. Without it,
// Compile says so.
package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Filter is a compiled expression. It is not safe for concurrent use.
type Filter struct {
	expr string
	vm   *bpf.VM
}

// CompileRaw compiles expr for Ethernet frames of up to snapLen bytes into
// classic BPF, for a socket filter in the kernel.
func CompileRaw(expr string, snapLen int) ([]bpf.RawInstruction, error) {
	return compile(expr, snapLen)
}

// Compile compiles expr for Ethernet frames of up to snapLen bytes.
func Compile(expr string, snapLen int) (*Filter, error) {
	raw, err := compile(expr, snapLen)
	if err != nil {
		return nil, err
	}
	insts := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		insts[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		return nil, fmt.Errorf("filter %q: libpcap's program cannot run in user space: %w", expr, err)
	}
	return &Filter{expr: expr, vm: vm}, nil
}

// Match reports whether the filter accepts the Ethernet frame.
func (f *Filter) Match(frame []byte) bool {
	n, err := f.vm.Run(frame)
	return err == nil && n > 0
}

// String returns the expression.
func (f *Filter) String() string { return f.expr }
