package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/testkit"
)

// twoHypervisors sends tagged and untagged envelopes from two hypervisor
// namespaces to a sink namespace, where sinkd runs with args, and returns
// the sink's daemon after it has written everything, and the port map.
func twoHypervisors(t *testing.T, args ...string) (*daemon, int) {
	t.Helper()
	hv1, hv2, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv1, sk, 1600, 1)
	testkit.Link(t, hv2, sk, 1600, 2)
	m := flowprog.TagTable{"vm-1": 1, "pf0": 2}.PortMap(netip.MustParseAddr("2001:db8:1::1"), []string{"vm-1", "pf0"})
	b, _ := json.Marshal(m)
	mapFile := filepath.Join(t.TempDir(), "ports.json")
	if err := os.WriteFile(mapFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, sk, append([]string{"--port-map", mapFile}, args...)...)
	replay(t, hv1, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	replay(t, hv1, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "2", "--count", "40")
	replay(t, hv1, "192.0.2.2:3010", vmTraffic, "--count", "10")
	replay(t, hv2, "[2001:db8:2::2]:3010", vmTraffic, "--tag", "1", "--count", "20")
	const total = 74 + 40 + 10 + 20
	d.waitMetric(t, "sinkd_packets_received_total", total)
	return d, total
}

// wantSources is what each source sent in twoHypervisors.
var wantSources = map[string]int{
	"vm-1":          74, // tag 1 of hypervisor 1, named by the port map
	"pf0":           40, // tag 2
	"192.0.2.1":     10, // untagged, over IPv4
	"2001:db8:2::1": 20, // hypervisor 2's tag 1: not in the map, so taken as untagged
}

// TestPcapngNamesEverySource writes a pcapng with one interface per source
// and checks tshark's and capinfos' view of it.
func TestPcapngNamesEverySource(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cap.pcapng")
	d, total := twoHypervisors(t, "-w", out)
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, name := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		got[name]++
	}
	for name, n := range wantSources {
		if got[name] != n {
			t.Errorf("interface %q: tshark counts %d packets, want %d (all: %v)", name, got[name], n, got)
		}
	}
	b, err = exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.interface_description").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "nic envelopes from 2001:db8:1::1, tag 1, to UDP port 3010") {
		t.Errorf("no interface description names sender, tag and port:\n%s", firstLines(string(b), 3))
	}
	info, err := exec.Command("capinfos", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	if s := string(info); !strings.Contains(s, "Number of interfaces in file: 4") || strings.Count(s, "Number of stat entries = 1") != 4 {
		t.Errorf("capinfos does not see 4 interfaces each with statistics:\n%s", s)
	}
	checkWithTools(t, out, total)
}

// TestPcapngRotates checks each rotated pcapng file is complete with its
// own interfaces.
func TestPcapngRotates(t *testing.T) {
	dir := t.TempDir()
	d, total := twoHypervisors(t, "-w", filepath.Join(dir, "cap.pcapng"), "-C", "20k")
	d.stop(t, syscall.SIGTERM)
	names := testkit.DirNames(t, dir)
	if len(names) < 3 {
		t.Fatalf("files %v: want several", names)
	}
	sum := 0
	for _, name := range names {
		path := filepath.Join(dir, name)
		n := len(readFrames(t, path))
		checkWithTools(t, path, n)
		sum += n
		b, _ := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.interface_name").Output()
		for _, iface := range strings.Fields(string(b)) {
			if iface == "" {
				t.Errorf("%s: a packet without an interface name", name)
			}
		}
	}
	if sum != total {
		t.Errorf("files hold %d packets, want %d", sum, total)
	}
}

// TestSplitBySource writes one pcap per source.
func TestSplitBySource(t *testing.T) {
	dir := t.TempDir()
	d, _ := twoHypervisors(t, "-w", filepath.Join(dir, "cap.pcap"), "--split-by", "source")
	d.stop(t, syscall.SIGTERM)
	files := map[string]int{
		"cap-vm-1.pcap": 74, "cap-pf0.pcap": 40, "cap-192.0.2.1.pcap": 10, "cap-2001_db8_2__1.pcap": 20,
	}
	if got := testkit.DirNames(t, dir); len(got) != len(files) {
		t.Fatalf("files %v, want %v", got, files)
	}
	for name, n := range files {
		path := filepath.Join(dir, name)
		checkWithTools(t, path, n)
		equalFrames(t, readFrames(t, path), testkit.VMFrames(t)[:n])
	}
}

// TestFilterAgreesWithTcpdump filters the inner frames and compares with
// what tcpdump selects from the same frames.
func TestFilterAgreesWithTcpdump(t *testing.T) {
	for _, expr := range []string{"tcp port 80", "udp port 53 or arp", "ip6 and not icmp6", "icmp[icmptype] == icmp-echoreply"} {
		t.Run(expr, func(t *testing.T) {
			want, err := exec.Command("tcpdump", "--count", "-r", vmTraffic, expr).Output()
			if err != nil {
				t.Fatal(err)
			}
			var n int
			fmt.Sscan(string(want), &n)
			if n == 0 || n == 74 {
				t.Fatalf("tcpdump picks %d of 74 frames: no test", n)
			}
			ns := testkit.NewNetNS(t)
			out := filepath.Join(t.TempDir(), "out.pcap")
			d := startSinkd(t, ns, append([]string{"-w", out}, strings.Fields(expr)...)...)
			replay(t, ns, "[::1]:3010", vmTraffic)
			m := d.waitMetric(t, "sinkd_packets_received_total", 74)
			d.stop(t, syscall.SIGTERM)
			if m["sinkd_packets_filtered_total"] != float64(74-n) {
				t.Errorf("filtered %v, want %d", m["sinkd_packets_filtered_total"], 74-n)
			}
			picked := filepath.Join(t.TempDir(), "picked.pcap")
			exec.Command("tcpdump", "-r", vmTraffic, "-w", picked, expr).Run()
			equalFrames(t, readFrames(t, out), readFrames(t, picked))
		})
	}
}

// TestFilterErrorsAreUsageErrors checks a bad expression is one line,
// exit 2, with libpcap's reason.
func TestFilterErrorsAreUsageErrors(t *testing.T) {
	cmd := exec.Command(bin("sinkd"), "-w", filepath.Join(t.TempDir(), "x.pcap"), "--metrics-addr", "", "tcp", "port")
	out, _ := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if cmd.ProcessState.ExitCode() != 2 || !strings.HasPrefix(lines[len(lines)-1], `sinkd: filter "tcp port"`) {
		t.Fatalf("exit %d:\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
