package decap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type envelope struct {
	name  string
	frame []byte // an Ethernet frame
	// raw marks envelopes as the NIC sends them (IPv6 payload length 0, UDP
	// length unset), which Wireshark cannot dissect: what sinkd is for.
	raw   bool
	kind  Kind
	id    uint32
	inner []byte
	etype uint16 // of a bare inner packet; 0: an Ethernet frame
}

// envelopes builds one of every kind around real frames.
func envelopes(t testing.TB) []envelope {
	vm := testkit.VMFrames(t)
	in, in2, in3 := vm[30], vm[40], vm[8] // TCP, TCP over IPv6, ICMP
	ip4, ip6 := in[14:], in3[14:]         // bare IPv4 (TCP) and IPv6 (ICMPv6) packets
	arp := vm[4][14:]                     // a bare ARP packet
	nicUDP := func(p []byte) []byte { return udp(40000, 3010, p, 0xBEEF, 0) }
	hbh := ext6(60, 2)    // hop-by-hop, 16 bytes, then destination options
	dst := ext6(44, 1)    // destination options, then a fragment header
	atomic := ext6(17, 1) // fragment header: offset 0, no more fragments
	atomic[1] = 0         // (its second byte is reserved, not a length)
	return []envelope{
		{"nic over ipv6 as the NIC sends it", ether(0x86DD, ipv6(17, nicUDP(in), 0, 0x12345)), true, KindNIC, 0x12345, in, 0},
		{"nic over ipv6 with lengths fixed", ether(0x86DD, ipv6(17, udp(1, 3010, in, uint16(8+len(in)), 0), -1, 0)), false, KindNIC, 0, in, 0},
		{"nic over ipv4 with options", ether(0x0800, ipv4(17, nicUDP(in2), []byte{1, 1, 1, 0, 0x94, 4, 0, 0}, 0x4000)), true, KindNIC, 0, in2, 0},
		{"nic over ipv6 extension headers", ether(0x86DD, ipv6(0, cat(hbh, dst, atomic, nicUDP(in)), -1, 7)), true, KindNIC, 7, in, 0},
		{"nic behind 802.1ad and 802.1Q tags", ether(0x86DD, ipv6(17, nicUDP(in), 0, 0), [2]uint16{0x88A8, 100}, [2]uint16{0x8100, 7}), true, KindNIC, 0, in, 0},
		{"nic behind three tags", ether(0x0800, ipv4(17, nicUDP(in3), nil, 0), [2]uint16{0x9100, 1}, [2]uint16{0x88A8, 2}, [2]uint16{0x8100, 3}), true, KindNIC, 0, in3, 0},
		{"vxlan", ether(0x0800, ipv4(17, udp(5000, 4789, vxlan(42, in), uint16(16+len(in)), 0), nil, 0)), false, KindVXLAN, 42, in, 0},
		{"geneve with options", ether(0x86DD, ipv6(17, udpOK(6081, geneve(77, 0x6558, cat(be16b(0x0102), []byte{3, 1}, be32b(9)), in2)), -1, 0)), false, KindGENEVE, 77, in2, 0},
		{"geneve carrying bare ipv4", ether(0x0800, ipv4(17, udpOK(6081, geneve(78, 0x0800, nil, ip4)), nil, 0)), false, KindGENEVE, 78, ip4, 0x0800},
		{"geneve carrying bare arp", ether(0x0800, ipv4(17, udpOK(6081, geneve(79, 0x0806, nil, arp)), nil, 0)), false, KindGENEVE, 79, arp, 0x0806},
		{"geneve carrying bare ipv6", ether(0x86DD, ipv6(17, udpOK(6081, geneve(80, 0x86DD, nil, ip6)), -1, 0)), false, KindGENEVE, 80, ip6, 0x86DD},
		{"tzsp with tags", ether(0x0800, ipv4(17, udpOK(37008, tzsp(cat([]byte{0, 0}, []byte{10, 2, 0x12, 0x34}), in3)), nil, 0)), false, KindTZSP, 0, in3, 0},
		{"erspan type I", ether(0x0800, ipv4(47, gre(0x88BE, false, nil, nil, in), nil, 0)), false, KindERSPAN1, 0, in, 0},
		{"erspan type II", ether(0x0800, ipv4(47, gre(0x88BE, false, nil, ptr(1), erspan2(77, in)), nil, 0)), false, KindERSPAN2, 77, in, 0},
		{"erspan type II over ipv6", ether(0x86DD, ipv6(47, gre(0x88BE, false, ptr(5), ptr(2), erspan2(1023, in2)), -1, 0)), false, KindERSPAN2, 1023, in2, 0},
		{"erspan type III", ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(3), erspan3(300, 0, false, in)), nil, 0)), false, KindERSPAN3, 300, in, 0},
		{"erspan type III with subheader", ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(4), erspan3(301, 0, true, in3)), nil, 0)), false, KindERSPAN3, 301, in3, 0},
		{"erspan type III carrying ip", ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(5), erspan3(302, 2, false, ip4)), nil, 0)), false, KindERSPAN3, 302, ip4, 0x0800},
		{"erspan type III carrying ipv6", ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(6), erspan3(303, 2, false, ip6)), nil, 0)), false, KindERSPAN3, 303, ip6, 0x86DD},
		{"vxlan with every reserved bit set", ether(0x0800, ipv4(17, udpOK(4789, cat([]byte{0xFF, 0x01, 0xD1, 0xF2}, be32b(46<<8|0xFF), in)), nil, 0)), false, KindVXLAN, 46, in, 0},
		{"vxlan-gpe header of ethernet on the vxlan port", ether(0x0800, ipv4(17, udpOK(4789, vxlanGPE(47, 3, in)), nil, 0)), false, KindVXLAN, 47, in, 0},
		{"vxlan-gpe carrying ethernet", ether(0x86DD, ipv6(17, udpOK(4790, vxlanGPE(43, 3, in)), -1, 0)), false, KindVXLANGPE, 43, in, 0},
		{"vxlan-gpe carrying ipv4", ether(0x0800, ipv4(17, udpOK(4790, vxlanGPE(44, 1, ip4)), nil, 0)), false, KindVXLANGPE, 44, ip4, 0x0800},
		{"vxlan-gpe carrying ipv6", ether(0x0800, ipv4(17, udpOK(4790, vxlanGPE(45, 2, ip6)), nil, 0)), false, KindVXLANGPE, 45, ip6, 0x86DD},
		{"gre-tap with checksum and key", ether(0x0800, ipv4(47, gre(0x6558, true, ptr(99), nil, in), nil, 0)), false, KindGRETAP, 99, in, 0},
	}
}

