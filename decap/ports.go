package decap

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Ports are the UDP ports of each UDP kind: any number of them, none for
// a kind that is off. A port belongs to one kind at most.
type Ports map[Kind][]uint16

// DefaultPorts are the well-known UDP ports of each UDP kind (none for
// those off by default).
func DefaultPorts() Ports {
	ports := Ports{}
	for _, k := range Kinds() {
		if d := k.Descriptor(); d.Transport == UDP {
			ports[k] = nil
			if d.Port != 0 {
				ports[k] = []uint16{d.Port}
			}
		}
	}
	return ports
}

// UDPPorts lists the ports of ports' UDP kinds, sorted.
func UDPPorts(ports Ports) []uint16 {
	var list []uint16
	for k, ps := range ports {
		if k.UDP() {
			list = append(list, ps...)
		}
	}
	slices.Sort(list)
	return slices.Compact(list)
}

// ParsePorts applies a list like "vxlan=4789,vxlan=8472,geneve=0" to
// ports: a kind the list names gets exactly the ports given for it (port
// 0: none, the kind is off), and the others keep theirs. It refuses a port
// given twice, or given to a kind while another, which the list leaves as
// it is, still has it; an empty list only checks ports. On error ports is
// unchanged.
func ParsePorts(s string, ports Ports) error {
	named := Ports{}
	off := map[Kind]bool{}
	owner := map[uint16]Kind{}
	for item := range strings.SplitSeq(s, ",") {
		if s == "" {
			break
		}
		name, port, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("invalid port mapping %q: want KIND=PORT", item)
		}
		k := KindNone
		for _, i := range Kinds() {
			if i.String() == name && i.UDP() {
				k = i
			}
		}
		if k == KindNone {
			return fmt.Errorf("invalid port mapping %q: kind must be one of %s", item, strings.Join(KindNames(UDP), ", "))
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("invalid port mapping %q: port must be 0-65535", item)
		}
		p := uint16(n)
		switch o, taken := owner[p]; {
		case p == 0 && len(named[k]) > 0, p != 0 && off[k]:
			return fmt.Errorf("invalid port mapping %q: %s=0 turns %s off, but the list also gives it a port", item, k, k)
		case p == 0:
			off[k] = true
			named[k] = nil
			continue
		case taken && o == k:
			return fmt.Errorf("invalid port mapping %q: port %d is given to %s twice", item, p, k)
		case taken:
			return fmt.Errorf("invalid port mapping %q: port %d is given to %s and to %s: give each port one kind", item, p, o, k)
		}
		owner[p] = k
		named[k] = append(named[k], p)
	}
	merged := Ports{}
	for k, ps := range ports {
		merged[k] = ps
	}
	for k, ps := range named {
		merged[k] = ps
	}
	if err := checkPorts(merged, named); err != nil {
		return err
	}
	for k, ps := range named {
		ports[k] = ps
	}
	return nil
}

// checkPorts refuses a port two kinds of ports have; named are the kinds
// --ports names, which the hint leaves alone.
func checkPorts(ports Ports, named Ports) error {
	owner := map[uint16]Kind{}
	for _, k := range Kinds() {
		for _, p := range ports[k] {
			o, taken := owner[p]
			if !taken {
				owner[p] = k
				continue
			}
			// Say how to free the port from a kind the list leaves as it
			// is: one on its default port, else one whose port came from
			// elsewhere (nic's from --port).
			_, oNamed := named[o]
			_, kNamed := named[k]
			free := o
			if oNamed || !kNamed && k.Descriptor().Port == p && o.Descriptor().Port != p {
				free = k
			}
			why := free.String() + "'s default"
			if free.Descriptor().Port != p {
				why = "which --ports does not name"
			}
			return fmt.Errorf("port %d is both %s's and %s's (%s): add %s=0 or %s=PORT to --ports", p, o, k, why, free, free)
		}
	}
	return nil
}

// FormatPorts renders ports in ParsePorts' syntax, sorted by kind name,
// then port; a kind that is off is KIND=0.
func FormatPorts(ports Ports) string {
	kinds := make([]Kind, 0, len(ports))
	for k := range ports {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b Kind) int { return strings.Compare(a.String(), b.String()) })
	var items []string
	for _, k := range kinds {
		ps := slices.Sorted(slices.Values(ports[k]))
		if len(ps) == 0 {
			ps = []uint16{0}
		}
		for _, p := range ps {
			items = append(items, fmt.Sprintf("%s=%d", k, p))
		}
	}
	return strings.Join(items, ",")
}
