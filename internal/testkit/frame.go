package testkit

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Frame is an Ethernet frame for a test to send or decode: Ethernet, its
// VLAN tags, an IPv4 or IPv6 header and, for TCP and UDP, that header,
// then the payload. Its zero value's MACs are 02:00:00:00:00:01 to :02.
type Frame struct {
	Src, Dst net.HardwareAddr
	// VLANs are the 802.1Q tags, outermost first.
	VLANs []uint16
	// SrcIP and DstIP make the IP header IPv4 or IPv6.
	SrcIP, DstIP netip.Addr
	// Proto is the IP protocol (IPv6 next header). For TCP and UDP the
	// frame has that header, from SrcPort to DstPort; for any other the
	// payload follows the IP header.
	Proto            layers.IPProtocol
	SrcPort, DstPort uint16
	// Frag is IPv4's flags and fragment offset, as on the wire.
	Frag uint16
	// Seq is the TCP sequence number.
	Seq     uint32
	Payload []byte
}

// Bytes serializes f with lengths and checksums computed (and Ethernet's
// padding to 60 bytes), failing the test if gopacket cannot.
func (f Frame) Bytes(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: f.Src, DstMAC: f.Dst}
	if eth.SrcMAC == nil {
		eth.SrcMAC = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	}
	if eth.DstMAC == nil {
		eth.DstMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	}
	ls := []gopacket.SerializableLayer{eth}
	next := &eth.EthernetType
	for _, id := range f.VLANs {
		*next = layers.EthernetTypeDot1Q
		tag := &layers.Dot1Q{VLANIdentifier: id}
		ls, next = append(ls, tag), &tag.Type
	}
	*next = layers.EthernetTypeIPv6
	if f.SrcIP.Is4() {
		*next = layers.EthernetTypeIPv4
	}
	return Serialize(t, append(ls, f.ipLayers()...)...)
}

// IP serializes f from its IP header on, as IP-in-IP carries it.
func (f Frame) IP(t testing.TB) []byte {
	t.Helper()
	return Serialize(t, f.ipLayers()...)
}

func (f Frame) ipLayers() []gopacket.SerializableLayer {
	var ip gopacket.NetworkLayer
	if f.SrcIP.Is4() {
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: f.Proto, SrcIP: f.SrcIP.AsSlice(), DstIP: f.DstIP.AsSlice(),
			Flags: layers.IPv4Flag(f.Frag >> 13), FragOffset: f.Frag & 0x1fff}
	} else {
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: f.Proto, SrcIP: f.SrcIP.AsSlice(), DstIP: f.DstIP.AsSlice()}
	}
	ls := []gopacket.SerializableLayer{ip.(gopacket.SerializableLayer)}
	switch f.Proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.SrcPort), DstPort: layers.TCPPort(f.DstPort), Seq: f.Seq, ACK: true, Window: 1000}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, tcp)
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.SrcPort), DstPort: layers.UDPPort(f.DstPort)}
		udp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, udp)
	}
	return append(ls, gopacket.Payload(f.Payload))
}

// InnerFrame is a frame as a VM sends it or the underlay carries it to
// one, which is what the port map tells ports by: from mac, IPv4 UDP from
// src to dst or, for IPv6 addresses, IPv4 in IPv6 (the overlay packet in
// the underlay), behind the VLAN tags.
func InnerFrame(t testing.TB, mac, src, dst string, vlans ...uint16) []byte {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	f := Frame{Src: hw, Dst: net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}, VLANs: vlans,
		SrcIP: netip.MustParseAddr(src), DstIP: netip.MustParseAddr(dst), Proto: layers.IPProtocolUDP,
		SrcPort: 49152, DstPort: 9, Payload: []byte("payload")}
	if f.SrcIP.Is6() {
		overlay := Frame{SrcIP: netip.MustParseAddr("192.0.2.9"), DstIP: netip.MustParseAddr("10.0.0.1"), Proto: f.Proto,
			SrcPort: f.SrcPort, DstPort: f.DstPort, Payload: f.Payload}
		f.Proto, f.Payload = layers.IPProtocolIPv4, overlay.IP(t)
	}
	return f.Bytes(t)
}