var decoder = NewDecoder(DefaultPorts())

func TestDecodeEveryKind(t *testing.T) {
	for _, e := range envelopes(t) {
		t.Run(e.name, func(t *testing.T) {
			var r Result
			if reason := decoder.Decode(layers.LinkTypeEthernet, e.frame, len(e.frame), &r); reason != OK {
				t.Fatalf("reason %v", reason)
			}
			if r.Kind != e.kind || r.ID != e.id || r.InnerEtherType != e.etype {
				t.Errorf("kind %v id %d inner EtherType %#x; want %v %d %#x", r.Kind, r.ID, r.InnerEtherType, e.kind, e.id, e.etype)
			}
			if !bytes.Equal(r.Inner, e.inner) || r.InnerLength != len(e.inner) {
				t.Errorf("inner: %d bytes (length %d), want %d", len(r.Inner), r.InnerLength, len(e.inner))
			}
			if !r.Src.IsValid() || !r.Dst.IsValid() {
				t.Errorf("outer addresses %v -> %v", r.Src, r.Dst)
			}
		})
	}
}

// TestDecodeEveryLinkType rewraps a real envelope's IP packet in each outer
// link type a capture can have.
func TestDecodeEveryLinkType(t *testing.T) {
	e := envelopes(t)[0]
	ip := e.frame[14:]
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	sll := cat(be16b(0), be16b(1), be16b(6), macA, []byte{0, 0}, be16b(0x86DD))
	sll2 := cat(be16b(0x86DD), be16b(0), be32b(3), be16b(1), []byte{0, 6}, macA, []byte{0, 0})
	tests := []struct {
		name  string
		lt    layers.LinkType
		frame []byte
	}{
		{"LINUX_SLL", layers.LinkTypeLinuxSLL, cat(sll, ip)},
		{"LINUX_SLL with an 802.1Q tag", layers.LinkTypeLinuxSLL, cat(sll[:14], be16b(0x8100), be16b(5), be16b(0x86DD), ip)},
		{"LINUX_SLL2", layers.LinkTypeLinuxSLL2, cat(sll2, ip)},
		{"RAW", layers.LinkTypeRaw, ip},
		{"DLT_RAW 12", 12, ip},
		{"IPV6", layers.LinkTypeIPv6, ip},
		{"NULL, Linux AF_INET6", layers.LinkTypeNull, cat(le32(10), ip)},
		{"NULL, FreeBSD AF_INET6", layers.LinkTypeNull, cat(le32(28), ip)},
		{"NULL, big-endian Darwin AF_INET6", layers.LinkTypeNull, cat(be32b(30), ip)},
		{"LOOP, OpenBSD AF_INET6", layers.LinkTypeLoop, cat(be32b(24), ip)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Result
			if reason := decoder.Decode(tt.lt, tt.frame, len(tt.frame), &r); reason != OK {
				t.Fatalf("reason %v", reason)
			}
			if !bytes.Equal(r.Inner, e.inner) || r.ID != e.id {
				t.Fatalf("inner %d bytes, id %d; want %d bytes, id %d", len(r.Inner), r.ID, len(e.inner), e.id)
			}
		})
	}
	// IPv4 in NULL with the family in host (little-endian) order.
	v4 := envelopes(t)[2].frame[14:]
	var r Result
	if reason := decoder.Decode(layers.LinkTypeNull, cat(le32(2), v4), len(v4)+4, &r); reason != OK || !bytes.Equal(r.Inner, envelopes(t)[2].inner) {
		t.Fatalf("NULL AF_INET: %v", reason)
	}
}

