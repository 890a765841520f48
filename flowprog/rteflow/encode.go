//go:build dpdk

package rteflow

/*
#cgo pkg-config: libdpdk
#include "rteflow.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/dpcap/dpcap/flowprog"
)

// encoded is one rule in C memory: what rte_flow_validate and
// rte_flow_create read. It is freed with free, after the rule is gone.
type encoded struct {
	attr    *C.struct_rte_flow_attr
	itemsP  *C.struct_rte_flow_item
	actions *C.struct_rte_flow_action
	// what each item and action of the top level is, for error messages
	itemNames, actionNames []string
	frees                  []unsafe.Pointer
	encaps                 []unsafe.Pointer
}

func (e *encoded) alloc(n int) unsafe.Pointer {
	p := C.calloc(1, C.size_t(n))
	e.frees = append(e.frees, p)
	return p
}

func (e *encoded) keep(p unsafe.Pointer) unsafe.Pointer {
	e.frees = append(e.frees, p)
	return p
}

func (e *encoded) free() {
	for _, p := range e.encaps {
		C.dp_raw_encap_free(p)
	}
	for _, p := range e.frees {
		C.free(p)
	}
	e.frees, e.encaps = nil, nil
}

// encode builds r in C memory. ports maps port names (PORT_ID targets) to
// DPDK port ids.
func encode(r flowprog.Rule, ports map[string]uint16) (*encoded, error) {
	e := &encoded{}
	e.attr = (*C.struct_rte_flow_attr)(e.alloc(C.sizeof_struct_rte_flow_attr))
	C.dp_attr(e.attr, C.uint32_t(r.Attr.Group), C.uint32_t(r.Attr.Priority), cbool(r.Attr.Ingress), cbool(r.Attr.Transfer))

	n := len(r.Pattern) + 1
	e.itemsP = (*C.struct_rte_flow_item)(e.alloc(n * C.sizeof_struct_rte_flow_item))
	items := unsafe.Slice(e.itemsP, n)
	for i, it := range r.Pattern {
		spec, mask, typ, err := e.item(it)
		if err != nil {
			e.free()
			return nil, err
		}
		items[i]._type = typ
		items[i].spec, items[i].mask = spec, mask
		e.itemNames = append(e.itemNames, string(it.Type))
	}
	items[n-1]._type = C.RTE_FLOW_ITEM_TYPE_END

	var err error
	if e.actions, err = e.actionList(r.Actions, ports, true); err != nil {
		e.free()
		return nil, err
	}
	return e, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (e *encoded) item(it flowprog.Item) (spec, mask unsafe.Pointer, typ C.enum_rte_flow_item_type, err error) {
	switch it.Type {
	case flowprog.ItemETH:
		return nil, nil, C.RTE_FLOW_ITEM_TYPE_ETH, nil // any Ethernet frame
	case flowprog.ItemIPv4:
		s, sm := be32(it.Src)
		d, dm := be32(it.Dst)
		pm := protoMask(it.Proto)
		return e.keep(C.dp_ipv4(C.uint32_t(s), C.uint32_t(d), C.uint8_t(it.Proto))),
			e.keep(C.dp_ipv4(C.uint32_t(sm), C.uint32_t(dm), C.uint8_t(pm))), C.RTE_FLOW_ITEM_TYPE_IPV4, nil
	case flowprog.ItemIPv6:
		s, sm := bytes16(it.Src)
		d, dm := bytes16(it.Dst)
		pm := protoMask(it.Proto)
		return e.keep(C.dp_ipv6((*C.uint8_t)(&s[0]), (*C.uint8_t)(&d[0]), C.uint8_t(it.Proto))),
			e.keep(C.dp_ipv6((*C.uint8_t)(&sm[0]), (*C.uint8_t)(&dm[0]), C.uint8_t(pm))), C.RTE_FLOW_ITEM_TYPE_IPV6, nil
	case flowprog.ItemTCP, flowprog.ItemUDP:
		tcp := cbool(it.Type == flowprog.ItemTCP)
		typ = C.RTE_FLOW_ITEM_TYPE_UDP
		if tcp == 1 {
			typ = C.RTE_FLOW_ITEM_TYPE_TCP
		}
		return e.keep(C.dp_l4(tcp, C.uint16_t(be16(it.SrcPort)), C.uint16_t(be16(it.DstPort)))),
			e.keep(C.dp_l4(tcp, C.uint16_t(be16(portMask(it.SrcPort))), C.uint16_t(be16(portMask(it.DstPort))))), typ, nil
	}
	return nil, nil, 0, fmt.Errorf("pattern item %q has no rte_flow encoding", it.Type)
}

// actionList builds an END-terminated action array; top records names.
func (e *encoded) actionList(acts []flowprog.Action, ports map[string]uint16, top bool) (*C.struct_rte_flow_action, error) {
	n := len(acts) + 1
	p := (*C.struct_rte_flow_action)(e.alloc(n * C.sizeof_struct_rte_flow_action))
	list := unsafe.Slice(p, n)
	for i, a := range acts {
		switch a.Type {
		case flowprog.ActionJump:
			list[i]._type, list[i].conf = C.RTE_FLOW_ACTION_TYPE_JUMP, e.keep(C.dp_jump(C.uint32_t(a.Group)))
		case flowprog.ActionSample:
			inner, err := e.actionList(a.Sample, ports, false)
			if err != nil {
				return nil, err
			}
			list[i]._type, list[i].conf = C.RTE_FLOW_ACTION_TYPE_SAMPLE, e.keep(C.dp_sample(C.uint32_t(a.Ratio), inner))
		case flowprog.ActionRawEncap:
			if len(a.Data) == 0 {
				return nil, fmt.Errorf("raw_encap without data")
			}
			c := C.dp_raw_encap((*C.uint8_t)(unsafe.Pointer(&a.Data[0])), C.size_t(len(a.Data)))
			e.encaps = append(e.encaps, c)
			list[i]._type, list[i].conf = C.RTE_FLOW_ACTION_TYPE_RAW_ENCAP, c
		case flowprog.ActionPortID:
			id, ok := ports[a.Port]
			if !ok {
				return nil, fmt.Errorf("port_id action names port %q, which has no DPDK port", a.Port)
			}
			list[i]._type, list[i].conf = C.RTE_FLOW_ACTION_TYPE_PORT_ID, e.keep(C.dp_port_id(C.uint32_t(id)))
		case flowprog.ActionCount:
			list[i]._type, list[i].conf = C.RTE_FLOW_ACTION_TYPE_COUNT, e.keep(C.dp_count())
		default:
			return nil, fmt.Errorf("action %q has no rte_flow encoding", a.Type)
		}
		if top {
			e.actionNames = append(e.actionNames, string(a.Type))
		}
	}
	list[n-1]._type = C.RTE_FLOW_ACTION_TYPE_END
	return p, nil
}

// walk renders the encoded rule as the C side reads it.
func (e *encoded) walk() string {
	buf := (*C.char)(C.malloc(1 << 14))
	defer C.free(unsafe.Pointer(buf))
	C.dp_walk(e.attr, e.itemsP, e.actions, buf, 1<<14)
	return C.GoString(buf)
}

// be32 returns an IPv4 prefix's address and mask in network byte order as
// DPDK stores them (the uint32 holds the bytes as they are in memory).
func be32(p netip.Prefix) (addr, mask uint32) {
	if !p.IsValid() {
		return 0, 0
	}
	a := p.Addr().As4()
	var m [4]byte
	fill(m[:], p.Bits())
	return binary.NativeEndian.Uint32(a[:]), binary.NativeEndian.Uint32(m[:])
}

func bytes16(p netip.Prefix) (addr, mask [16]byte) {
	if !p.IsValid() {
		return addr, mask
	}
	addr = p.Addr().As16()
	fill(mask[:], p.Bits())
	return addr, mask
}

func fill(m []byte, bits int) {
	for i := range m {
		switch {
		case bits >= 8:
			m[i] = 0xFF
			bits -= 8
		case bits > 0:
			m[i] = byte(0xFF << (8 - bits))
			bits = 0
		}
	}
}

// be16 returns v in network byte order, as a uint16 in memory.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func protoMask(p uint8) uint8 {
	if p != 0 {
		return 0xFF
	}
	return 0
}

func portMask(p uint16) uint16 {
	if p != 0 {
		return 0xFFFF
	}
	return 0
}
