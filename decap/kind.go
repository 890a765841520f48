package decap

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is a kind of envelope: an index into the table of descriptors.
type Kind uint8

// The built-in envelope kinds; their descriptors are in builtin.
const (
	KindNone     Kind = iota
	KindNIC           // the NIC's copy: one Ethernet frame as a UDP payload
	KindVXLAN         // VXLAN (RFC 7348)
	KindGENEVE        // GENEVE (RFC 8926), with options; Ethernet or a bare packet (IP, ARP)
	KindTZSP          // TaZmen Sniffer Protocol, Ethernet encapsulation
	KindERSPAN1       // GRE 0x88BE without a sequence number: no ERSPAN header
	KindERSPAN2       // ERSPAN type II
	KindERSPAN3       // ERSPAN type III, with the optional platform subheader
	KindGRETAP        // GRE transparent Ethernet bridging (0x6558)
	KindVXLANGPE      // VXLAN-GPE: Ethernet, IPv4 or IPv6 (draft-ietf-nvo3-vxlan-gpe)
	numBuiltin
)

// Transport is what carries envelopes of a kind.
type Transport uint8

// The transports.
const (
	UDP Transport = iota + 1 // a UDP datagram to the kind's port
	GRE                      // GRE, told apart by its protocol type
)

// GREHeader holds the fields of an envelope's GRE header that a kind's
// decoder may need.
type GREHeader struct {
	Protocol uint16
	Key      uint32 // 0 without a key
	Seq      bool   // a sequence number is present
}

// DecodeFunc takes apart an envelope's own header: p is the UDP payload, or
// what follows the GRE header (whose fields are in g; zero for UDP). It
// sets r.Inner (a suffix of p), and r.ID and r.InnerEtherType where they
// are not 0 (an Ethernet frame). A GRE kind returns GREUnsupportedProtocol for a packet that
// is another kind's under the same protocol type (ERSPAN I and II).
type DecodeFunc func(p []byte, g GREHeader, r *Result) Reason

// Descriptor says everything dpcap needs to know of one kind of envelope:
// the decoder, the kernel filter, the flags, the metrics and the capture
// files' interface names all derive from it.
type Descriptor struct {
	// Name names the kind in flags (--ports), logs and interface
	// descriptions: lower case, no spaces, '=' or ','.
	Name string
	// Transport carries it; Port is a UDP kind's well-known port, on by
	// default (0: off until --ports gives one). GREProtocol is a GRE
	// kind's protocol type.
	Transport   Transport
	Port        uint16
	GREProtocol uint16
	// IDLabel says what Result.ID is for this kind ("vni"), in interface
	// names; "" when the kind carries no identifier.
	IDLabel string
	Decode  DecodeFunc
}

// builtin are the descriptors of the kinds above, by kind.
var builtin = [numBuiltin]Descriptor{
	// 3010 is what dp-service's users configure for the NIC's copies;
	// the ID is the IPv6 flow label, which the outer header carries.
	KindNIC:      {Name: "nic", Transport: UDP, Port: DefaultNICPort, IDLabel: "tag", Decode: decodeNIC},
	KindVXLAN:    {Name: "vxlan", Transport: UDP, Port: 4789, IDLabel: "vni", Decode: decodeVXLAN},
	KindGENEVE:   {Name: "geneve", Transport: UDP, Port: 6081, IDLabel: "vni", Decode: decodeGENEVE},
	KindTZSP:     {Name: "tzsp", Transport: UDP, Port: 37008, Decode: decodeTZSP},
	KindERSPAN1:  {Name: "erspan1", Transport: GRE, GREProtocol: etherERSPAN12, Decode: decodeERSPAN1},
	KindERSPAN2:  {Name: "erspan2", Transport: GRE, GREProtocol: etherERSPAN12, IDLabel: "session", Decode: decodeERSPAN2},
	KindERSPAN3:  {Name: "erspan3", Transport: GRE, GREProtocol: etherERSPAN3, IDLabel: "session", Decode: decodeERSPAN3},
	KindGRETAP:   {Name: "gretap", Transport: GRE, GREProtocol: etherTEB, IDLabel: "key", Decode: decodeGRETAP},
	KindVXLANGPE: {Name: "vxlan-gpe", Transport: UDP, Port: 4790, IDLabel: "vni", Decode: decodeVXLANGPE},
}