func TestReasons(t *testing.T) {
	in := testkit.VMFrames(t)[30]
	nic := ether(0x86DD, ipv6(17, udp(1, 3010, in, 0, 0), 0, 0))
	tests := []struct {
		name  string
		lt    layers.LinkType
		frame []byte
		// length is the frame's length on the wire; 0: as captured.
		length int
		want   Reason
	}{
		{"unknown link type", 147, nic, 0, UnsupportedLinkType},
		{"ARP", layers.LinkTypeEthernet, testkit.VMFrames(t)[4], 0, NotIP},
		{"ICMPv6", layers.LinkTypeEthernet, testkit.VMFrames(t)[0], 0, NotUDPOrGRE},
		{"DNS: an unmapped port", layers.LinkTypeEthernet, testkit.VMFrames(t)[25], 0, UnknownPort},
		{"GRE carrying IPv4", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x0800, false, nil, nil, in[14:]), nil, 0)), 0, GREUnsupportedProtocol},
		{"TZSP keepalive", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 37008, []byte{1, 4, 0, 1}, 0, 0), nil, 0)), 0, TZSPNotAPacket},
		{"inner shorter than an Ethernet header", layers.LinkTypeEthernet, ether(0x86DD, ipv6(17, udp(1, 3010, in[:13], 0, 0), 0, 0)), 0, ShortFrame},
		{"capture ends at the VXLAN header", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 4789, vxlan(1, in), 0, 0), nil, 0))[:14+20+8+8], 14 + 20 + 8 + 8 + len(in), TruncatedInner},
		{"capture ends 13 bytes into the inner frame", layers.LinkTypeEthernet, nic[:62+13], len(nic), TruncatedInner},
		{"empty", layers.LinkTypeEthernet, nil, 0, TruncatedHeader},
		{"cut inside the IPv6 header", layers.LinkTypeEthernet, nic[:40], 0, TruncatedHeader},
		{"cut inside the UDP header", layers.LinkTypeEthernet, nic[:58], 0, TruncatedHeader},
		{"cut inside a tag", layers.LinkTypeEthernet, ether(0x86DD, nil, [2]uint16{0x8100, 1})[:16], 0, TruncatedHeader},
		{"IPv4 header length 4", layers.LinkTypeEthernet, func() []byte { b := ether(0x0800, ipv4(17, nil, nil, 0)); b[14] = 0x41; return b }(), 0, BadIPHeader},
		{"version 4 in an IPv6 frame", layers.LinkTypeEthernet, func() []byte { b := slicesClone(nic); b[14] = 0x40; return b }(), 0, BadIPHeader},
		{"IPv4 first fragment", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 3010, in, 0, 0), nil, 0x2000)), 0, Fragment},
		{"IPv4 later fragment", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, in, nil, 185)), 0, Fragment},
		{"IPv6 fragment", layers.LinkTypeEthernet, ether(0x86DD, ipv6(44, cat([]byte{17, 0, 0, 1}, be32b(9), udp(1, 3010, in, 0, 0)), -1, 0)), 0, Fragment},
		{"IPv6 extension header overrunning", layers.LinkTypeEthernet, ether(0x86DD, ipv6(0, []byte{17, 200, 0, 0, 0, 0, 0, 0}, -1, 0)), 0, TruncatedHeader},
		{"VXLAN without the I flag", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 4789, cat([]byte{0, 0, 0, 0, 0, 0, 1, 0}, in), 0, 0), nil, 0)), 0, BadVXLANHeader},
		{"VXLAN-GPE carrying NSH on the VXLAN port", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udpOK(4789, vxlanGPE(1, 4, in)), nil, 0)), 0, VXLANGPEOnVXLANPort},
		{"VXLAN-GPE carrying IPv6 on the VXLAN port", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udpOK(4789, vxlanGPE(1, 2, in[14:])), nil, 0)), 0, VXLANGPEOnVXLANPort},
		{"VXLAN-GPE carrying NSH", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udpOK(4790, vxlanGPE(1, 4, in)), nil, 0)), 0, VXLANGPEUnsupportedProto},
		{"VXLAN-GPE carrying MPLS", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udpOK(4790, vxlanGPE(1, 5, in)), nil, 0)), 0, VXLANGPEUnsupportedProto},
		{"VXLAN-GPE version 1", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udpOK(4790, cat([]byte{0x1C, 0, 0, 3}, be32b(0), in)), nil, 0)), 0, BadVXLANHeader},
		{"GENEVE version 1", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 6081, cat([]byte{0x40, 0}, be16b(0x6558), be32b(0), in), 0, 0), nil, 0)), 0, BadGENEVEHeader},
		{"GENEVE options overrunning", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 6081, cat([]byte{0x3F, 0}, be16b(0x6558), be32b(0)), 0, 0), nil, 0)), 0, TruncatedHeader},
		{"GENEVE protocol type 0x0100: a length, not an EtherType", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 6081, geneve(1, 0x0100, nil, in), 0, 0), nil, 0)), 0, GENEVEUnsupportedProto},
		{"ERSPAN III carrying IP of version 5", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(1), erspan3(1, 2, false, []byte{0x50, 0})), nil, 0)), 0, BadIPHeader},
		{"capture ends at the ERSPAN III header of IP", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(1), erspan3(1, 2, false, in[14:])), nil, 0))[:14+20+8+12], 14 + 20 + 8 + 12 + len(in) - 14, TruncatedInner},
		{"GRE version 1", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, cat(be16b(1), be16b(0x88BE), in), nil, 0)), 0, BadGREHeader},
		{"ERSPAN II with version 2", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x88BE, false, nil, ptr(1), erspan3(1, 0, false, in)), nil, 0)), 0, BadERSPANHeader},
		{"ERSPAN III with version 1", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(1), cat(erspan2(1, nil), be32b(0), in)), nil, 0)), 0, BadERSPANHeader},
		{"ERSPAN III frame type 3", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(1), erspan3(1, 3, false, in)), nil, 0)), 0, ERSPANUnsupportedFrame},
		{"ERSPAN III subheader cut", layers.LinkTypeEthernet, ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(1), erspan3(1, 0, true, nil)[:14]), nil, 0)), 0, TruncatedHeader},
		{"TZSP version 2", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 37008, cat([]byte{2, 0, 0, 1, 1}, in), 0, 0), nil, 0)), 0, BadTZSPHeader},
		{"TZSP tag overrunning", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 37008, []byte{1, 0, 0, 1, 10, 200, 0}, 0, 0), nil, 0)), 0, BadTZSPHeader},
		{"TZSP without an end tag", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 37008, []byte{1, 0, 0, 1, 0, 0}, 0, 0), nil, 0)), 0, TruncatedHeader},
		{"TZSP carrying 802.11", layers.LinkTypeEthernet, ether(0x0800, ipv4(17, udp(1, 37008, cat([]byte{1, 0, 0, 18, 1}, in), 0, 0), nil, 0)), 0, TZSPUnsupportedEncap},
	}
	seen := map[Reason]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Result
			length := tt.length
			if length == 0 {
				length = len(tt.frame)
			}
			if got := decoder.Decode(tt.lt, tt.frame, length, &r); got != tt.want {
				t.Fatalf("reason %v, want %v", got, tt.want)
			}
		})
		seen[tt.want] = true
	}
	for r := OK + 1; r < NumReasons; r++ {
		if !seen[r] {
			t.Errorf("no test reaches reason %v", r)
		}
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// TestLengthFields checks the captured length wins over the envelope's
// length fields, which only cut padding when they are plausible.
func TestLengthFields(t *testing.T) {
	in := testkit.VMFrames(t)[30]
	padded := cat(ether(0x0800, ipv4(17, udp(1, 3010, in, 0xFFFF, 0), nil, 0)), make([]byte, 6))
	var r Result
	if reason := decoder.Decode(layers.LinkTypeEthernet, padded, len(padded), &r); reason != OK || !bytes.Equal(r.Inner, in) {
		t.Errorf("padding after a valid IPv4 total length was kept: %v, %d bytes", reason, len(r.Inner))
	}
	for _, plen := range []int{0, 0xFFFF, 3} {
		frame := ether(0x86DD, ipv6(17, udp(1, 3010, in, 0x1234, 0), plen, 0))
		if plen == 3 {
			// Too small to hold the UDP header: implausible, ignored? No:
			// it is plausible as a length, and cuts the datagram short.
			if reason := decoder.Decode(layers.LinkTypeEthernet, frame, len(frame), &r); reason != TruncatedHeader {
				t.Errorf("payload length 3: %v", reason)
			}
			continue
		}
		if reason := decoder.Decode(layers.LinkTypeEthernet, frame, len(frame), &r); reason != OK || !bytes.Equal(r.Inner, in) {
			t.Errorf("payload length %#x: %v, %d bytes", plen, reason, len(r.Inner))
		}
	}
}

// TestSnapLengthCut decodes envelopes whose capture was cut short: the
// inner frame's length on the wire comes from the outer headers' own
// lengths, as it does uncut, never from an Ethernet trailer after them.
func TestSnapLengthCut(t *testing.T) {
	in := testkit.VMFrames(t)[30]
	trailer := make([]byte, 2) // padding after the IP packet, or an FCS
	vx := func(ulen uint16) []byte { return udp(5000, 4789, vxlan(42, in), ulen, 0) }
	tests := []struct {
		name  string
		frame []byte
	}{
		{"nic as the NIC sends it", envelopes(t)[0].frame},
		{"vxlan over ipv4 with a trailer", cat(ether(0x0800, ipv4(17, vx(uint16(16+len(in))), nil, 0)), trailer)},
		{"vxlan over ipv6 with a trailer", cat(ether(0x86DD, ipv6(17, vx(uint16(16+len(in))), -1, 0)), trailer)},
		{"vxlan over ipv4, UDP length left 0", cat(ether(0x0800, ipv4(17, vx(0), nil, 0)), trailer)},
		// The datagram is shorter than the IP packet says: the rest is
		// not the UDP payload's, as Linux and Wireshark take it.
		{"vxlan over ipv4, a UDP length shorter than the IP packet", ether(0x0800, ipv4(17, cat(vx(uint16(16+len(in))), trailer), nil, 0))},
		{"erspan III over ipv4 with a trailer", cat(ether(0x0800, ipv4(47, gre(0x22EB, false, nil, ptr(3), erspan3(300, 0, false, in)), nil, 0)), trailer)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var whole Result
			if reason := decoder.Decode(layers.LinkTypeEthernet, tt.frame, len(tt.frame), &whole); reason != OK {
				t.Fatal(reason)
			}
			if whole.InnerLength != len(in) || !bytes.Equal(whole.Inner, in) {
				t.Fatalf("uncut: inner %d bytes of %d, want %d", len(whole.Inner), whole.InnerLength, len(in))
			}
			innerAt := bytes.Index(tt.frame, in)
			for _, keep := range []int{innerAt + 14, innerAt + 38, len(tt.frame) - 3} {
				var r Result
				if reason := decoder.Decode(layers.LinkTypeEthernet, tt.frame[:keep], len(tt.frame), &r); reason != OK {
					t.Fatalf("cut to %d bytes: %v", keep, reason)
				}
				if got := min(keep-innerAt, len(in)); len(r.Inner) != got || r.InnerLength != len(in) {
					t.Errorf("cut to %d bytes: inner %d bytes of %d, want %d of %d", keep, len(r.Inner), r.InnerLength, got, len(in))
				}
			}
		})
	}
}

