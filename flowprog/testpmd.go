package flowprog

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/dpcap/dpcap/decap"
)

// DefaultPortIDs numbers ports the way a testpmd session with PF0 and its
// VF representors usually does: pf0 is 0, the VFs follow in order.
func (p *Program) DefaultPortIDs() map[string]int {
	ids := map[string]int{PF0: 0}
	for i, vf := range p.Config.VFs {
		ids[vf] = i + 1
	}
	return ids
}

// Testpmd renders the program in dpdk-testpmd's command syntax, to review
// or replay by hand: the envelopes (set raw_encap), the sample lists (set
// sample_actions) and the rules (flow create).
func (p *Program) Testpmd(ids map[string]int) string {
	var b strings.Builder
	c := p.Config
	fmt.Fprintf(&b, "# dpcap capture program: sink %v, UDP %d -> %d\n", c.Sink, c.SrcPort, c.DstPort)
	var tags []string
	for _, t := range p.Tags.Ports {
		tags = append(tags, fmt.Sprintf("%s=%d (port %d)", t.Name, t.Tag, ids[t.Name]))
	}
	fmt.Fprintf(&b, "# tags in the IPv6 flow label: %s\n", strings.Join(tags, ", "))
	fmt.Fprintf(&b, "# envelope: from PF0 %s to router %s, underlay %s -> sink %v\n",
		macOrUnset(c.PFMAC, "PF0 MAC"), macOrUnset(c.RouterMAC, "--router-mac"), addrOrUnset(c.Underlay), c.Sink)
	if c.Filter != nil {
		fmt.Fprintf(&b, "# filter: %s\n", c.Filter)
	}
	index := map[string]int{}
	for i, port := range c.Ports() {
		index[port] = i
		t := p.Templates[port]
		fmt.Fprintf(&b, "set raw_encap %d %s\n", i, encapItems(t))
		fmt.Fprintf(&b, "set sample_actions %d raw_encap index %d / port_id id %d / end\n", i, i, ids[PF0])
	}
	for _, r := range p.Install {
		fmt.Fprintln(&b, flowCreate(r, ids, index))
	}
	return b.String()
}

func macOrUnset(m net.HardwareAddr, flag string) string {
	if m == nil {
		return "00:00:00:00:00:00 (" + flag + " not given: the router drops such copies)"
	}
	return m.String()
}

func addrOrUnset(a netip.Addr) string {
	if !a.IsValid() {
		return ":: (--underlay-ip not given)"
	}
	return a.String()
}

// encapItems renders an envelope template as raw_encap items.
func encapItems(t [decap.EnvelopeLen]byte) string {
	flow := (uint32(t[15]&0x0F)<<16 | uint32(t[16])<<8 | uint32(t[17]))
	src, _ := netip.AddrFromSlice(t[22:38])
	dst, _ := netip.AddrFromSlice(t[38:54])
	return fmt.Sprintf("eth dst is %s src is %s type is 0x86dd / ipv6 src is %s dst is %s proto is 17 hop is %d tc is 0 flow is %d / udp src is %d dst is %d / end_set",
		net.HardwareAddr(t[0:6]), net.HardwareAddr(t[6:12]), src, dst, t[21], flow,
		int(t[54])<<8|int(t[55]), int(t[56])<<8|int(t[57]))
}

func flowCreate(r Rule, ids, index map[string]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "flow create %d group %d priority %d", ids[r.Port], r.Attr.Group, r.Attr.Priority)
	if r.Attr.Ingress {
		b.WriteString(" ingress")
	}
	if r.Attr.Transfer {
		b.WriteString(" transfer")
	}
	b.WriteString(" pattern")
	for _, it := range r.Pattern {
		b.WriteString(" " + item(it) + " /")
	}
	b.WriteString(" end actions")
	for _, a := range r.Actions {
		switch a.Type {
		case ActionSample:
			fmt.Fprintf(&b, " sample ratio %d index %d /", a.Ratio, index[r.Port])
		case ActionJump:
			fmt.Fprintf(&b, " jump group %d /", a.Group)
		case ActionCount:
			b.WriteString(" count /")
		case ActionPortID:
			fmt.Fprintf(&b, " port_id id %d /", ids[a.Port])
		}
	}
	b.WriteString(" end")
	return b.String()
}

func item(it Item) string {
	s := string(it.Type)
	prefix := func(field string, p netip.Prefix) {
		switch {
		case !p.IsValid():
		case p.Bits() == p.Addr().BitLen():
			s += fmt.Sprintf(" %s is %s", field, p.Addr())
		default:
			s += fmt.Sprintf(" %s spec %s %s prefix %d", field, p.Addr(), field, p.Bits())
		}
	}
	prefix("src", it.Src)
	prefix("dst", it.Dst)
	if it.Proto != 0 {
		s += fmt.Sprintf(" proto is %d", it.Proto)
	}
	if it.SrcPort != 0 {
		s += fmt.Sprintf(" src is %d", it.SrcPort)
	}
	if it.DstPort != 0 {
		s += fmt.Sprintf(" dst is %d", it.DstPort)
	}
	return s
}
