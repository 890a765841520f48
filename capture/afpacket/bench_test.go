package afpacket

import (
	"net"
	"os"
	"testing"
)

// BenchmarkRead measures the receive path from a ring that holds a burst of
// envelopes sent on lo: the reads, not the sends, are timed.
func BenchmarkRead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("AF_PACKET needs root (CAP_NET_RAW)")
	}
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.LocalAddr().(*net.UDPAddr).Port)
	s, err := Open(Config{Interface: "lo", Ports: []uint16{port}, BufferSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c, err := net.DialUDP("udp4", nil, l.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 1000)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		burst := min(b.N-done, 20000)
		for range burst {
			if _, err := c.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for got := 0; got < burst; {
			pkts, err := s.Read(64)
			if err != nil {
				b.Fatal(err)
			}
			for _, p := range pkts {
				if len(p.Data) == 14+20+8+len(payload) {
					got++
				}
			}
		}
		done += burst
	}
}
