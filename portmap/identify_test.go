package portmap

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// arpFrame is an ARP request from mac asking as spa.
func arpFrame(t testing.TB, mac, spa string) []byte {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{},
		&layers.Ethernet{SrcMAC: hw, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: hw, SourceProtAddress: netip.MustParseAddr(spa).AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 254}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testMap is what dp-service's backend publishes for a hypervisor, with a
// second hypervisor, an any-source port, a tagging hypervisor and two
// ports claiming one address.
const testMap = `{"version": 2, "ports": [
	{"name": "vm-1", "source": "2001:db8::10", "kind": "vf", "ipv4": "10.0.0.1", "ipv6": "fd00::1",
	 "underlay_route": "fc00:1::1/128", "mac": "02:00:00:00:00:01"},
	{"name": "vm-2", "source": "2001:db8::10", "kind": "vf", "ipv4": "10.0.0.2", "ipv6": "fd00::2",
	 "underlay_route": "fc00:1::2:0/112"},
	{"name": "pf0", "source": "2001:db8::10", "kind": "pf"},
	{"name": "vm-9", "source": "2001:db8::11", "kind": "vf", "ipv4": "10.0.0.1", "underlay_route": "fc00:2::/64"},
	{"name": "pf0-b", "source": "2001:db8::11", "kind": "pf"},
	{"name": "anywhere", "kind": "vf", "ipv4": "10.9.9.9"},
	{"name": "tagged-vm", "source": "2001:db8::12", "tag": 1, "kind": "vf"},
	{"name": "tagged-pf", "source": "2001:db8::12", "tag": 2, "kind": "pf"},
	{"name": "vm-t", "source": "2001:db8::12", "kind": "vf", "underlay_route": "fc00:3::7/128"},
	{"name": "twin-a", "source": "2001:db8::13", "kind": "vf", "ipv4": "10.7.7.7", "mac": "02:00:00:00:00:77"},
	{"name": "twin-b", "source": "2001:db8::13", "kind": "vf", "ipv4": "10.7.7.7", "mac": "02:00:00:00:00:78"}]}`

func TestIdentify(t *testing.T) {
	m, _, err := Parse([]byte(testMap))
	if err != nil {
		t.Fatal(err)
	}
	x, notes := NewIdentifier(m)
	if len(notes) != 1 || !strings.Contains(notes[0], `ipv4 10.7.7.7 is claimed by ports ["twin-a" "twin-b"]`) {
		t.Errorf("notes %q: want one on the twins' address", notes)
	}
	hv, hv2, hv3, hv4 := "2001:db8::10", "2001:db8::11", "2001:db8::12", "2001:db8::13"
	other := "02:00:00:00:00:99"
	for _, tt := range []struct {
		name   string
		sender string
		tag    uint32
		frame  []byte
		want   string
		tagged bool
	}{
		{"by ipv4", hv, 0, testkit.InnerFrame(t, other, "10.0.0.2", "10.0.0.1"), "vm-2", false},
		{"by ipv4 behind a VLAN tag", hv, 0, testkit.InnerFrame(t, other, "10.0.0.2", "10.0.0.1", 7), "vm-2", false},
		{"by ipv6", hv, 0, testkit.InnerFrame(t, other, "fd00::2", "fd00::1"), "vm-2", false},
		{"by mac", hv, 0, testkit.InnerFrame(t, "02:00:00:00:00:01", "0.0.0.0", "255.255.255.255"), "vm-1", false},
		{"by arp sender", hv, 0, arpFrame(t, other, "10.0.0.2"), "vm-2", false},
		{"same ipv4, other hypervisor", hv2, 0, testkit.InnerFrame(t, other, "10.0.0.1", "10.0.0.2"), "vm-9", false},
		{"any-source entry", hv2, 0, testkit.InnerFrame(t, other, "10.9.9.9", "10.0.0.2"), "anywhere", false},
		{"pf0 towards a /128 route", hv, 0, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:1::1"), "pf0 to vm-1", false},
		{"pf0 towards a /112 route", hv, 0, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:1::2:5"), "pf0 to vm-2", false},
		{"pf0 of the other hypervisor", hv2, 0, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:2::99"), "pf0-b to vm-9", false},
		{"route of another hypervisor", hv2, 0, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:1::1"), "", false},
		{"underlay to no route", hv, 0, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:9::1"), "", false},
		{"unknown ipv4", hv, 0, testkit.InnerFrame(t, other, "10.0.0.3", "10.0.0.1"), "", false},
		{"unknown sender", "2001:db8::99", 0, testkit.InnerFrame(t, other, "10.0.0.1", "10.0.0.2"), "", false},
		{"tag", hv3, 1, testkit.InnerFrame(t, other, "10.5.5.5", "10.0.0.2"), "tagged-vm", true},
		{"tagged pf towards a route", hv3, 2, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:3::7"), "tagged-pf to vm-t", true},
		{"tagged pf, other traffic", hv3, 2, testkit.InnerFrame(t, other, "10.5.5.5", "10.0.0.2"), "tagged-pf", true},
		{"unknown tag names no port, whatever it carries", hv, 77, testkit.InnerFrame(t, other, "10.0.0.2", "10.0.0.1"), "", false},
		{"unknown tag, a VF's mac", hv, 77, testkit.InnerFrame(t, "02:00:00:00:00:01", "10.5.5.5", "10.0.0.1"), "", false},
		{"unknown tag, towards a route", hv, 77, testkit.InnerFrame(t, other, "2001:db8::1", "fc00:1::1"), "", false},
		{"unknown tag of a tagging hypervisor", hv3, 3, testkit.InnerFrame(t, other, "10.5.5.5", "10.0.0.2"), "", false},
		{"ambiguous ipv4, known mac", hv4, 0, testkit.InnerFrame(t, "02:00:00:00:00:78", "10.7.7.7", "10.0.0.2"), "twin-b", false},
		{"ambiguous ipv4 alone", hv4, 0, testkit.InnerFrame(t, other, "10.7.7.7", "10.0.0.2"), "", false},
		{"runt", hv, 0, []byte{1, 2, 3}, "", false},
		{"ipv6 header cut short", hv, 0, testkit.InnerFrame(t, other, "fd00::2", "fd00::1")[:40], "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, tagged := x.Identify(netip.MustParseAddr(tt.sender), tt.tag, parsed(tt.frame))
			if JoinNames(x.Names(got)) != tt.want || tagged != tt.tagged {
				t.Errorf("Identify = %q (%+v), tagged %v; want %q, %v", JoinNames(x.Names(got)), got, tagged, tt.want, tt.tagged)
			}
		})
	}
}

// TestIdentifyVersion1 identifies by tag alone with a map written before
// versions.
func TestIdentifyVersion1(t *testing.T) {
	m, _, err := Parse([]byte(`{"ports": [{"source": "2001:db8::10", "tag": 1, "name": "vm-1"}, {"tag": 2, "name": "any-2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := NewIdentifier(m)
	f := testkit.InnerFrame(t, "02:00:00:00:00:01", "10.0.0.1", "10.0.0.2")
	for _, tt := range []struct {
		sender string
		tag    uint32
		want   string
	}{{"2001:db8::10", 1, "vm-1"}, {"2001:db8::11", 1, ""}, {"2001:db8::11", 2, "any-2"}, {"2001:db8::10", 0, ""}} {
		if got, _ := x.Identify(netip.MustParseAddr(tt.sender), tt.tag, parsed(f)); JoinNames(x.Names(got)) != tt.want {
			t.Errorf("%s tag %d: %q, want %q", tt.sender, tt.tag, JoinNames(x.Names(got)), tt.want)
		}
	}
}

func BenchmarkIdentify(b *testing.B) {
	m, _, err := Parse([]byte(testMap))
	if err != nil {
		b.Fatal(err)
	}
	x, _ := NewIdentifier(m)
	hv := netip.MustParseAddr("2001:db8::10")
	for _, bb := range []struct {
		name  string
		frame []byte
	}{
		{"vf-ipv4", testkit.InnerFrame(b, "02:00:00:00:00:99", "10.0.0.2", "10.0.0.1")},
		{"pf-underlay", testkit.InnerFrame(b, "02:00:00:00:00:99", "2001:db8::1", "fc00:1::1")},
		{"none", testkit.InnerFrame(b, "02:00:00:00:00:99", "10.0.0.3", "10.0.0.1")},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			var f decap.Frame
			for b.Loop() { // the parse included, as the engine does it
				decap.ParseFrame(bb.frame, &f)
				x.Identify(hv, 0, &f)
			}
		})
	}
}

// parsed is frame's headers, as the engine hands them to Identify.
func parsed(frame []byte) *decap.Frame {
	var f decap.Frame
	decap.ParseFrame(frame, &f)
	return &f
}