func TestDecodePayload(t *testing.T) {
	in := testkit.VMFrames(t)[30]
	var r Result
	if reason := DecodePayload(KindNIC, in, len(in), &r); reason != OK || !bytes.Equal(r.Inner, in) || r.InnerLength != len(in) {
		t.Fatalf("nic payload: %v", reason)
	}
	if reason := DecodePayload(KindNIC, in[:20], len(in), &r); reason != OK || r.InnerLength != len(in) {
		t.Fatalf("payload cut by snaplen: %v, length %d", reason, r.InnerLength)
	}
	for n := range 14 {
		if reason := DecodePayload(KindNIC, in[:n], n, &r); reason != ShortFrame {
			t.Fatalf("%d-byte payload: %v", n, reason)
		}
	}
	if reason := DecodePayload(KindVXLAN, vxlan(9, in), len(in)+8, &r); reason != OK || r.ID != 9 || !bytes.Equal(r.Inner, in) {
		t.Fatalf("vxlan payload: %v", reason)
	}
}

func TestPortsAreConfigurable(t *testing.T) {
	ports := DefaultPorts()
	if err := ParsePorts("vxlan=8472,nic=4000,tzsp=0,vxlan=4789", ports); err != nil {
		t.Fatal(err)
	}
	if got := FormatPorts(ports); got != "geneve=6081,nic=4000,tzsp=0,vxlan=4789,vxlan=8472,vxlan-gpe=4790" {
		t.Fatalf("ports %s", got)
	}
	d := NewDecoder(ports)
	in := testkit.VMFrames(t)[30]
	var r Result
	for port, want := range map[uint16]Reason{8472: OK, 4789: OK, 3010: UnknownPort, 37008: UnknownPort} {
		f := ether(0x0800, ipv4(17, udp(1, port, vxlan(1, in), 0, 0), nil, 0))
		if port == 37008 {
			f = ether(0x0800, ipv4(17, udp(1, port, tzsp(nil, in), 0, 0), nil, 0))
		}
		if got := d.Decode(layers.LinkTypeEthernet, f, len(f), &r); got != want {
			t.Errorf("port %d: %v, want %v", port, got, want)
		}
	}
	if got := UDPPorts(ports); !slices.Equal(got, []uint16{4000, 4789, 4790, 6081, 8472}) {
		t.Errorf("UDPPorts %v", got)
	}
}

