package decap

import "testing"

// TestParseFrame reads the source addresses behind any number of tags,
// and nothing past the end of a frame cut short.
func TestParseFrame(t *testing.T) {
	ip4 := ipv4(ipProtoUDP, make([]byte, 8), nil, 0)
	ip6 := ipv6(ipProtoUDP, make([]byte, 8), -1, 0)
	arp := cat(be32b(0x00010800), []byte{6, 4}, be16b(1), macA, v4B, make([]byte, 10))
	for _, tt := range []struct {
		name           string
		frame          []byte
		src4, ipv6, ok bool
	}{
		{"ipv4", ether(etherIPv4, ip4), true, false, true},
		{"ipv4 behind three tags", ether(etherIPv4, ip4, [2]uint16{EtherTypeQinQ, 1}, [2]uint16{EtherTypeQinQOld, 2}, [2]uint16{EtherTypeVLAN, 3}), true, false, true},
		{"ipv6 behind a tag", ether(etherIPv6, ip6, [2]uint16{EtherTypeVLAN, 3}), false, true, true},
		{"arp", ether(etherARP, arp), true, false, true},
		{"ipv6 cut short", ether(etherIPv6, ip6)[:EtherHeaderLen+39], false, false, true},
		{"tag cut short", ether(etherIPv4, ip4, [2]uint16{EtherTypeVLAN, 3})[:EtherHeaderLen+2], false, false, true},
		{"no ethernet header", macA, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			ParseFrame(tt.frame, &f)
			if f.HasMAC != tt.ok || f.HasSrc4 != tt.src4 || f.HasIPv6 != tt.ipv6 {
				t.Fatalf("mac %v, ipv4 %v, ipv6 %v; want %v, %v, %v", f.HasMAC, f.HasSrc4, f.HasIPv6, tt.ok, tt.src4, tt.ipv6)
			}
			if f.HasMAC && string(f.SrcMAC[:]) != string(macA) {
				t.Errorf("source MAC %x, want %x", f.SrcMAC, macA)
			}
			if f.HasSrc4 && string(f.Src4[:]) != string(v4A) && string(f.Src4[:]) != string(v4B) {
				t.Errorf("source IPv4 %v", f.Src4)
			}
			if f.HasIPv6 && (string(f.Src6[:]) != string(v6A) || string(f.Dst6[:]) != string(v6B)) {
				t.Errorf("IPv6 %x to %x", f.Src6, f.Dst6)
			}
		})
	}
}
