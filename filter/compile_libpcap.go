//go:build cgo && libpcap

package filter

/*
#cgo LDFLAGS: -lpcap
#include <stdlib.h>
#include <pcap/pcap.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
)

// Available reports whether this build can compile filters.
const Available = true

func compile(expr string, snapLen int) ([]bpf.RawInstruction, error) {
	p := C.pcap_open_dead(C.DLT_EN10MB, C.int(snapLen))
	if p == nil {
		return nil, fmt.Errorf("filter %q: pcap_open_dead failed", expr)
	}
	defer C.pcap_close(p)
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	if C.pcap_compile(p, &prog, cexpr, 1, C.PCAP_NETMASK_UNKNOWN) != 0 {
		return nil, fmt.Errorf("filter %q: %s", expr, C.GoString(C.pcap_geterr(p)))
	}
	defer C.pcap_freecode(&prog)
	insns := unsafe.Slice(prog.bf_insns, prog.bf_len)
	raw := make([]bpf.RawInstruction, len(insns))
	for i, in := range insns {
		raw[i] = bpf.RawInstruction{Op: uint16(in.code), Jt: uint8(in.jt), Jf: uint8(in.jf), K: uint32(in.k)}
	}
	return raw, nil
}
