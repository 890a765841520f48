package flowprog

import (
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/portmap"
)

// dpcap's own backends (software, dpdk) put a port's tag in the flow label
// of its envelopes, and sinkd names a copy after the port its map gives
// that tag. The map is copied to the sink and read there while the capture
// on the hypervisor changes (--replace, another order of --vf, ports added
// or dropped), so a tag must mean one port for good: a port keeps the tag
// it was first given, and a tag once given is never given to another port.
// Every map a hypervisor ever published is then right about every tag it
// lists, and a tag it does not list names nothing (docs/PORTMAP.md).

// FirstTag is the lowest tag Assign gives. Tags 1 to MaxPorts are those of
// dpcap before stable tags, which numbered each capture's ports in order:
// no map of such a version can name a copy of this one.
const FirstTag = MaxPorts + 1

// PreferredTag is the tag a port is offered first: a hash of its name into
// FirstTag..decap.MaxFlowLabel. Derived from the name alone, a port's tag stays
// the same even where its table was lost (unless two names collide).
func PreferredTag(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return FirstTag + h.Sum32()%(decap.MaxFlowLabel-FirstTag+1)
}

// TagTable is a hypervisor's assignment of tags to ports, by port name.
// dpcap serve keeps it for good in its state directory, next to the
// capture.
type TagTable map[string]uint32

// Assign gives each name that has no tag one: its PreferredTag, or, when
// another port holds that, the next free one (wrapping around to
// FirstTag). It returns the names it gave a tag; it fails only when every
// tag is taken.
func (t TagTable) Assign(names []string) ([]string, error) {
	taken := make(map[uint32]bool, len(t))
	for _, tag := range t {
		taken[tag] = true
	}
	var added []string
	for _, n := range names {
		if t[n] != 0 {
			continue
		}
		if len(taken) >= decap.MaxFlowLabel-FirstTag+1 {
			return added, fmt.Errorf("port %s: every one of the %d port tags is taken", n, decap.MaxFlowLabel-FirstTag+1)
		}
		tag := PreferredTag(n)
		for taken[tag] {
			if tag++; tag > decap.MaxFlowLabel {
				tag = FirstTag
			}
		}
		t[n], taken[tag] = tag, true
		added = append(added, n)
	}
	return added, nil
}

// Validate checks a table read back from a file: tags in 1..decap.MaxFlowLabel,
// each held by one port.
func (t TagTable) Validate() error {
	owner := make(map[uint32]string, len(t))
	for name, tag := range t {
		switch {
		case name == "":
			return fmt.Errorf("a port without a name holds tag %d", tag)
		case tag == 0 || tag > decap.MaxFlowLabel:
			return fmt.Errorf("port %s: tag %d is not in 1-%d", name, tag, decap.MaxFlowLabel)
		}
		if other, dup := owner[tag]; dup {
			return fmt.Errorf("tag %d is held by both %s and %s", tag, min(name, other), max(name, other))
		}
		owner[tag] = name
	}
	return nil
}

// PortMap returns the map of names, in order, with their tags from t, from
// source; PF0 is of kind pf, the others vf.
func (t TagTable) PortMap(source netip.Addr, names []string) portmap.Map {
	m := portmap.Map{Version: portmap.Version, Ports: make([]portmap.Port, len(names))}
	for i, n := range names {
		kind := portmap.KindVF
		if n == PF0 {
			kind = portmap.KindPF
		}
		m.Ports[i] = portmap.Port{Name: n, Source: source, Tag: t[n], Kind: kind}
	}
	return m
}
