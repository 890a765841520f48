package udp

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/steer"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// TestGroupSteersByInnerFlow sends envelopes of 64 inner flows from one
// sender (one outer address and port, which the kernel's hash would put on
// one socket) to a group of two: each flow must reach exactly one socket,
// in order, the one the program picks in a user-space VM (which shows the
// kernel runs it at the UDP payload), and both sockets must get flows.
func TestGroupSteersByInnerFlow(t *testing.T) {
	prog, err := steer.Reuseport(2)
	if err != nil {
		t.Fatal(err)
	}
	group, err := ListenGroup(Config{Addr: netip.MustParseAddr("::1"), BufferSize: 8 << 20, BatchSize: 64,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, 2, prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range group {
		defer s.Close()
	}
	if group[0].LocalAddr() != group[1].LocalAddr() {
		t.Fatalf("the group listens on %s and %s", group[0].LocalAddr(), group[1].LocalAddr())
	}
	insts, _ := bpf.Disassemble(prog)
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(group[0].LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const flows, per = 64, 50
	want := map[uint16]int{} // flow (source port) -> socket
	for seq := range uint32(per) {
		for f := range uint16(flows) {
			// An untagged IPv4 TCP frame from host f%7 to host f%5, its
			// number in the flow as its sequence number.
			frame := testkit.Frame{SrcIP: netip.AddrFrom4([4]byte{10, 0, 0, byte(f % 7)}), DstIP: netip.AddrFrom4([4]byte{10, 0, 1, byte(f % 5)}),
				Proto: layers.IPProtocolTCP, SrcPort: 1000 + f, DstPort: 443, Seq: seq}.Bytes(t)
			if seq == 0 {
				i, _ := vm.Run(frame)
				want[1000+f] = i
			}
			if _, err := c.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[uint16]int{}
	next := map[uint16]uint32{}
	perSocket := make([]int, 2)
	for i, s := range group {
		s.SetReadDeadline(time.Now().Add(time.Second))
		for {
			pkts, err := s.Read(64)
			if err != nil {
				break
			}
			for _, p := range pkts {
				port := binary.BigEndian.Uint16(p.Data[34:])
				seq := binary.BigEndian.Uint32(p.Data[38:]) // TCP's sequence number
				if j, ok := got[port]; ok && j != i {
					t.Fatalf("flow %d reached sockets %d and %d", port, j, i)
				}
				got[port] = i
				if seq != next[port] {
					t.Fatalf("flow %d on socket %d: packet %d after %d", port, i, seq, next[port])
				}
				next[port]++
				perSocket[i]++
			}
		}
	}
	for f, i := range want {
		if got[f] != i || next[f] != per {
			t.Errorf("flow %d: %d packets on socket %d, want %d on socket %d (the program's choice)", f, next[f], got[f], per, i)
		}
	}
	if perSocket[0] == 0 || perSocket[1] == 0 {
		t.Errorf("packets per socket: %v", perSocket)
	}
	t.Logf("packets per socket: %v", perSocket)
}
