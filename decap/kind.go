package decap

import (
	"fmt"
	"sort"
	"strings"
)

// Kind is a kind of envelope.
type Kind uint8

// The envelope kinds.
const (
	KindNone    Kind = iota
	KindNIC          // the NIC's copy: one Ethernet frame as a UDP payload
	KindVXLAN        // VXLAN (RFC 7348)
	KindGENEVE       // GENEVE (RFC 8926), with options; Ethernet or bare IP
	KindTZSP         // TaZmen Sniffer Protocol, Ethernet encapsulation
	KindERSPAN1      // GRE 0x88BE without a sequence number: no ERSPAN header
	KindERSPAN2      // ERSPAN type II
	KindERSPAN3      // ERSPAN type III, with the optional platform subheader
	KindGRETAP       // GRE transparent Ethernet bridging (0x6558)
	NumKinds
)

var kindNames = [NumKinds]string{"none", "nic", "vxlan", "geneve", "tzsp", "erspan1", "erspan2", "erspan3", "gretap"}

// String returns the kind's name, as used in flags and interface names.
func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "unknown"
}

// UDP returns whether envelopes of this kind travel in UDP (and so need a
// port); the others travel in GRE.
func (k Kind) UDP() bool { return k >= KindNIC && k <= KindTZSP }

// DefaultPorts are the well-known UDP ports of each UDP kind; 3010 is what
// dpservice's users configure for the NIC's copies.
func DefaultPorts() map[Kind]uint16 {
	return map[Kind]uint16{KindNIC: 3010, KindVXLAN: 4789, KindGENEVE: 6081, KindTZSP: 37008}
}

// ParsePorts applies a list like "vxlan=8472,geneve=0" to ports: each UDP
// kind gets the port given; port 0 turns the kind off.
func ParsePorts(s string, ports map[Kind]uint16) error {
	for _, item := range strings.Split(s, ",") {
		name, port, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("invalid port mapping %q: want KIND=PORT", item)
		}
		k := KindNone
		for i := KindNIC; i < NumKinds; i++ {
			if i.String() == name && i.UDP() {
				k = i
			}
		}
		if k == KindNone {
			return fmt.Errorf("invalid port mapping %q: kind must be one of nic, vxlan, geneve, tzsp", item)
		}
		var p uint16
		if _, err := fmt.Sscan(port, &p); err != nil {
			return fmt.Errorf("invalid port mapping %q: port must be 0-65535", item)
		}
		ports[k] = p
	}
	return nil
}

// FormatPorts renders ports in ParsePorts' syntax, sorted by kind.
func FormatPorts(ports map[Kind]uint16) string {
	var items []string
	for k, p := range ports {
		items = append(items, fmt.Sprintf("%s=%d", k, p))
	}
	sort.Strings(items)
	return strings.Join(items, ",")
}
