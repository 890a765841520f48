package steer

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

const nicPort = 3010

// flow is an inner conversation, sent in one direction.
type flow struct {
	src, dst     net.IP
	proto        layers.IPProtocol
	sport, dport uint16
}

func (f flow) reverse() flow {
	return flow{src: f.dst, dst: f.src, proto: f.proto, sport: f.dport, dport: f.sport}
}

// flowFrame builds an inner Ethernet frame of f, with the given VLAN tags and,
// for IPv4, fragment flags and offset. Protocols without a header of
// testkit's carry the ports where TCP and UDP have them.
func flowFrame(t *testing.T, f flow, vlans []uint16, frag uint16) []byte {
	t.Helper()
	src, _ := netip.AddrFromSlice(f.src)
	dst, _ := netip.AddrFromSlice(f.dst)
	fr := testkit.Frame{VLANs: vlans, SrcIP: src, DstIP: dst, Proto: f.proto, SrcPort: f.sport, DstPort: f.dport, Frag: frag,
		Payload: []byte("payload")}
	if f.proto != layers.IPProtocolTCP && f.proto != layers.IPProtocolUDP {
		ports := make([]byte, 8)
		binary.BigEndian.PutUint16(ports, f.sport)
		binary.BigEndian.PutUint16(ports[2:], f.dport)
		fr.Payload = append(ports, fr.Payload...)
	}
	return fr.Bytes(t)
}

// envelope wraps inner in Ether | IP | UDP to port, as the whole frame an
// AF_PACKET socket sees.
func envelope(t *testing.T, outerSrc, outerDst net.IP, port uint16, inner []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 1, 2}}
	udp := &layers.UDP{SrcPort: 49152, DstPort: layers.UDPPort(port)}
	var ip gopacket.SerializableLayer
	if outerSrc.To4() != nil {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: outerSrc, DstIP: outerDst}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: outerSrc, DstIP: outerDst}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, ip, udp, gopacket.Payload(inner)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newVM(t *testing.T, raw []bpf.RawInstruction) *bpf.VM {
	t.Helper()
	insts, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the program does not disassemble")
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatalf("the VM rejects the program: %v", err)
	}
	return vm
}

func pick(t *testing.T, vm *bpf.VM, pkt []byte) int {
	t.Helper()
	i, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return i
}

// randomFlows returns n flows of every protocol, half IPv4 and half IPv6.
func randomFlows(n int, seed uint64) []flow {
	r := rand.New(rand.NewPCG(seed, 1))
	protos := []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolSCTP, layers.IPProtocolICMPv4}
	fs := make([]flow, n)
	for i := range fs {
		ln := 4
		if i%2 == 1 {
			ln = 16
		}
		src, dst := make(net.IP, ln), make(net.IP, ln)
		for j := range ln {
			src[j], dst[j] = byte(r.Uint32()), byte(r.Uint32())
		}
		fs[i] = flow{src: src, dst: dst, proto: protos[i%len(protos)], sport: uint16(r.Uint32()), dport: uint16(r.Uint32())}
	}
	return fs
}

func TestReuseportKeepsFlowsTogetherAndSpreadsThem(t *testing.T) {
	for _, n := range []int{2, 3, 16} {
		vm := newVM(t, mustReuseport(t, n))
		counts := make([]int, n)
		flows := randomFlows(2000, uint64(n))
		for _, f := range flows {
			i := pick(t, vm, flowFrame(t, f, nil, 0))
			if i < 0 || i >= n {
				t.Fatalf("n=%d: flow %+v steered to %d", n, f, i)
			}
			counts[i]++
			for name, same := range map[string][]byte{
				"the reverse direction":   flowFrame(t, f.reverse(), nil, 0),
				"a VLAN tag":              flowFrame(t, f, []uint16{100}, 0),
				"two VLAN tags (QinQ)":    flowFrame(t, f, []uint16{100, 200}, 0),
				"the reverse, tagged":     flowFrame(t, f.reverse(), []uint16{7}, 0),
				"a longer frame and tail": append(flowFrame(t, f, nil, 0), make([]byte, 900)...),
			} {
				if j := pick(t, vm, same); j != i {
					t.Errorf("n=%d: flow %+v: %s goes to %d, the flow to %d", n, f, name, j, i)
				}
			}
		}
		// 2000 flows: each socket gets its share within 30%.
		for i, c := range counts {
			if want := len(flows) / n; c < want*7/10 || c > want*13/10 {
				t.Errorf("n=%d: socket %d got %d of %d flows (counts %v)", n, i, c, len(flows), counts)
			}
		}
	}
}

