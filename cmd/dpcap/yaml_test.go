package main

import (
	"bytes"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/portmap"
)

func TestStatusYAMLKeepsCountersExact(t *testing.T) {
	active := control.Status{
		Active:  true,
		Backend: "software",
		Request: control.StartRequest{SinkNodeIP: "2001:db8::9", DstPort: 3010, VFs: []string{"vm-1", "yes"}},
		Ports: []control.PortStatus{
			{Name: "vm-1", Tag: 1, Samples: 1234567, Failed: 1 << 40, Dropped: math.MaxUint64},
			{Name: "yes", Tag: 1048575, Samples: 9007199254740993}, // 2^53+1: a float64 cannot hold it
		},
		PortMap:     portmap.Map{Version: 2, Ports: []portmap.Port{{Source: netip.MustParseAddr("2001:db8::10"), Tag: 1, Name: "vm-1", Kind: "vf"}}},
		PortMapFile: "/var/lib/dpcap/portmap.json",
		Started:     time.Date(2026, 11, 23, 2, 30, 0, 0, time.UTC),
	}
	tests := []struct {
		name string
		st   control.Status
		want string
	}{
		{"not active", control.Status{Backend: "software", Problem: "it broke: \"badly\""}, `active: false
backend: "software"
problem: "it broke: \"badly\""
`},
		{"active with large counters", active, `active: true
backend: "software"
request:
  sink_node_ip: "2001:db8::9"
  udp_src_port: 0
  udp_dst_port: 3010
  vfs:
    - "vm-1"
    - "yes"
ports:
  - name: "vm-1"
    tag: 1
    samples: 1234567
    failed: 1099511627776
    dropped: 18446744073709551615
  - name: "yes"
    tag: 1048575
    samples: 9007199254740993
    failed: 0
    dropped: 0
port_map:
  version: 2
  ports:
    - name: "vm-1"
      source: "2001:db8::10"
      tag: 1
      kind: "vf"
port_map_file: "/var/lib/dpcap/portmap.json"
started: "2026-11-23T02:30:00Z"
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printStatus(&b, tt.st, "yaml"); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
			if strings.Contains(b.String(), "e+") {
				t.Error("a number printed as a float")
			}
		})
	}
}
