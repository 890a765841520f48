package dpservice

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

func TestAddressFields(t *testing.T) {
	for _, tt := range []struct {
		in   []byte
		want string
	}{
		{[]byte("fc00:1::1"), "fc00:1::1"}, // text, as dp-service sends
		{[]byte("10.0.0.1"), "10.0.0.1"},
		{[]byte{10, 0, 0, 1}, "10.0.0.1"}, // raw, as its proto's comment says
		{netip.MustParseAddr("fd00::1").AsSlice(), "fd00::1"},
		{[]byte("::ffff:10.0.0.1"), "10.0.0.1"},
		{nil, ""},
		{[]byte("garbage"), ""},
	} {
		if got := text(tt.in); got != tt.want {
			t.Errorf("text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPortMap: captured VFs carry their addresses and route; with PF0
// captured, the other interfaces are listed by route only, so that PF0's
// copies towards them are named too.
func TestPortMap(t *testing.T) {
	b := &Backend{interfaces: []*dpdkpb.Interface{
		{Id: []byte("vm-1"), PrimaryIpv4: []byte("10.0.0.1"), PrimaryIpv6: []byte("fd00::1"), UnderlayRoute: []byte("fc00:1::a")},
		{Id: []byte("vm-2"), PrimaryIpv4: []byte("10.0.0.2"), PrimaryIpv6: []byte("::"), UnderlayRoute: []byte("fc00:1::b")},
	}}
	underlay := netip.MustParseAddr("fc00:1::1")
	p, err := flowprog.Build(flowprog.Config{Sink: netip.MustParseAddr("2001:db8::9"), Underlay: underlay, DstPort: 3010, VFs: []string{"vm-1"}, PF0: true})
	if err != nil {
		t.Fatal(err)
	}
	m := b.PortMap(p)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []portmap.Port{
		{Name: "vm-1", Source: underlay, Kind: portmap.KindVF, IPv4: netip.MustParseAddr("10.0.0.1"), IPv6: netip.MustParseAddr("fd00::1"), UnderlayRoute: netip.MustParsePrefix("fc00:1::a/128")},
		{Name: "vm-2", Source: underlay, Kind: portmap.KindVF, UnderlayRoute: netip.MustParsePrefix("fc00:1::b/128")},
		{Name: "pf0", Source: underlay, Kind: portmap.KindPF},
	}
	if m.Version != portmap.Version || len(m.Ports) != len(want) {
		t.Fatalf("port map %+v", m)
	}
	for i := range want {
		if m.Ports[i] != want[i] {
			t.Errorf("port %d: %+v, want %+v", i, m.Ports[i], want[i])
		}
	}
	p.Config.PF0 = false
	if m := b.PortMap(p); len(m.Ports) != 1 || m.Ports[0].Name != "vm-1" {
		t.Errorf("without PF0: %+v", m)
	}

	// Interfaces a sink would read as one already listed are left out:
	// the map stays one sinks accept, vm-1's copies stay vm-1's.
	b.interfaces = append([]*dpdkpb.Interface{{Id: []byte("vm-1\x1b[0m"), UnderlayRoute: []byte("fc00:1::c")}}, b.interfaces...)
	b.interfaces = append(b.interfaces, &dpdkpb.Interface{Id: []byte("vm-1"), UnderlayRoute: []byte("fc00:1::d")},
		&dpdkpb.Interface{Id: []byte("pf0"), UnderlayRoute: []byte("fc00:1::e")}, &dpdkpb.Interface{Id: []byte("\a")})
	p.Config.PF0 = true
	m = b.PortMap(p)
	b2, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := portmap.Parse(b2); err != nil {
		t.Fatalf("a sink refuses the map: %v", err)
	}
	var names []string
	for _, port := range m.Ports {
		names = append(names, port.Name)
	}
	if strings.Join(names, " ") != "vm-1 vm-2 pf0" || m.Ports[0].UnderlayRoute.String() != "fc00:1::a/128" {
		t.Errorf("ports %q: %+v", names, m)
	}
}

func TestCaptureConfigIsText(t *testing.T) {
	p, err := flowprog.Build(flowprog.Config{Sink: netip.MustParseAddr("2001:db8::9"), SrcPort: 3000, DstPort: 3010, VFs: []string{"vm-1"}, PF0: true})
	if err != nil {
		t.Fatal(err)
	}
	c := captureConfig(p)
	if string(c.SinkNodeIp.Address) != "2001:db8::9" || c.SinkNodeIp.Ipver != dpdkpb.IpVersion_IPV6 || c.UdpSrcPort != 3000 || c.UdpDstPort != 3010 {
		t.Fatalf("config %v", c)
	}
	if got := portNames(c); len(got) != 2 || got[0] != "vm-1" || got[1] != "pf0" {
		t.Fatalf("ports %v", got)
	}
	if !matches(c, p) {
		t.Fatal("a config does not match its own program")
	}
}

// TestAnswerLost: only a call whose answer may have been lost is settled
// by asking CaptureStatus; a refusal is one.
func TestAnswerLost(t *testing.T) {
	for code, want := range map[codes.Code]bool{
		codes.DeadlineExceeded: true, codes.Unavailable: true, codes.Canceled: true, codes.Internal: true,
		codes.Aborted: false, codes.InvalidArgument: false, codes.Unimplemented: false,
	} {
		if got := answerLost(status.Error(code, "x")); got != want {
			t.Errorf("%v: %v, want %v", code, got, want)
		}
	}
}