func TestReuseportPortsCount(t *testing.T) {
	// Many connections between the same two hosts spread over the
	// sockets; without ports (ICMP) they would share one.
	vm := newVM(t, mustReuseport(t, 2))
	seen := map[int]bool{}
	for port := uint16(1000); port < 1064; port++ {
		seen[pick(t, vm, flowFrame(t, flow{src: net.IP{10, 0, 0, 1}, dst: net.IP{10, 0, 0, 2}, proto: layers.IPProtocolTCP, sport: port, dport: 443}, nil, 0))] = true
	}
	if len(seen) != 2 {
		t.Errorf("64 TCP connections between two hosts all went to socket %v", seen)
	}
}

func TestReuseportSpreadsFlowsThatCountUp(t *testing.T) {
	// 128 flows whose source address and port both count up, as a
	// generator makes them: XORing the fields raw would cancel them out.
	vm := newVM(t, mustReuseport(t, 2))
	counts := make([]int, 2)
	for i := range 128 {
		counts[pick(t, vm, flowFrame(t, flow{src: net.IP{10, 0, byte(i / 100), byte(i%100 + 1)}, dst: net.IP{10, 1, 0, 1},
			proto: layers.IPProtocolTCP, sport: uint16(1000 + i), dport: 443}, nil, 0))]++
	}
	if counts[0] < 128*35/100 || counts[1] < 128*35/100 {
		t.Errorf("128 counting flows split %v", counts)
	}
}

func TestReuseportFragmentsFollowTheirAddresses(t *testing.T) {
	vm := newVM(t, mustReuseport(t, 16))
	for _, f := range randomFlows(200, 7) {
		if f.src.To4() == nil {
			continue
		}
		first := pick(t, vm, flowFrame(t, f, nil, 0x2000)) // MF, offset 0
		other := f
		other.sport, other.dport = 1, 2 // a later fragment's bytes are data, not ports
		if later := pick(t, vm, flowFrame(t, other, nil, 185)); later != first {
			t.Errorf("flow %+v: first fragment to %d, a later one to %d", f, first, later)
		}
	}
}

func TestReuseportShortAndOtherFrames(t *testing.T) {
	vm := newVM(t, mustReuseport(t, 4))
	f := flow{src: net.IP{10, 0, 0, 1}, dst: net.IP{10, 0, 0, 2}, proto: layers.IPProtocolTCP, sport: 1, dport: 2}
	full := flowFrame(t, f, nil, 0)
	for n := 0; n < len(full); n++ {
		if i := pick(t, vm, full[:n]); i < 0 || i >= 4 {
			t.Fatalf("a frame cut to %d bytes goes to %d", n, i)
		}
	}
	// ARP: by its MAC addresses, both ways.
	arp := make([]byte, 42)
	copy(arp, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	rev := append([]byte(nil), arp...)
	copy(rev, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2})
	if a, b := pick(t, vm, arp), pick(t, vm, rev); a != b {
		t.Errorf("ARP one way to %d, the other to %d", a, b)
	}
}

