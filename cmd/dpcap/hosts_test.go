package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/hosts"
)

// TestHostsOutput: every host's status in one table with a HOST column,
// or a list (-o yaml), the host that did not answer named in both and in
// the error.
func TestHostsOutput(t *testing.T) {
	sts := []hosts.Status{
		{Host: "https://hv-1:9312", Status: &control.Status{Backend: "dpservice"}},
		{Host: "https://hv-2:9312", Status: &control.Status{Active: true, Backend: "software", ID: "20261207-213045.123-3fa9c2", TimeLeft: "1m58s",
			Request: control.StartRequest{SinkNodeIP: "2001:db8::99", DstPort: 3010, VFs: []string{"vm-1"}},
			Ports:   []control.PortStatus{{Name: "vm-1", Tag: 7}}, Started: time.Date(2026, 12, 7, 21, 30, 45, 0, time.UTC)}},
		{Host: "https://hv-3:9312", Error: "cannot reach dpcap serve at https://hv-3:9312: dial tcp: connection refused"},
	}
	for _, tt := range []struct{ format, want string }{
		{"table", `HOST       CAPTURE     ID                          PORTS  SINK                 TIME LEFT  BACKEND
hv-1:9312  not active  -                           -      -                    -          dpservice
hv-2:9312  ACTIVE      20261207-213045.123-3fa9c2  vm-1   [2001:db8::99]:3010  1m58s      software
hv-3:9312  NO ANSWER   -                           -      -                    -          -
hv-3:9312: cannot reach dpcap serve at https://hv-3:9312: dial tcp: connection refused
`},
		{"yaml", `- host: "https://hv-1:9312"
  status:
    active: false
    backend: "dpservice"
- host: "https://hv-2:9312"
  status:
    active: true
    backend: "software"
    request:
      sink_node_ip: "2001:db8::99"
      udp_src_port: 0
      udp_dst_port: 3010
      vfs:
        - "vm-1"
    id: "20261207-213045.123-3fa9c2"
    time_left: "1m58s"
    ports:
      - name: "vm-1"
        tag: 7
        samples: 0
        failed: 0
        dropped: 0
    started: "2026-12-07T21:30:45Z"
- host: "https://hv-3:9312"
  error: "cannot reach dpcap serve at https://hv-3:9312: dial tcp: connection refused"
`},
	} {
		var out bytes.Buffer
		err := printHosts(&out, sts, tt.format)
		if out.String() != tt.want {
			t.Errorf("-o %s:\n%s\nwant\n%s", tt.format, out.String(), tt.want)
		}
		if err == nil || err.Error() != "no answer from hv-3:9312" {
			t.Errorf("-o %s: error %v", tt.format, err)
		}
	}
}
