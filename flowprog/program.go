package flowprog

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/portmap"
)

// The groups of the capture program (docs/ENVELOPE.md §3): the dataplane's
// default entry, capture's sampling, and the dataplane's forwarding.
const (
	GroupDefault = 0
	GroupCapture = 1
	GroupForward = 2
)

// MaxPorts is how many ports one capture may take.
const MaxPorts = 16

// PF0 is the name of the uplink port; PF1 cannot be captured.
const PF0 = "pf0"

// Config says what to capture and where to send it.
type Config struct {
	// Sink is the sink node's IPv6 address; Underlay is this hypervisor's.
	Sink, Underlay netip.Addr
	// SrcPort is configured but not honoured by the hardware.
	SrcPort, DstPort uint16
	// RouterMAC is the underlay router's (PF0's neighbour), PFMAC PF0's.
	RouterMAC, PFMAC net.HardwareAddr
	// VFs names the VF ports; PF0 captures the uplink too.
	VFs []string
	PF0 bool
	// Filter, when set, samples only matching frames on every port.
	Filter *Match
	// Tags are the ports' tags, the hypervisor's for good; the program
	// gives a port missing from it one (TagTable.Assign) of its own, which
	// the caller must keep before applying the program. Build does not
	// change it.
	Tags TagTable
}

// Ports returns the captured ports: the VFs, then pf0.
func (c Config) Ports() []string {
	ports := slices.Clone(c.VFs)
	if c.PF0 {
		ports = append(ports, PF0)
	}
	return ports
}

// Validate checks the config as the dataplane's CLI does, and more.
func (c Config) Validate() error {
	switch {
	case !c.Sink.IsValid():
		return errors.New("no sink node IP")
	case !c.Sink.Is6() || c.Sink.Is4In6():
		return fmt.Errorf("sink node IP %v is not IPv6: the envelope is IPv6", c.Sink)
	case c.Underlay.IsValid() && (!c.Underlay.Is6() || c.Underlay.Is4In6()):
		return fmt.Errorf("underlay IP %v is not IPv6", c.Underlay)
	case c.DstPort == 0:
		return errors.New("UDP destination port must be 1-65535")
	case len(c.VFs) == 0 && !c.PF0:
		return errors.New("no port to capture: give --vf or --pf 0")
	case len(c.Ports()) > MaxPorts:
		return fmt.Errorf("%d ports: at most %d can be captured at once", len(c.Ports()), MaxPorts)
	}
	// Sinks read names cleaned (ReadPortMap): two names that clean to one
	// would make a port map every sink refuses.
	seen := map[string]string{}
	for _, p := range c.VFs {
		clean := portmap.CleanName(p)
		switch {
		case p == "":
			return errors.New("empty VF name")
		case clean == "":
			return fmt.Errorf("VF name %q has no printable character", p)
		case clean == PF0 || clean == "pf1":
			return fmt.Errorf("%q is not a VF: capture PF0 with --pf 0", p)
		case seen[clean] == p:
			return fmt.Errorf("port %q given twice", p)
		case seen[clean] != "":
			return fmt.Errorf("ports %q and %q given: sinks read both as %q (names lose control characters, escapes and outer spaces), so give one", seen[clean], p, clean)
		}
		seen[clean] = p
	}
	if c.Filter != nil {
		return c.Filter.Validate()
	}
	return nil
}

// ParsePF checks a --pf value: only PF0 is in switchdev mode.
func ParsePF(s string) (bool, error) {
	switch s {
	case "0", PF0:
		return true, nil
	case "1", "pf1":
		return false, errors.New("PF1 cannot be captured: it is not in switchdev mode, so the NIC's sample rule does not apply to it")
	}
	return false, fmt.Errorf("invalid PF %q: only 0 can be captured", s)
}

// Match selects the frames to sample: an IP version, protocol, prefixes
// and ports. Frames that do not match are forwarded unsampled.
type Match struct {
	Proto            string // "tcp", "udp" or "" for any
	Src, Dst         netip.Prefix
	SrcPort, DstPort uint16
	IPv6             bool // set when no prefix says the version: match IPv6, else IPv4
}

