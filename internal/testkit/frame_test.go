package testkit

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestFrameDecodes has gopacket decode each frame back: tags, addresses,
// protocol, ports, fragment and payload as asked, checksums right.
func TestFrameDecodes(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.1.2")
	v6a, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("2001:db8::2")
	for _, tt := range []struct {
		name string
		f    Frame
	}{
		{"ipv4 tcp", Frame{SrcIP: v4a, DstIP: v4b, Proto: layers.IPProtocolTCP, SrcPort: 1000, DstPort: 443, Seq: 7, Payload: []byte("seq")}},
		{"ipv6 udp behind two tags", Frame{VLANs: []uint16{100, 7}, SrcIP: v6a, DstIP: v6b, Proto: layers.IPProtocolUDP, SrcPort: 40000, DstPort: 3010, Payload: []byte("q")}},
		{"ipv4 fragment", Frame{Src: net.HardwareAddr{2, 9, 9, 9, 9, 9}, SrcIP: v4a, DstIP: v4b, Proto: layers.IPProtocolICMPv4, Frag: 0x2000 | 185, Payload: []byte("rest")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.f.Bytes(t)
			p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{})
			if el := p.ErrorLayer(); el != nil {
				t.Fatal(el.Error())
			}
			eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if want := tt.f.Src; want != nil && eth.SrcMAC.String() != want.String() || want == nil && eth.SrcMAC.String() != "02:00:00:00:00:01" {
				t.Errorf("source MAC %v", eth.SrcMAC)
			}
			var tags []uint16
			for _, l := range p.Layers() {
				if d, ok := l.(*layers.Dot1Q); ok {
					tags = append(tags, d.VLANIdentifier)
				}
			}
			if len(tags) != len(tt.f.VLANs) || len(tags) > 0 && (tags[0] != tt.f.VLANs[0] || tags[1] != tt.f.VLANs[1]) {
				t.Errorf("tags %v, want %v", tags, tt.f.VLANs)
			}
			net := p.NetworkLayer().NetworkFlow()
			if net.Src().String() != tt.f.SrcIP.String() || net.Dst().String() != tt.f.DstIP.String() {
				t.Errorf("addresses %v", net)
			}
			switch tt.f.Proto {
			case layers.IPProtocolTCP:
				tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
				if uint16(tcp.SrcPort) != tt.f.SrcPort || uint16(tcp.DstPort) != tt.f.DstPort || tcp.Seq != tt.f.Seq {
					t.Errorf("tcp %v > %v seq %d", tcp.SrcPort, tcp.DstPort, tcp.Seq)
				}
				verifyChecksum(t, b, p)
			case layers.IPProtocolUDP:
				udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if uint16(udp.SrcPort) != tt.f.SrcPort || uint16(udp.DstPort) != tt.f.DstPort {
					t.Errorf("udp %v > %v", udp.SrcPort, udp.DstPort)
				}
				verifyChecksum(t, b, p)
			default:
				ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if ip.Flags != layers.IPv4MoreFragments || ip.FragOffset != 185 {
					t.Errorf("flags %v offset %d", ip.Flags, ip.FragOffset)
				}
				if string(ip.Payload) != string(tt.f.Payload) {
					t.Errorf("payload %q", ip.Payload)
				}
				return
			}
			if app := p.ApplicationLayer(); app == nil || string(app.Payload()) != string(tt.f.Payload) {
				t.Errorf("payload %v, want %q", app, tt.f.Payload)
			}
		})
	}
}

// verifyChecksum has gopacket lay the decoded packet out again with
// checksums computed: the same bytes, so the frame's checksums were right.
func verifyChecksum(t *testing.T, b []byte, p gopacket.Packet) {
	t.Helper()
	if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		tcp.SetNetworkLayerForChecksum(p.NetworkLayer())
	}
	if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		udp.SetNetworkLayerForChecksum(p.NetworkLayer())
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializePacket(buf, gopacket.SerializeOptions{ComputeChecksums: true}, p); err != nil {
		t.Fatal(err)
	}
	if string(buf.Bytes()) != string(b) {
		t.Errorf("checksums differ from gopacket's:\n%x\n%x", b, buf.Bytes())
	}
}

// TestInnerFrame: IPv4 as is; IPv6 carries an IPv4 packet, as the
// underlay carries a VM's.
func TestInnerFrame(t *testing.T) {
	const mac = "02:00:00:00:00:09"
	p := gopacket.NewPacket(InnerFrame(t, mac, "10.0.0.1", "10.0.0.2", 7), layers.LayerTypeEthernet, gopacket.Default)
	if p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q).VLANIdentifier != 7 || p.Layer(layers.LayerTypeIPv4).(*layers.IPv4).SrcIP.String() != "10.0.0.1" {
		t.Errorf("ipv4 frame decodes as %v", p)
	}
	p = gopacket.NewPacket(InnerFrame(t, mac, "2001:db8::1", "fc00:1::1"), layers.LayerTypeEthernet, gopacket.Default)
	ip6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip6 == nil || ip4 == nil || ip6.DstIP.String() != "fc00:1::1" || ip4.DstIP.String() != "10.0.0.1" || p.Layer(layers.LayerTypeUDP) == nil {
		t.Errorf("ipv6 frame decodes as %v", p)
	}
	if eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); eth.SrcMAC.String() != mac {
		t.Errorf("source MAC %v", eth.SrcMAC)
	}
}
