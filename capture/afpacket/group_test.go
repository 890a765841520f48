package afpacket

import (
	"os"
	"testing"

	"github.com/dpcap/dpcap/capture/steer"
)

// Two groups on one interface (two sinkds, or one restarted while the old
// one drains) get ids of their own, and each group's rings share one.
func TestGroupsOnOneInterfaceStayApart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("AF_PACKET needs root (CAP_NET_RAW)")
	}
	prog, err := steer.Fanout(2, []uint16{3010}, steer.NetOff)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Interface: "lo", Ports: []uint16{3010}, BufferSize: 1 << 20}
	ids := make([][]uint16, 2)
	for g := range ids {
		group, err := OpenGroup(cfg, 2, prog)
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		for _, s := range group {
			defer s.Close()
			id, err := fanoutID(s.ring.fd)
			if err != nil {
				t.Fatal(err)
			}
			ids[g] = append(ids[g], id)
		}
	}
	if ids[0][0] != ids[0][1] || ids[1][0] != ids[1][1] {
		t.Errorf("rings of one group in different groups: %v", ids)
	}
	if ids[0][0] == ids[1][0] {
		t.Errorf("both groups have id %d, want ids of their own", ids[0][0])
	}
}