// DefaultNICPort is the UDP port of the NIC's copies unless told otherwise.
const DefaultNICPort = 3010

var (
	registerMu sync.Mutex
	// table holds the descriptors by kind, KindNone's empty. Readers
	// load it without a lock; Register replaces it.
	table = builtinTable()
)

// builtinTable checks the built-in descriptors and makes the table of
// them: a built-in kind left without its descriptor stops every program
// (and test) at start-up.
func builtinTable() *atomic.Pointer[[]Descriptor] {
	t := []Descriptor{{}}
	for k := KindNone + 1; k < numBuiltin; k++ {
		if err := check(builtin[k], t); err != nil {
			panic(fmt.Sprintf("decap: built-in kind %d: %v", k, err))
		}
		t = append(t, builtin[k])
	}
	p := new(atomic.Pointer[[]Descriptor])
	p.Store(&t)
	return p
}

// Register adds a kind of envelope and returns it. Decoders made before
// it do not take the new kind. Built-in kinds are registered already.
func Register(d Descriptor) (Kind, error) {
	registerMu.Lock()
	defer registerMu.Unlock()
	old := *table.Load()
	if len(old) > 255 {
		return KindNone, errors.New("register an envelope kind: 255 kinds already")
	}
	if err := check(d, old); err != nil {
		return KindNone, fmt.Errorf("register envelope kind %q: %w", d.Name, err)
	}
	t := append(old[:len(old):len(old)], d)
	table.Store(&t)
	return Kind(len(t) - 1), nil
}

// check reports what makes d unfit to join the kinds in t.
func check(d Descriptor, t []Descriptor) error {
	switch {
	case d.Name == "" || strings.ContainsAny(d.Name, " =,\t\n") || strings.ToLower(d.Name) != d.Name:
		return fmt.Errorf("invalid name %q", d.Name)
	case d.Decode == nil:
		return errors.New("no decoder")
	case d.Transport == UDP && d.GREProtocol != 0:
		return errors.New("a UDP kind with a GRE protocol type")
	case d.Transport == GRE && (d.GREProtocol == 0 || d.Port != 0):
		return errors.New("a GRE kind needs a GRE protocol type and no port")
	case d.Transport != UDP && d.Transport != GRE:
		return fmt.Errorf("unknown transport %d", d.Transport)
	}
	for k, o := range t {
		if o.Name == d.Name {
			return fmt.Errorf("name taken by kind %d", k)
		}
		if d.Port != 0 && o.Port == d.Port {
			return fmt.Errorf("default port %d taken by %s", d.Port, o.Name)
		}
	}
	return nil
}

// Kinds returns every registered kind, in order.
func Kinds() []Kind {
	n := len(*table.Load())
	ks := make([]Kind, 0, n-1)
	for k := 1; k < n; k++ {
		ks = append(ks, Kind(k))
	}
	return ks
}

// Descriptor returns k's descriptor; the zero Descriptor for KindNone and
// kinds never registered.
func (k Kind) Descriptor() Descriptor {
	if t := *table.Load(); int(k) < len(t) {
		return t[k]
	}
	return Descriptor{}
}

// String returns the kind's name, as used in flags and interface names.
func (k Kind) String() string {
	switch d := k.Descriptor(); {
	case k == KindNone:
		return "none"
	case d.Name == "":
		return "unknown"
	default:
		return d.Name
	}
}

// UDP returns whether envelopes of this kind travel in UDP (and so need a
// port); the others travel in GRE.
func (k Kind) UDP() bool { return k.Descriptor().Transport == UDP }

// KindNames lists the names of the kinds of one transport, in kind order.
func KindNames(t Transport) []string {
	var names []string
	for _, k := range Kinds() {
		if d := k.Descriptor(); d.Transport == t {
			names = append(names, d.Name)
		}
	}
	return names
}