// TestParsePorts checks that every port given is taken, and a port that
// would belong to two kinds is refused with a line that says how to
// resolve it.
func TestParsePorts(t *testing.T) {
	nic4789 := func() Ports { p := DefaultPorts(); p[KindNIC] = []uint16{4789}; return p } // --port 4789
	tests := []struct {
		list  string
		ports Ports // DefaultPorts when nil
		want  string
		err   string
	}{
		{list: "vxlan=4789,vxlan=8472", want: "geneve=6081,nic=3010,tzsp=37008,vxlan=4789,vxlan=8472,vxlan-gpe=4790"},
		{list: "vxlan=8472", want: "geneve=6081,nic=3010,tzsp=37008,vxlan=8472,vxlan-gpe=4790"},
		{list: "vxlan=6081,geneve=0", want: "geneve=0,nic=3010,tzsp=37008,vxlan=6081,vxlan-gpe=4790"},
		{list: "vxlan=6081,geneve=6082", want: "geneve=6082,nic=3010,tzsp=37008,vxlan=6081,vxlan-gpe=4790"},
		{list: "geneve=4789,vxlan=4790,vxlan-gpe=0", want: "geneve=4789,nic=3010,tzsp=37008,vxlan=4790,vxlan-gpe=0"},
		{list: "", want: "geneve=6081,nic=3010,tzsp=37008,vxlan=4789,vxlan-gpe=4790"},
		{list: "nic=4789,vxlan=0", ports: nic4789(), want: "geneve=6081,nic=4789,tzsp=37008,vxlan=0,vxlan-gpe=4790"},
		{list: "vxlan=4789,geneve=4789", err: `invalid port mapping "geneve=4789": port 4789 is given to vxlan and to geneve: give each port one kind`},
		{list: "vxlan=4789,vxlan=4789", err: `invalid port mapping "vxlan=4789": port 4789 is given to vxlan twice`},
		{list: "vxlan=0,vxlan=8472", err: `invalid port mapping "vxlan=8472": vxlan=0 turns vxlan off, but the list also gives it a port`},
		{list: "vxlan=8472,vxlan=0", err: `invalid port mapping "vxlan=0": vxlan=0 turns vxlan off, but the list also gives it a port`},
		{list: "vxlan=6081", err: "port 6081 is both vxlan's and geneve's (geneve's default): add geneve=0 or geneve=PORT to --ports"},
		{list: "vxlan-gpe=4789", err: "port 4789 is both vxlan's and vxlan-gpe's (vxlan's default): add vxlan=0 or vxlan=PORT to --ports"},
		{list: "", ports: nic4789(), err: "port 4789 is both nic's and vxlan's (vxlan's default): add vxlan=0 or vxlan=PORT to --ports"},
		{list: "vxlan=4789", ports: nic4789(), err: "port 4789 is both nic's and vxlan's (which --ports does not name): add nic=0 or nic=PORT to --ports"},
		{list: "vxlan", err: "want KIND=PORT"},
		{list: "erspan2=1", err: "kind must be one of nic, vxlan, geneve, tzsp, vxlan-gpe"},
		{list: "nic=65536", err: "port must be 0-65535"},
		{list: "bogus=1", err: "kind must be one of"},
		{list: "nic=x", err: "port must be 0-65535"},
		{list: "vxlan=4789,", err: "want KIND=PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			ports := tt.ports
			if ports == nil {
				ports = DefaultPorts()
			}
			before := FormatPorts(ports)
			err := ParsePorts(tt.list, ports)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("ParsePorts(%q): %v", tt.list, err)
			case tt.err == "" && FormatPorts(ports) != tt.want:
				t.Fatalf("ParsePorts(%q): %s, want %s", tt.list, FormatPorts(ports), tt.want)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n")):
				t.Fatalf("ParsePorts(%q): %v, want an error line containing %q", tt.list, err, tt.err)
			case tt.err != "" && FormatPorts(ports) != before:
				t.Fatalf("ParsePorts(%q) failed but changed the ports to %s", tt.list, FormatPorts(ports))
			}
		})
	}
}