func TestFanoutMatchesReuseportForNICEnvelopes(t *testing.T) {
	const n = 4
	reuse := newVM(t, mustReuseport(t, n))
	const nicPort2 = 4000 // a second NIC port (--ports nic=3010,nic=4000)
	fan, err := Fanout(n, []uint16{nicPort, nicPort2}, 14)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, fan)
	hv6, sink6 := net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	hv4, sink4 := net.IP{192, 0, 2, 1}, net.IP{192, 0, 2, 2}
	spread := map[int]bool{}
	for _, f := range randomFlows(400, 3) {
		inner := flowFrame(t, f, nil, 0)
		want := pick(t, reuse, inner)
		for _, env := range [][]byte{envelope(t, hv6, sink6, nicPort, inner), envelope(t, hv4, sink4, nicPort, inner),
			envelope(t, hv6, sink6, nicPort2, inner), envelope(t, hv4, sink4, nicPort2, inner)} {
			if got := pick(t, vm, env); got != want {
				t.Errorf("flow %+v: fanout steers the envelope to %d, reuseport the payload to %d", f, got, want)
			}
		}
		spread[want] = true
		// Other kinds (VXLAN here) go by the outer addresses: one
		// sender's envelopes, whatever they carry, to one socket.
		if a, b := pick(t, vm, envelope(t, hv6, sink6, 4789, inner)), pick(t, vm, envelope(t, hv6, sink6, 4789, flowFrame(t, randomFlows(1, 9)[0], nil, 0))); a != b {
			t.Errorf("VXLAN envelopes of one sender go to %d and %d", a, b)
		}
	}
	if len(spread) != n {
		t.Errorf("400 flows reached only sockets %v", spread)
	}
	// Not IP: the first socket.
	if i := pick(t, vm, append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06}, make([]byte, 28)...)); i != 0 {
		t.Errorf("ARP goes to %d", i)
	}
}

func TestBadGroups(t *testing.T) {
	for _, n := range []int{0, -1, MaxSockets + 1} {
		if _, err := Reuseport(n); err == nil {
			t.Errorf("Reuseport(%d) succeeded", n)
		}
		if _, err := Fanout(n, []uint16{nicPort}, NetOff); err == nil {
			t.Errorf("Fanout(%d) succeeded", n)
		}
	}
}

func mustReuseport(t *testing.T, n int) []bpf.RawInstruction {
	t.Helper()
	raw, err := Reuseport(n)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// outerFragments cuts a whole envelope made by envelope into a first
// fragment (the outer headers and the UDP header, to the NIC port) and a
// later one (bytes of the inner frame where the UDP header was): every
// fragment of one outer datagram.
func outerFragments(env []byte, r *rand.Rand) (first, later []byte) {
	first, later = append([]byte(nil), env...), append([]byte(nil), env...)
	if env[12] == 0x08 { // IPv4: MF at offset 0, then offset 185 (1480 bytes)
		binary.BigEndian.PutUint16(first[14+6:], 0x2000)
		binary.BigEndian.PutUint16(later[14+6:], 185)
		for i := 14 + 20; i < len(later); i++ {
			later[i] = byte(r.Uint32())
		}
		return first, later
	}
	// IPv6: a fragment header between the IPv6 and UDP headers.
	frag := func(b []byte, off uint16, more bool) []byte {
		fh := []byte{b[14+6], 0, 0, 0, 0, 0, 0x12, 0x34}
		if more {
			off |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], off)
		b[14+6] = 44
		return append(append(append([]byte(nil), b[:54]...), fh...), b[54:]...)
	}
	first, later = frag(first, 0, true), frag(later, 1448, false)
	for i := 14 + 48; i < len(later); i++ {
		later[i] = byte(r.Uint32())
	}
	return first, later
}

func TestFanoutKeepsOuterFragmentsTogether(t *testing.T) {
	// The fragments of one outer datagram must reach the worker that
	// reassembles it: the first fragment holds the NIC port, a later one
	// holds no UDP header at all; both go by the outer addresses.
	const n = 4
	fan, err := Fanout(n, []uint16{nicPort}, 14)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, fan)
	r := rand.New(rand.NewPCG(5, 1))
	spread := map[int]bool{}
	for i, f := range randomFlows(400, 11) {
		var hv, sk net.IP
		if i%2 == 0 {
			hv, sk = net.IP{192, 0, byte(r.Uint32()), byte(r.Uint32())}, net.IP{192, 0, 2, 2}
		} else {
			hv, sk = net.ParseIP("2001:db8::"), net.ParseIP("2001:db8::2")
			hv[14], hv[15] = byte(r.Uint32()), byte(r.Uint32())
		}
		first, later := outerFragments(envelope(t, hv, sk, nicPort, flowFrame(t, f, nil, 0)), r)
		a, b := pick(t, vm, first), pick(t, vm, later)
		if a != b {
			t.Errorf("sender %v: the first fragment goes to %d, a later one to %d", hv, a, b)
		}
		spread[a] = true
	}
	if len(spread) != n {
		t.Errorf("400 senders' fragments reached only sockets %v", spread)
	}
}
