package afpacket

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// On loopback every datagram passes AF_PACKET twice, sent and received; a
// capture of lo holds each once, as tcpdump's does.
func TestLoopbackFramesOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_PACKET needs root (CAP_NET_RAW)")
	}
	const n = 50
	// A listener, so that no datagram draws a refusal.
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.LocalAddr().(*net.UDPAddr).Port)
	s, err := Open(Config{Interface: "lo", Ports: []uint16{port}, BufferSize: 8 << 20}) // blocks to spare: a single one drops while it is read
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.DialUDP("udp4", nil, l.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		if _, err := c.Write(fmt.Appendf(nil, "to %d: datagram %d", port, i)); err != nil {
			t.Fatal(err)
		}
	}
	// Other tests may send to the same port: ours name it.
	mine, last := fmt.Appendf(nil, "to %d: datagram ", port), fmt.Appendf(nil, "to %d: last", port)
	if _, err := c.Write(last); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for deadline := time.Now().Add(20 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("the last datagram never came; %d of %d before it", seen, n)
		}
		pkts, err := s.Read(64)
		if err != nil && !os.IsTimeout(err) {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if bytes.HasSuffix(p.Data, last) {
				if seen != n {
					t.Fatalf("captured %d frames of %d datagrams sent on lo", seen, n)
				}
				return
			}
			if bytes.Contains(p.Data, mine) {
				seen++
			}
		}
	}
}
