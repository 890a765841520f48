package afpacket

import (
	"encoding/binary"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dpcap/dpcap/capture/steer"
)

// The filter is in place before the socket is bound: while lo is flooded
// with datagrams the filter rejects, captures opened (alone, and as a
// fanout group) never read one, not even in the first block.
func TestFilterBeforeBind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_PACKET needs root (CAP_NET_RAW)")
	}
	flooded, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer flooded.Close()
	c, err := net.DialUDP("udp4", nil, flooded.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var stop atomic.Bool
	var sent atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		payload := make([]byte, 100)
		for !stop.Load() {
			if _, err := c.Write(payload); err == nil {
				sent.Add(1)
			}
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()

	const port = 3010 // the captures' port; nothing is sent to it
	floodPort := uint16(flooded.LocalAddr().(*net.UDPAddr).Port)
	filter := vm(t, []uint16{port})
	prog, err := steer.Fanout(2, []uint16{port}, steer.NetOff)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Interface: "lo", Ports: []uint16{port}, BufferSize: 1 << 20}
	read := 0
	for i := range 40 {
		var srcs []*Source
		if i%2 == 0 {
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			srcs = []*Source{s}
		} else if srcs, err = OpenGroup(cfg, 2, prog); err != nil {
			t.Fatal(err)
		}
		for _, s := range srcs {
			// A frame let in during setup sits in the first block, which
			// the block timeout hands over: read until the ring is idle.
			for {
				pkts, err := s.Read(64)
				if err != nil {
					t.Fatal(err)
				}
				if len(pkts) == 0 {
					break
				}
				for _, p := range pkts {
					read++
					if n, _ := filter.Run(p.Data); n == 0 {
						dst := uint16(0)
						if len(p.Data) >= 38 {
							dst = binary.BigEndian.Uint16(p.Data[36:38])
						}
						t.Fatalf("open %d: read a %d-byte frame the filter rejects (UDP destination port %d; the flood goes to %d)",
							i, len(p.Data), dst, floodPort)
					}
				}
			}
			s.Close()
		}
	}
	if sent.Load() == 0 {
		t.Fatal("the flood sent nothing")
	}
	t.Logf("%d datagrams flooded during 40 opens; %d frames read, all accepted by the filter", sent.Load(), read)
}

// A ring nobody reads fills; the frames the kernel then cannot store are
// counted in Drops, which keeps its value once the capture is shut.
func TestDropsCounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_PACKET needs root (CAP_NET_RAW)")
	}
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.LocalAddr().(*net.UDPAddr).Port)
	s, err := Open(Config{Interface: "lo", Ports: []uint16{port}, BufferSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.DialUDP("udp4", nil, l.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 1400)
	var drops uint64
	for sent := 0; drops == 0; sent++ {
		if sent > 100000 {
			t.Fatalf("no drop counted after %d datagrams into a 1 MiB ring nobody reads", sent)
		}
		c.Write(payload)
		if sent%1000 == 999 {
			if drops, err = s.Drops(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Shut(); err != nil {
		t.Fatal(err)
	}
	shut, _ := s.Drops()
	for range 2000 {
		c.Write(payload)
	}
	if after, err := s.Drops(); err != nil || after != shut || shut < drops {
		t.Errorf("drops %d, at shut %d, after more traffic %d (%v): want counts that only grow, frozen at shut", drops, shut, after, err)
	}
}