// TestRealCaptures decodes envelopes tcpdump recorded on a veth and on the
// "any" device (LINUX_SLL and LINUX_SLL2).
func TestRealCaptures(t *testing.T) {
	vm := testkit.VMFrames(t)
	sent := append(append([][]byte{}, vm[:24]...), vm[:8]...) // 24 over IPv6, then 8 over IPv4
	for _, name := range []string{"nic-ether.pcap", "nic-sll.pcap", "nic-sll2.pcap"} {
		t.Run(name, func(t *testing.T) {
			pkts, lt, err := pcapfile.ReadFile(filepath.Join("../testdata/envelopes", name))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) < 10 {
				t.Fatalf("only %d packets", len(pkts))
			}
			next := 0 // the capture holds a subsequence of what was sent
			for i, p := range pkts {
				var r Result
				if reason := decoder.Decode(lt, p.Data, p.Info.Length, &r); reason != OK {
					t.Fatalf("packet %d: %v", i, reason)
				}
				for next < len(sent) && !bytes.Equal(sent[next], r.Inner) {
					next++
				}
				if next == len(sent) {
					t.Fatalf("packet %d's inner frame is not one that was sent, in order", i)
				}
				next++
			}
		})
	}
	t.Run("vxlan.pcap", func(t *testing.T) {
		pkts, lt, err := pcapfile.ReadFile("../testdata/envelopes/vxlan.pcap")
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pkts {
			var r Result
			if reason := decoder.Decode(lt, p.Data, p.Info.Length, &r); reason != OK || r.Kind != KindVXLAN || r.ID != 42 {
				t.Fatalf("packet %d: %v, kind %v, vni %d", i, reason, r.Kind, r.ID)
			}
			if et := binary.BigEndian.Uint16(r.Inner[12:14]); et != 0x0800 && et != 0x0806 && et != 0x86DD {
				t.Fatalf("packet %d: inner ethertype %#x", i, et)
			}
		}
	})
	t.Run("nic-frag.pcap", func(t *testing.T) {
		pkts, lt, err := pcapfile.ReadFile("../testdata/envelopes/nic-frag.pcap")
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range pkts {
			var r Result
			if reason := decoder.Decode(lt, p.Data, p.Info.Length, &r); reason != Fragment {
				t.Fatalf("packet %d: %v, want fragment", i, reason)
			}
		}
	})
}

