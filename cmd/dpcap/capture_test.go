//go:build !minimal

package main

import (
	"strings"
	"testing"

	"github.com/dpcap/dpcap/internal/testkit"
)

func TestParseCapture(t *testing.T) {
	const need = "--sink https://s:9311 --sink-node-ip 2001:db8::5 --udp-dst-port 3010 "
	tests := []struct {
		args               string
		tty                bool
		ports, filter, out string
		forD               string
		count              uint64
	}{
		{args: need + "--vf vm-1 --for 2m -w x.pcapng", tty: true, ports: "vm-1", out: "x.pcapng", forD: "2m0s"},
		{args: need + "--vf vm-1,vm-2 --pf 0 tcp port 443 -c 5", ports: "vm-1 vm-2 pf0", filter: "tcp port 443", out: "-", count: 5},
		{args: "--vf vm-1 udp " + need + "and not icmp -w -", ports: "vm-1", filter: "udp and not icmp", out: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			f, err := parseCapture(strings.Fields(tt.args), tt.tty)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(f.view.req.Ports, " ") != tt.ports || f.view.req.Filter != tt.filter || f.view.out != tt.out ||
				f.start.For != tt.forD || f.view.req.Count != tt.count || f.view.sink != "https://s:9311" || f.start.DstPort != 3010 {
				t.Errorf("ports %q filter %q out %q for %q count %d sink %q", f.view.req.Ports, f.view.req.Filter, f.view.out, f.start.For, f.view.req.Count, f.view.sink)
			}
		})
	}
	if _, err := parseCapture(strings.Fields(need+"--vf vm-1"), true); err == nil || !strings.Contains(err.Error(), "no output") {
		t.Errorf("no -w on a terminal: %v", err)
	}
	// With hosts, --ca is theirs too: taken without --sink.
	ca := testkit.NewCerts(t, "hv-1").CA
	f, err := parseCapture(strings.Fields("--vf vm-1 --sink-node-ip ::1 --udp-dst-port 1 -w x --host https://hv-1:9312 --ca "+ca), false)
	if err != nil || f.hosts == nil || f.view.sink != "" {
		t.Errorf("--host with --ca: hosts %v, sink %q, %v", f.hosts, f.view.sink, err)
	}
	if f, err := parseCapture(strings.Fields(need+"--vf vm-1 -w x"), false); err != nil || f.hosts != nil {
		t.Errorf("without host flags: hosts %v, %v", f.hosts, err)
	}
}
