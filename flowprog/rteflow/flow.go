//go:build dpdk

package rteflow

/*
#cgo pkg-config: libdpdk
#include "rteflow.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/dpcap/dpcap/flowprog"
)

// Flow is a created rule; its C structures live until Destroy.
type Flow struct {
	Port uint16
	Rule flowprog.Rule
	h    *C.struct_rte_flow
	enc  *encoded
}

// Error is a failed rte_flow call: the port, the rule and, where the PMD
// said, the item or action it refused.
type Error struct {
	Op    string // validate, create, destroy, flush, query
	Port  string
	Rule  flowprog.Rule
	Cause string // "action 0 (sample)", "attributes", or "" when unknown
	Msg   string // the PMD's message
	Errno int
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %s: %s rule (group %d, priority %d; %s)", e.Port, e.Op, e.Rule.Attr.Group, e.Rule.Attr.Priority, ruleSummary(e.Rule))
	if e.Cause != "" {
		fmt.Fprintf(&b, ": %s refused", e.Cause)
	}
	reason := C.GoString(C.rte_strerror(C.int(e.Errno)))
	if e.Msg != "" && e.Msg != reason {
		fmt.Fprintf(&b, ": %s", e.Msg)
	}
	fmt.Fprintf(&b, ": %s", reason)
	switch e.Errno {
	case 38: // ENOSYS
		b.WriteString(" (this PMD has no rte_flow support)")
	case 95: // ENOTSUP
		b.WriteString(" (this PMD cannot do this; sampling with RAW_ENCAP needs mlx5 in switchdev mode)")
	}
	return b.String()
}

// ruleSummary names what a rule asks for: "pattern eth; actions sample[raw_encap port_id] jump".
func ruleSummary(r flowprog.Rule) string {
	var items, acts []string
	for _, it := range r.Pattern {
		items = append(items, string(it.Type))
	}
	var walk func([]flowprog.Action) []string
	walk = func(as []flowprog.Action) []string {
		var out []string
		for _, a := range as {
			s := string(a.Type)
			if len(a.Sample) > 0 {
				s += "[" + strings.Join(walk(a.Sample), " ") + "]"
			}
			out = append(out, s)
		}
		return out
	}
	acts = walk(r.Actions)
	return "pattern " + strings.Join(items, " ") + "; actions " + strings.Join(acts, " ")
}

// call runs a flow operation on the EAL thread and turns its rte_flow_error
// into an *Error.
func (e *EAL) call(op, portName string, r flowprog.Rule, enc *encoded, f func(*C.struct_rte_flow_error) C.int) error {
	var err error
	e.do(func() {
		var ferr C.struct_rte_flow_error
		rc := f(&ferr)
		if rc == 0 {
			return
		}
		errno := C.dp_errno()
		if rc < 0 && -rc != errno && errno == 0 {
			errno = -rc
		}
		fe := &Error{Op: op, Port: portName, Rule: r, Errno: int(errno)}
		if ferr.message != nil {
			fe.Msg = C.GoString(ferr.message)
		}
		if enc != nil {
			fe.Cause = enc.cause(ferr._type, ferr.cause)
		}
		err = fe
	})
	return err
}

// cause names the item or action an rte_flow_error points at.
func (e *encoded) cause(typ C.enum_rte_flow_error_type, p unsafe.Pointer) string {
	switch typ {
	case C.RTE_FLOW_ERROR_TYPE_ATTR, C.RTE_FLOW_ERROR_TYPE_ATTR_GROUP, C.RTE_FLOW_ERROR_TYPE_ATTR_PRIORITY,
		C.RTE_FLOW_ERROR_TYPE_ATTR_INGRESS, C.RTE_FLOW_ERROR_TYPE_ATTR_EGRESS, C.RTE_FLOW_ERROR_TYPE_ATTR_TRANSFER:
		return "attributes"
	}
	if p == nil {
		return ""
	}
	addr := uintptr(p)
	base := uintptr(unsafe.Pointer(e.itemsP))
	if size := uintptr(C.sizeof_struct_rte_flow_item); addr >= base && addr < base+size*uintptr(len(e.itemNames)) {
		i := int((addr - base) / size)
		return fmt.Sprintf("item %d (%s)", i, e.itemNames[i])
	}
	base = uintptr(unsafe.Pointer(e.actions))
	if size := uintptr(C.sizeof_struct_rte_flow_action); addr >= base && addr < base+size*uintptr(len(e.actionNames)) {
		i := int((addr - base) / size)
		return fmt.Sprintf("action %d (%s)", i, e.actionNames[i])
	}
	// A nested action (inside SAMPLE) or a spec: name the typed group.
	switch typ {
	case C.RTE_FLOW_ERROR_TYPE_ACTION, C.RTE_FLOW_ERROR_TYPE_ACTION_CONF:
		return "an action of the sample list"
	case C.RTE_FLOW_ERROR_TYPE_ITEM, C.RTE_FLOW_ERROR_TYPE_ITEM_SPEC, C.RTE_FLOW_ERROR_TYPE_ITEM_MASK:
		return "a pattern item"
	}
	return ""
}

// Validate asks port's PMD whether it would accept r. ports maps port
// names to ids for PORT_ID actions; portName is for messages.
func (e *EAL) Validate(port uint16, portName string, r flowprog.Rule, ports map[string]uint16) error {
	enc, err := encode(r, ports)
	if err != nil {
		return fmt.Errorf("port %s: %w", portName, err)
	}
	defer enc.free()
	return e.call("validate", portName, r, enc, func(fe *C.struct_rte_flow_error) C.int {
		return C.rte_flow_validate(C.uint16_t(port), enc.attr, enc.itemsP, enc.actions, fe)
	})
}

// Create installs r on port.
func (e *EAL) Create(port uint16, portName string, r flowprog.Rule, ports map[string]uint16) (*Flow, error) {
	enc, err := encode(r, ports)
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", portName, err)
	}
	var h *C.struct_rte_flow
	err = e.call("create", portName, r, enc, func(fe *C.struct_rte_flow_error) C.int {
		h = C.rte_flow_create(C.uint16_t(port), enc.attr, enc.itemsP, enc.actions, fe)
		if h == nil {
			return -1
		}
		return 0
	})
	if err != nil {
		enc.free()
		return nil, err
	}
	return &Flow{Port: port, Rule: r, h: h, enc: enc}, nil
}

// Destroy removes a created rule and frees its structures.
func (e *EAL) Destroy(f *Flow, portName string) error {
	err := e.call("destroy", portName, f.Rule, nil, func(fe *C.struct_rte_flow_error) C.int {
		return C.rte_flow_destroy(C.uint16_t(f.Port), f.h, fe)
	})
	if err == nil {
		f.enc.free()
	}
	return err
}

// walkRule renders r as it is encoded in C memory, as the C side reads it
// back: what the tests compare with testpmd's syntax.
func walkRule(r flowprog.Rule, ports map[string]uint16) (string, error) {
	enc, err := encode(r, ports)
	if err != nil {
		return "", err
	}
	defer enc.free()
	return enc.walk(), nil
}
