package control

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

// FuzzStartRequest feeds the API's start body: decoding and building the
// program must fail cleanly or produce a valid program.
func FuzzStartRequest(f *testing.F) {
	for _, s := range []string{
		`{"sink_node_ip":"2001:db8::9","udp_dst_port":3010,"vfs":["vm-1"],"pf0":true}`,
		`{"sink_node_ip":"2001:db8::9","udp_dst_port":3010,"vfs":["vm-1"],"filter":"proto=tcp,dst=10.0.0.0/8,dport=443"}`,
		`{"sink_node_ip":"10.0.0.1","udp_dst_port":0}`,
		`{"vfs":["pf1","pf1"]}`,
	} {
		f.Add([]byte(s))
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r StartRequest
		if json.Unmarshal(body, &r) != nil {
			return
		}
		p, err := s.build(r)
		if err != nil {
			return
		}
		if len(p.Install) == 0 || len(p.Tags.Ports) > flowprog.MaxPorts {
			t.Fatalf("a program with %d rules for %d ports", len(p.Install), len(p.Tags.Ports))
		}
		_ = p.Testpmd(p.DefaultPortIDs())
	})
}

// FuzzPortMap feeds port map files, which sinkd reads with --port-map.
func FuzzPortMap(f *testing.F) {
	f.Add([]byte(`{"ports":[{"source":"2001:db8::10","tag":1,"name":"vm-1"}]}`))
	f.Add([]byte(`{"version":2,"ports":[{"name":"vm-1","kind":"vf","ipv4":"10.0.0.1","underlay_route":"fc00::1/128"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, _, err := portmap.Parse(body)
		if err != nil {
			return
		}
		x, _ := portmap.NewIdentifier(m)
		for _, p := range m.Ports {
			if len(p.Name) > portmap.MaxNameLen || p.Name != portmap.CleanName(p.Name) {
				t.Fatalf("name %q is not clean", p.Name)
			}
			// The body doubles as an inner frame: any bytes must do.
			var f decap.Frame
			decap.ParseFrame(body, &f)
			match, tagged := x.Identify(p.Source, p.Tag, &f)
			if p.Tag == 0 {
				continue
			}
			if !tagged || !strings.HasPrefix(portmap.JoinNames(x.Names(match)), p.Name) {
				t.Fatalf("tag %d of %v identifies %q, not %q", p.Tag, p.Source, portmap.JoinNames(x.Names(match)), p.Name)
			}
			if name, ok := m.Lookup(p.Source, p.Tag); !ok || name == "" {
				t.Fatalf("a valid map does not find its own tag %d", p.Tag)
			}
		}
	})
}
