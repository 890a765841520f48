package sink

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// AllowRule takes envelopes from one prefix (--allow), and, when IfIndex is
// set, only those that arrived on that interface: the zone of a link-local
// address says which link the sender is on.
//
// IPv4 senders are matched as IPv4 addresses whatever socket received
// them: a dual-stack socket's ::ffff:a.b.c.d is unmapped, and a rule
// spelled ::ffff:a.b.c.d[/96+n] means a.b.c.d[/n]. An IPv6 prefix such as
// ::/0 therefore matches IPv6 senders only.
type AllowRule struct {
	Prefix  netip.Prefix
	IfIndex int    // the arrival interface; 0 for any
	Zone    string // the zone as given, for messages
}

// String returns the rule in the syntax ParseAllow takes.
func (r AllowRule) String() string {
	if r.Zone == "" {
		return r.Prefix.String()
	}
	return fmt.Sprintf("%s%%%s/%d", r.Prefix.Addr(), r.Zone, r.Prefix.Bits())
}

// Matches reports whether a packet from src that arrived on interface
// ifindex (0 when unknown) is taken.
func (r AllowRule) Matches(src netip.Addr, ifindex int) bool {
	return r.Prefix.Contains(src.Unmap()) && (r.IfIndex == 0 || r.IfIndex == ifindex)
}

// ParseAllow parses a comma-separated list of addresses and prefixes, each
// with an optional zone as in RFC 4007: 2001:db8::/32, 192.0.2.7,
// fe80::1%eth1, fe80::%eth1/64 (or fe80::/64%eth1). A zone must name an interface of this
// network namespace (by name or index).
func ParseAllow(s string) ([]AllowRule, error) {
	var rules []AllowRule
	for _, c := range strings.Split(s, ",") {
		r, err := parseAllowRule(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("invalid --allow %q: %w", c, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseAllowRule(c string) (AllowRule, error) {
	// The zone may follow the address (RFC 4007) or the prefix length.
	var zone string
	i := strings.IndexByte(c, '%')
	hasZone := i >= 0
	if hasZone {
		j := strings.IndexByte(c[i:], '/')
		if j < 0 {
			j = len(c) - i
		}
		zone, c = c[i+1:i+j], c[:i]+c[i+j:]
	}
	addr, bitsText, hasBits := strings.Cut(c, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return AllowRule{}, fmt.Errorf("want prefixes like 2001:db8::/32,192.0.2.7,fe80::1%%eth0")
	}
	bits := a.BitLen()
	if hasBits {
		if bits, err = strconv.Atoi(bitsText); err != nil || bits < 0 || bits > a.BitLen() {
			return AllowRule{}, fmt.Errorf("bad prefix length %q", bitsText)
		}
	}
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	r := AllowRule{Prefix: netip.PrefixFrom(a, bits).Masked()}
	if hasZone {
		ifi, err := zoneInterface(zone)
		if err != nil {
			return AllowRule{}, err
		}
		r.IfIndex, r.Zone = ifi.Index, zone
	}
	return r, nil
}

// zoneInterface finds the interface a zone names.
func zoneInterface(zone string) (*net.Interface, error) {
	if zone == "" {
		return nil, fmt.Errorf("empty zone")
	}
	if i, err := strconv.Atoi(zone); err == nil {
		ifi, err := net.InterfaceByIndex(i)
		if err != nil {
			return nil, fmt.Errorf("zone %s: no interface with index %d", zone, i)
		}
		return ifi, nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return nil, fmt.Errorf("zone %s: no such interface", zone)
	}
	return ifi, nil
}

// Zoned reports whether any rule names an arrival interface.
func Zoned(rules []AllowRule) bool {
	for _, r := range rules {
		if r.IfIndex != 0 {
			return true
		}
	}
	return false
}