// TestBuildersAgreeWithTshark has Wireshark's dissectors read the test
// envelopes: they must find the same protocols, identifiers and inner
// Ethernet source address.
func TestBuildersAgreeWithTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed ('make test' installs it)")
	}
	envs := envelopes(t)
	name := filepath.Join(t.TempDir(), "envelopes.pcap")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for _, e := range envs {
		w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(e.frame), Length: len(e.frame)}, e.frame)
	}
	f.Close()
	out, err := exec.Command("tshark", "-r", name, "-d", "udp.port==3010,eth", "-T", "fields", "-E", "separator=|",
		"-e", "frame.protocols", "-e", "vxlan.vni", "-e", "geneve.vni", "-e", "erspan.spanid", "-e", "gre.key", "-e", "eth.src").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(envs) {
		t.Fatalf("tshark read %d packets, want %d", len(lines), len(envs))
	}
	wantProto := map[Kind]string{KindNIC: ":udp:eth:", KindVXLAN: ":vxlan:eth:", KindGENEVE: ":geneve:", KindTZSP: ":tzsp:eth:",
		KindERSPAN1: ":gre:erspan:eth:", KindERSPAN2: ":gre:erspan:eth:", KindERSPAN3: ":gre:erspan:", KindGRETAP: ":gre:eth:",
		// Wireshark 4.0 dissects VXLAN-GPE (vxlan.vni is there) but
		// leaves it out of frame.protocols.
		KindVXLANGPE: ":udp:"}
	for i, e := range envs {
		if e.raw {
			continue
		}
		f := strings.Split(lines[i], "|")
		protos, srcs := f[0], strings.Split(f[5], ",")
		var ids []uint64
		for _, v := range f[1:5] {
			for _, id := range strings.Split(v, ",") {
				if n, err := strconv.ParseUint(id, 0, 32); err == nil {
					ids = append(ids, n)
				}
			}
		}
		if !strings.Contains(protos, wantProto[e.kind]) {
			t.Errorf("%s: tshark sees %s, want %s", e.name, protos, wantProto[e.kind])
		}
		// A bare packet in GENEVE or VXLAN-GPE: what Wireshark finds
		// after the envelope is what the EtherType says, which the sink
		// writes behind an Ethernet header. (Wireshark leaves ERSPAN
		// III's frame type IP undissected: data.)
		if bare := map[uint16]string{0x0800: ":ip:", 0x86DD: ":ipv6:", 0x0806: ":arp:"}[e.etype]; e.kind != KindERSPAN3 && e.etype != 0 &&
			!strings.Contains(":"+strings.SplitN(protos, wantProto[e.kind], 2)[1]+":", bare) {
			t.Errorf("%s: tshark sees %s after %s, want %s", e.name, protos, wantProto[e.kind], bare)
		}
		if e.id != 0 && e.kind != KindNIC && !slices.Contains(ids, uint64(e.id)) {
			t.Errorf("%s: tshark's identifiers %v lack %d", e.name, ids, e.id)
		}
		if e.etype == 0 {
			inner := netHW(e.inner[6:12])
			if srcs[len(srcs)-1] != inner {
				t.Errorf("%s: tshark's innermost Ethernet source %s, want %s", e.name, srcs[len(srcs)-1], inner)
			}
		}
	}
}

func netHW(b []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

func BenchmarkDecode(b *testing.B) {
	e := envelopes(b)[0]
	var r Result
	b.SetBytes(int64(len(e.frame)))
	b.ReportAllocs()
	for b.Loop() {
		decoder.Decode(layers.LinkTypeEthernet, e.frame, len(e.frame), &r)
	}
	if !r.Src.IsValid() || r.Src != netip.MustParseAddr("2001:db8:1::1") {
		b.Fatal(r.Src)
	}
}