// ParseMatch parses "proto=tcp,src=10.0.0.0/8,dst=2001:db8::/32,sport=1,dport=443,ip=6".
func ParseMatch(s string) (*Match, error) {
	m := &Match{}
	ipSet := false
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("invalid filter term %q: want KEY=VALUE", kv)
		}
		var err error
		switch k {
		case "proto":
			if v != "tcp" && v != "udp" {
				return nil, fmt.Errorf("invalid filter proto %q: want tcp or udp", v)
			}
			m.Proto = v
		case "src", "dst":
			p, perr := netip.ParsePrefix(v)
			if perr != nil {
				a, aerr := netip.ParseAddr(v)
				if aerr != nil {
					return nil, fmt.Errorf("invalid filter %s %q: want an address or prefix", k, v)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if k == "src" {
				m.Src = p.Masked()
			} else {
				m.Dst = p.Masked()
			}
		case "sport", "dport":
			var n uint64
			if n, err = strconv.ParseUint(v, 10, 16); err != nil || n == 0 {
				return nil, fmt.Errorf("invalid filter %s %q: want 1-65535", k, v)
			}
			if k == "sport" {
				m.SrcPort = uint16(n)
			} else {
				m.DstPort = uint16(n)
			}
		case "ip":
			if v != "4" && v != "6" {
				return nil, fmt.Errorf("invalid filter ip %q: want 4 or 6", v)
			}
			m.IPv6, ipSet = v == "6", true
		default:
			return nil, fmt.Errorf("invalid filter key %q: want proto, src, dst, sport, dport or ip", k)
		}
	}
	if !ipSet {
		for _, p := range []netip.Prefix{m.Src, m.Dst} {
			if p.IsValid() {
				m.IPv6 = p.Addr().Is6()
			}
		}
	}
	return m, m.Validate()
}

// Validate checks the match is one rte_flow pattern can express.
func (m *Match) Validate() error {
	for _, p := range []netip.Prefix{m.Src, m.Dst} {
		if p.IsValid() && p.Addr().Is6() != m.IPv6 {
			return errors.New("filter mixes IPv4 and IPv6")
		}
	}
	if (m.SrcPort != 0 || m.DstPort != 0) && m.Proto == "" {
		return errors.New("filter ports need proto=tcp or proto=udp")
	}
	return nil
}

// String renders the match in ParseMatch's syntax.
func (m *Match) String() string {
	var parts []string
	if m.IPv6 {
		parts = append(parts, "ip=6")
	} else {
		parts = append(parts, "ip=4")
	}
	if m.Proto != "" {
		parts = append(parts, "proto="+m.Proto)
	}
	if m.Src.IsValid() {
		parts = append(parts, "src="+m.Src.String())
	}
	if m.Dst.IsValid() {
		parts = append(parts, "dst="+m.Dst.String())
	}
	if m.SrcPort != 0 {
		parts = append(parts, fmt.Sprintf("sport=%d", m.SrcPort))
	}
	if m.DstPort != 0 {
		parts = append(parts, fmt.Sprintf("dport=%d", m.DstPort))
	}
	return strings.Join(parts, ",")
}

// ItemType is an rte_flow pattern item type.
type ItemType string

// The pattern items the program uses.
const (
	ItemETH  ItemType = "eth"
	ItemIPv4 ItemType = "ipv4"
	ItemIPv6 ItemType = "ipv6"
	ItemTCP  ItemType = "tcp"
	ItemUDP  ItemType = "udp"
)

// Item is one pattern item; zero fields match anything (mask 0).
type Item struct {
	Type             ItemType
	Src, Dst         netip.Prefix // IP items
	Proto            uint8        // IP items: next protocol
	SrcPort, DstPort uint16       // TCP and UDP items
}

// ActionType is an rte_flow action type.
type ActionType string

// The actions the program uses.
const (
	ActionJump     ActionType = "jump"
	ActionSample   ActionType = "sample"
	ActionRawEncap ActionType = "raw_encap"
	ActionPortID   ActionType = "port_id"
	ActionCount    ActionType = "count"
)

// Action is one action; the fields its type uses are set.
type Action struct {
	Type   ActionType
	Group  uint32   // jump
	Ratio  uint32   // sample: 1 copies every frame
	Sample []Action // sample: what is done to the copy
	Data   []byte   // raw_encap: the envelope
	Port   string   // port_id: the target port's name
}

// Attr are a rule's attributes.
type Attr struct {
	Group, Priority uint32
	Ingress         bool
	Transfer        bool // an E-Switch rule
}

// Rule is one flow rule on one port.
type Rule struct {
	Port    string
	Attr    Attr
	Pattern []Item
	Actions []Action
}

