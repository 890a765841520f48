//go:build dpdk

package rteflow

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/flowprog"
)

// The EAL without hardware: two null ports, no hugepages (docs/ENVELOPE.md §4).
var ealArgs = []string{"--no-huge", "--no-pci", "-m", "256", "--no-shconf", "--log-level", "error",
	"--vdev", "net_null0", "--vdev", "net_null1"}

func TestMain(m *testing.M) {
	if _, err := Init(ealArgs); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func program(t *testing.T, filter string) *flowprog.Program {
	t.Helper()
	cfg := flowprog.Config{
		Sink: netip.MustParseAddr("2001:db8:f::1"), Underlay: netip.MustParseAddr("2001:db8::10"),
		SrcPort: 3000, DstPort: 3010,
		RouterMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 1}, PFMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 2},
		VFs: []string{"vm-1"}, PF0: true,
	}
	if filter != "" {
		m, err := flowprog.ParseMatch(filter)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Filter = m
	}
	p, err := flowprog.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var ids = map[string]uint16{"pf0": 0, "vm-1": 1}

// TestEncodedStructsAreTheProgram walks the C structures rte_flow will read
// and compares them with what flowprog specified.
func TestEncodedStructsAreTheProgram(t *testing.T) {
	for _, filter := range []string{"", "proto=tcp,dst=10.0.0.0/8,dport=443", "proto=udp,src=2001:db8:aa::/48,sport=53"} {
		p := program(t, filter)
		for _, r := range p.Install {
			got, err := walkRule(r, ids)
			if err != nil {
				t.Fatal(err)
			}
			if want := expect(r); got != want {
				t.Errorf("filter %q, port %s group %d:\n got %s\nwant %s", filter, r.Port, r.Attr.Group, got, want)
			}
		}
	}
	// Spot checks against literal values, not just the formatter above.
	p := program(t, "proto=tcp,dst=10.0.0.0/8,dport=443")
	got, _ := walkRule(p.Install[0], ids)
	tmpl := p.Templates["vm-1"]
	var tag uint32
	for _, port := range p.Tags.Ports {
		if port.Name == "vm-1" {
			tag = port.Tag
		}
	}
	if tag != flowprog.PreferredTag("vm-1") {
		t.Fatalf("vm-1's tag is %d, want its preferred %d", tag, flowprog.PreferredTag("vm-1"))
	}
	// Version 6, traffic class 0, the tag in the 20-bit flow label.
	label := fmt.Sprintf("%08x", 6<<28|tag)
	for _, want := range []string{
		"attr(group=1 prio=0 ingress=0 transfer=1)",
		"ipv4(src=00000000/00000000 dst=0a000000/ff000000 proto=6/255)",
		"tcp(src=0/0000 dst=443/ffff)",
		"sample(ratio=1 [ raw_encap(size=62 data=" + hex.EncodeToString(tmpl[:]) + ") port_id(id=0) ])",
		// The envelope as the NIC gets it: to the router's MAC, from PF0's.
		"raw_encap(size=62 data=0c42a1000001" + "0c42a1000002" + "86dd" + label,
		"jump(group=2)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("encoded VF rule lacks %s:\n%s", want, got)
		}
	}
	if got := hex.EncodeToString(tmpl[14:18]); got != label {
		t.Errorf("vm-1's template starts its IPv6 header %s, want %s (tag %d in the flow label)", got, label, tag)
	}
}

// expect renders a rule the way dp_walk does.
func expect(r flowprog.Rule) string {
	b := fmt.Sprintf("attr(group=%d prio=%d ingress=%d transfer=%d)", r.Attr.Group, r.Attr.Priority, b2i(r.Attr.Ingress), b2i(r.Attr.Transfer))
	for _, it := range r.Pattern {
		switch it.Type {
		case flowprog.ItemETH:
			b += " eth(spec=none)"
		case flowprog.ItemIPv4:
			s, sm := v4(it.Src)
			d, dm := v4(it.Dst)
			b += fmt.Sprintf(" ipv4(src=%s/%s dst=%s/%s proto=%d/%d)", s, sm, d, dm, it.Proto, protoMask(it.Proto))
		case flowprog.ItemIPv6:
			s, sm := bytes16(it.Src)
			d, dm := bytes16(it.Dst)
			b += fmt.Sprintf(" ipv6(src=%x/%x dst=%x/%x proto=%d/%d)", s, sm, d, dm, it.Proto, protoMask(it.Proto))
		case flowprog.ItemTCP, flowprog.ItemUDP:
			b += fmt.Sprintf(" %s(src=%d/%04x dst=%d/%04x)", it.Type, it.SrcPort, portMask(it.SrcPort), it.DstPort, portMask(it.DstPort))
		}
	}
	return b + " /" + expectActions(r.Actions)
}

func expectActions(as []flowprog.Action) string {
	var b string
	for _, a := range as {
		switch a.Type {
		case flowprog.ActionJump:
			b += fmt.Sprintf(" jump(group=%d)", a.Group)
		case flowprog.ActionSample:
			b += fmt.Sprintf(" sample(ratio=%d [%s ])", a.Ratio, expectActions(a.Sample))
		case flowprog.ActionRawEncap:
			b += fmt.Sprintf(" raw_encap(size=%d data=%x)", len(a.Data), a.Data)
		case flowprog.ActionPortID:
			b += fmt.Sprintf(" port_id(id=%d)", ids[a.Port])
		case flowprog.ActionCount:
			b += " count"
		}
	}
	return b
}

func v4(p netip.Prefix) (string, string) {
	if !p.IsValid() {
		return "00000000", "00000000"
	}
	a := p.Addr().As4()
	var m [4]byte
	fill(m[:], p.Bits())
	return hex.EncodeToString(a[:]), hex.EncodeToString(m[:])
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPorts(t *testing.T) {
	e, _ := Init(ealArgs)
	info, err := e.Port("net_null0")
	if err != nil {
		t.Fatal(err)
	}
	if info.Driver != "net_null" || info.Representor {
		t.Errorf("net_null0: %+v", info)
	}
	if len(info.MAC) != 6 {
		t.Errorf("net_null0's MAC (rte_eth_macaddr_get): %v", info.MAC)
	}
	if _, err := e.Port("0000:08:00.0_representor_vf0"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a missing port: %v", err)
	}
}

// TestPMDWithoutSampling validates and creates the program on null ports:
// each refusal names the port, the rule and why.
func TestPMDWithoutSampling(t *testing.T) {
	e, _ := Init(ealArgs)
	p := program(t, "")
	for _, r := range p.Install {
		id := ids[r.Port]
		err := e.Validate(id, "net_null"+fmt.Sprint(id), r, ids)
		var fe *Error
		if !errors.As(err, &fe) || fe.Errno != 38 {
			t.Fatalf("validate on a null port: %v", err)
		}
		msg := err.Error()
		for _, want := range []string{"port net_null", "validate rule (group", "no rte_flow support"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		if r.Attr.Group == 1 && !strings.Contains(msg, "sample[raw_encap port_id]") {
			t.Errorf("error %q does not name the sampling actions", msg)
		}
		if _, err := e.Create(id, "net_null", r, ids); !errors.As(err, &fe) {
			t.Fatalf("create on a null port: %v", err)
		}
	}
}
