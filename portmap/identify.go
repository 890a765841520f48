package portmap

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/dpcap/dpcap/decap"
)

// Match is the port a copy came from, as indexes into the map's Ports plus
// one (0: none). To is set for a PF copy headed to a VF: the VF.
type Match struct{ Port, To int32 }

// Identifier tells which port of a Map a copy came from. It is built
// once; Identify allocates nothing and is safe for concurrent use.
//
// The rules, in order (docs/PORTMAP.md):
//   - a flow label is a tag: the port with that tag from the sender, and a
//     tag the map does not list names no port;
//   - a VF's copy is the VM's own frame: its inner source MAC, or its inner
//     source IPv4 (or ARP sender address) or IPv6, is the VF's;
//   - a PF copy is an underlay frame: its inner IPv6 destination lies in a
//     VF's underlay route; it is named after the sender's PF and that VF.
//
// Entries for the sender itself win over entries for any source. An
// address two ports of one source claim identifies neither.
type Identifier struct {
	ports  []Port
	tags   map[uint32][]int32
	macs   map[[6]byte][]int32
	ipv4   map[[4]byte][]int32
	ipv6   map[[16]byte][]int32
	hosts  map[[16]byte][]int32 // /128 underlay routes
	routes []route              // shorter underlay routes, longest first
	pfs    []int32
}

type route struct {
	prefix netip.Prefix
	port   int32
}

// NewIdentifier indexes m, which must be valid. The notes say which
// addresses identify nothing because two ports claim them.
func NewIdentifier(m Map) (*Identifier, []string) {
	x := &Identifier{
		ports: m.Ports, tags: map[uint32][]int32{}, macs: map[[6]byte][]int32{},
		ipv4: map[[4]byte][]int32{}, ipv6: map[[16]byte][]int32{}, hosts: map[[16]byte][]int32{},
	}
	var nets map[netip.Prefix][]int32
	for i, p := range m.Ports {
		n := int32(i)
		if p.Tag != 0 {
			x.tags[p.Tag] = append(x.tags[p.Tag], n)
		}
		if p.Kind == KindPF {
			x.pfs = append(x.pfs, n)
			continue // the uplink's copies carry other hosts' addresses
		}
		if hw, err := net.ParseMAC(p.MAC); err == nil && len(hw) == 6 {
			k := [6]byte(hw)
			x.macs[k] = append(x.macs[k], n)
		}
		if p.IPv4.Is4() {
			x.ipv4[p.IPv4.As4()] = append(x.ipv4[p.IPv4.As4()], n)
		}
		if p.IPv6.Is6() {
			x.ipv6[p.IPv6.As16()] = append(x.ipv6[p.IPv6.As16()], n)
		}
		switch r := p.UnderlayRoute; {
		case !r.IsValid():
		case r.IsSingleIP():
			x.hosts[r.Addr().As16()] = append(x.hosts[r.Addr().As16()], n)
		default:
			if nets == nil {
				nets = map[netip.Prefix][]int32{}
			}
			nets[r] = append(nets[r], n)
		}
	}
	var notes []string
	notes = append(notes, prune(x, x.macs, "mac", func(k [6]byte) string { return net.HardwareAddr(k[:]).String() })...)
	notes = append(notes, prune(x, x.ipv4, "ipv4", func(k [4]byte) string { return netip.AddrFrom4(k).String() })...)
	notes = append(notes, prune(x, x.ipv6, "ipv6", func(k [16]byte) string { return netip.AddrFrom16(k).String() })...)
	notes = append(notes, prune(x, x.hosts, "underlay_route", func(k [16]byte) string { return netip.AddrFrom16(k).String() + "/128" })...)
	notes = append(notes, prune(x, nets, "underlay_route", netip.Prefix.String)...)
	for r, ports := range nets {
		for _, n := range ports {
			x.routes = append(x.routes, route{r, n})
		}
	}
	slices.SortFunc(x.routes, func(a, b route) int { return cmp.Compare(b.prefix.Bits(), a.prefix.Bits()) })
	slices.Sort(notes)
	return x, notes
}