// Program is what capture installs; stopping destroys exactly these rules.
// It owns the ports' rules: a dataplane's own default rules on the same
// ports (group 0 jump to 2, group 1 catch-all) are neither removed nor
// restored by any backend, so the program does not list them.
type Program struct {
	Config  Config
	Install []Rule
	// Templates holds each port's envelope (tag in the flow label); Tags
	// is the map of the ports' tags, in the order of Config.Ports.
	Templates map[string][decap.EnvelopeLen]byte
	Tags      portmap.Map
}

// Build makes the capture program for cfg.
func Build(cfg Config) (*Program, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ports := cfg.Ports()
	tags := maps.Clone(cfg.Tags)
	if tags == nil {
		tags = TagTable{}
	}
	if _, err := tags.Assign(ports); err != nil {
		return nil, err
	}
	p := &Program{Config: cfg, Templates: map[string][decap.EnvelopeLen]byte{}, Tags: tags.PortMap(cfg.Underlay, ports)}
	underlay := cfg.Underlay
	if !underlay.IsValid() {
		underlay = netip.IPv6Unspecified()
	}
	router, pf := cfg.RouterMAC, cfg.PFMAC
	if router == nil {
		router = make(net.HardwareAddr, 6)
	}
	if pf == nil {
		pf = make(net.HardwareAddr, 6)
	}
	any := []Item{{Type: ItemETH}}
	for _, port := range ports {
		t := decap.Envelope{DstMAC: router, SrcMAC: pf, Src: underlay, Dst: cfg.Sink,
			SrcPort: cfg.SrcPort, DstPort: cfg.DstPort, FlowLabel: tags[port]}
		b, err := t.Bytes()
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", port, err)
		}
		p.Templates[port] = b
		// E-Switch (transfer) rules; DPDK 22.11 refuses ingress with transfer.
		attr := func(group, prio uint32) Attr {
			return Attr{Group: group, Priority: prio, Transfer: true}
		}
		sample := []Action{
			{Type: ActionSample, Ratio: 1, Sample: []Action{
				{Type: ActionRawEncap, Data: b[:]},
				{Type: ActionPortID, Port: PF0},
			}},
			{Type: ActionJump, Group: GroupForward},
		}
		toForward := []Action{{Type: ActionJump, Group: GroupForward}}
		toCapture := []Action{{Type: ActionJump, Group: GroupCapture}}
		if cfg.Filter == nil {
			p.Install = append(p.Install, Rule{port, attr(GroupCapture, 0), any, sample})
		} else {
			// Matching frames are sampled; the rest go on to forwarding.
			p.Install = append(p.Install,
				Rule{port, attr(GroupCapture, 0), cfg.Filter.pattern(), sample},
				Rule{port, attr(GroupCapture, 1), any, toForward})
		}
		if port == PF0 {
			// Flows arriving on PF0 jump to group 1 from their own group-0
			// rules (made by the dataplane per flow); this catch-all,
			// below them, takes the rest.
			p.Install = append(p.Install, Rule{port, attr(GroupDefault, 1), any, toCapture})
			continue
		}
		p.Install = append(p.Install, Rule{port, attr(GroupDefault, 0), any, toCapture})
	}
	return p, nil
}

// pattern renders the match as rte_flow items.
func (m *Match) pattern() []Item {
	items := []Item{{Type: ItemETH}}
	ip := Item{Type: ItemIPv4, Src: m.Src, Dst: m.Dst}
	if m.IPv6 {
		ip.Type = ItemIPv6
	}
	switch m.Proto {
	case "tcp":
		ip.Proto = 6
	case "udp":
		ip.Proto = 17
	}
	items = append(items, ip)
	if m.Proto != "" {
		items = append(items, Item{Type: ItemType(m.Proto), SrcPort: m.SrcPort, DstPort: m.DstPort})
	}
	return items
}

// PcapFilter renders the match as a pcap-filter(7) expression, for
// backends that filter in software.
func (m *Match) PcapFilter() string {
	parts := []string{"ip"}
	if m.IPv6 {
		parts[0] = "ip6"
	}
	if m.Proto != "" {
		parts = append(parts, m.Proto)
	}
	if m.Src.IsValid() {
		parts = append(parts, "src net "+m.Src.String())
	}
	if m.Dst.IsValid() {
		parts = append(parts, "dst net "+m.Dst.String())
	}
	if m.SrcPort != 0 {
		parts = append(parts, fmt.Sprintf("src port %d", m.SrcPort))
	}
	if m.DstPort != 0 {
		parts = append(parts, fmt.Sprintf("dst port %d", m.DstPort))
	}
	return strings.Join(parts, " and ")
}
