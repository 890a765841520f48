package flowprog

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/decap"
)

func baseConfig() Config {
	return Config{
		Sink: netip.MustParseAddr("2001:db8:f::1"), Underlay: netip.MustParseAddr("2001:db8::10"),
		SrcPort: 3000, DstPort: 3010,
		RouterMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 1}, PFMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 2},
		VFs: []string{"vm-1"}, PF0: true,
	}
}

// TestTestpmdRendering checks the program against the rule set of
// docs/ENVELOPE.md §3, for a VF and PF0, line by line.
func TestTestpmdRendering(t *testing.T) {
	p, err := Build(baseConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := `# dpcap capture program: sink 2001:db8:f::1, UDP 3000 -> 3010
# tags in the IPv6 flow label: vm-1=484770 (port 1), pf0=593350 (port 0)
# envelope: from PF0 0c:42:a1:00:00:02 to router 0c:42:a1:00:00:01, underlay 2001:db8::10 -> sink 2001:db8:f::1
set raw_encap 0 eth dst is 0c:42:a1:00:00:01 src is 0c:42:a1:00:00:02 type is 0x86dd / ipv6 src is 2001:db8::10 dst is 2001:db8:f::1 proto is 17 hop is 64 tc is 0 flow is 484770 / udp src is 3000 dst is 3010 / end_set
set sample_actions 0 raw_encap index 0 / port_id id 0 / end
set raw_encap 1 eth dst is 0c:42:a1:00:00:01 src is 0c:42:a1:00:00:02 type is 0x86dd / ipv6 src is 2001:db8::10 dst is 2001:db8:f::1 proto is 17 hop is 64 tc is 0 flow is 593350 / udp src is 3000 dst is 3010 / end_set
set sample_actions 1 raw_encap index 1 / port_id id 0 / end
flow create 1 group 1 priority 0 transfer pattern eth / end actions sample ratio 1 index 0 / jump group 2 / end
flow create 1 group 0 priority 0 transfer pattern eth / end actions jump group 1 / end
flow create 0 group 1 priority 0 transfer pattern eth / end actions sample ratio 1 index 1 / jump group 2 / end
flow create 0 group 0 priority 1 transfer pattern eth / end actions jump group 1 / end
`
	if got := p.Testpmd(p.DefaultPortIDs()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// The sample list carries the port's own template and targets PF0.
	r := p.Install[0]
	s := r.Actions[0]
	if s.Type != ActionSample || s.Ratio != 1 || len(s.Sample) != 2 || s.Sample[1].Port != PF0 || len(s.Sample[0].Data) != decap.EnvelopeLen {
		t.Fatalf("VF sample action %+v", s)
	}
	if tmpl := p.Templates["vm-1"]; string(s.Sample[0].Data) != string(tmpl[:]) {
		t.Fatal("the sample list does not carry vm-1's template")
	}
}

func TestFilteredCapture(t *testing.T) {
	cfg := baseConfig()
	cfg.PF0 = false
	m, err := ParseMatch("proto=tcp,dst=10.0.0.0/8,dport=443")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Filter = m
	p, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.PcapFilter(), "ip and tcp and dst net 10.0.0.0/8 and dst port 443"; got != want {
		t.Errorf("pcap filter %q, want %q", got, want)
	}
	got := p.Testpmd(p.DefaultPortIDs())
	for _, line := range []string{
		"# filter: ip=4,proto=tcp,dst=10.0.0.0/8,dport=443",
		"flow create 1 group 1 priority 0 transfer pattern eth / ipv4 dst spec 10.0.0.0 dst prefix 8 proto is 6 / tcp dst is 443 / end actions sample ratio 1 index 0 / jump group 2 / end",
		// What the filter does not match still reaches forwarding.
		"flow create 1 group 1 priority 1 transfer pattern eth / end actions jump group 2 / end",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("program lacks\n%s\ngot\n%s", line, got)
		}
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no sink", func(c *Config) { c.Sink = netip.Addr{} }, "no sink node IP"},
		{"IPv4 sink", func(c *Config) { c.Sink = netip.MustParseAddr("192.0.2.1") }, "is not IPv6"},
		{"port 0", func(c *Config) { c.DstPort = 0 }, "1-65535"},
		{"no ports", func(c *Config) { c.VFs, c.PF0 = nil, false }, "no port to capture"},
		{"17 ports", func(c *Config) {
			c.VFs = nil
			for i := range 17 {
				c.VFs = append(c.VFs, "vm-"+string(rune('a'+i)))
			}
		}, "at most 16"},
		{"duplicate", func(c *Config) { c.VFs = []string{"vm-1", "vm-1"} }, "given twice"},
		// Sinks clean names: these are one port to them.
		{"duplicate once cleaned", func(c *Config) { c.VFs = []string{"vm-1", "vm-1\x1b[0m"} }, `sinks read both as "vm-1"`},
		{"duplicate with a space", func(c *Config) { c.VFs = []string{" vm-1", "vm-1"} }, `sinks read both as "vm-1"`},
		{"no printable character", func(c *Config) { c.VFs = []string{"\a\x1b[0m"} }, "no printable character"},
		{"pf0 once cleaned", func(c *Config) { c.VFs = []string{"pf0\a"} }, "not a VF"},
		{"pf1 as a VF", func(c *Config) { c.VFs = []string{"pf1"} }, "not a VF"},
		{"mixed filter", func(c *Config) {
			c.Filter = &Match{Src: netip.MustParsePrefix("10.0.0.0/8"), Dst: netip.MustParsePrefix("2001:db8::/32")}
		}, "mixes IPv4 and IPv6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.mod(&c)
			if _, err := Build(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := ParsePF("1"); err == nil || !strings.Contains(err.Error(), "switchdev") {
		t.Errorf("PF1: %v", err)
	}
	for _, bad := range []string{"proto=icmp", "dport=443", "src=nope", "dport=0", "ip=5", "color=red", "proto"} {
		if _, err := ParseMatch(bad); err == nil {
			t.Errorf("ParseMatch(%q) accepted", bad)
		}
	}
}