// prune removes the keys two ports of one source (or two ports of any
// source) claim, and says so.
func prune[K comparable](x *Identifier, m map[K][]int32, field string, str func(K) string) []string {
	var notes []string
	for k, ports := range m {
		keep := ports[:0:0]
		for _, n := range ports {
			src := x.ports[n].Source
			if slices.ContainsFunc(ports, func(o int32) bool { return o != n && x.ports[o].Source == src }) {
				continue
			}
			keep = append(keep, n)
		}
		if len(keep) == len(ports) {
			continue
		}
		var names []string
		for _, n := range ports {
			if !slices.Contains(keep, n) {
				names = append(names, fmt.Sprintf("%q", x.ports[n].Name))
			}
		}
		notes = append(notes, fmt.Sprintf("%s %s is claimed by ports %v of one source: it identifies none of them", field, str(k), names))
		if len(keep) == 0 {
			delete(m, k)
		} else {
			m[k] = keep
		}
	}
	return notes
}

// pick returns, of the ports a key names, the one of sender, else one of
// any source, else -1.
func (x *Identifier) pick(ports []int32, sender netip.Addr) int32 {
	found := int32(-1)
	for _, n := range ports {
		switch src := x.ports[n].Source; {
		case src == sender:
			return n
		case !src.IsValid():
			found = n
		}
	}
	return found
}

// Identify returns the port a copy from sender with flow label tag came
// from; f is its inner Ethernet frame, parsed once (decap.ParseFrame).
// tagged reports whether the tag named a port; a copy whose tag names none
// matches nothing.
func (x *Identifier) Identify(sender netip.Addr, tag uint32, f *decap.Frame) (m Match, tagged bool) {
	if tag != 0 {
		// A tag the map does not list is a port of a later capture (or a
		// forged label): its copy must not be named after a port whose
		// addresses it happens to carry.
		n := x.pick(x.tags[tag], sender)
		if n < 0 {
			return Match{}, false
		}
		m.Port = n + 1
		if x.ports[n].Kind == KindPF && f.HasIPv6 {
			m.To = x.towards(sender, f.Dst6)
		}
		return m, true
	}
	if f.HasMAC {
		if n := x.pick(x.macs[f.SrcMAC], sender); n >= 0 {
			return Match{Port: n + 1}, false
		}
	}
	if f.HasSrc4 {
		if n := x.pick(x.ipv4[f.Src4], sender); n >= 0 {
			return Match{Port: n + 1}, false
		}
	}
	if f.HasIPv6 {
		if n := x.pick(x.ipv6[f.Src6], sender); n >= 0 {
			return Match{Port: n + 1}, false
		}
		if to := x.towards(sender, f.Dst6); to != 0 {
			if pf := x.pick(x.pfs, sender); pf >= 0 {
				return Match{Port: pf + 1, To: to}, false
			}
		}
	}
	return Match{}, false
}

// towards returns the VF (index plus one) whose underlay route holds dst,
// or 0.
func (x *Identifier) towards(sender netip.Addr, dst [16]byte) int32 {
	if n := x.pick(x.hosts[dst], sender); n >= 0 {
		return n + 1
	}
	if len(x.routes) == 0 {
		return 0
	}
	a := netip.AddrFrom16(dst)
	for _, r := range x.routes {
		if src := x.ports[r.port].Source; r.prefix.Contains(a) && (src == sender || !src.IsValid()) {
			return r.port + 1
		}
	}
	return 0
}

// JoinNames names a match from its Names: "vm-1", or for a PF copy headed
// to a VF, "pf0 to vm-1".
func JoinNames(port, to string) string {
	if to == "" {
		return port
	}
	return port + " to " + to
}

// Capture returns the capture id of m's port ("" for none): the map's
// string, no allocation.
func (x *Identifier) Capture(m Match) string {
	if m.Port == 0 {
		return ""
	}
	return x.ports[m.Port-1].Capture
}

// Captures returns the capture ids the map names, each once.
func (x *Identifier) Captures() []string {
	var ids []string
	for _, p := range x.ports {
		if p.Capture != "" && !slices.Contains(ids, p.Capture) {
			ids = append(ids, p.Capture)
		}
	}
	return ids
}

// Names names a match: the port's name, and for a PF copy headed to a VF,
// the VF's ("" when none). They are the map's strings: no allocation.
func (x *Identifier) Names(m Match) (port, to string) {
	if m.Port != 0 {
		port = x.ports[m.Port-1].Name
	}
	if m.To != 0 {
		to = x.ports[m.To-1].Name
	}
	return port, to
}
