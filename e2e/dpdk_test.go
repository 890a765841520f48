package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

const ealNoHardware = "--no-huge --no-pci -m 256 --no-shconf --log-level error"

// TestTestpmdAcceptsTheRendering feeds dpcap start --dry-run's program to
// the real dpdk-testpmd on null ports, with flow validate for flow create:
// every command must parse; the PMD may only refuse for lack of support.
func TestTestpmdAcceptsTheRendering(t *testing.T) {
	for _, filter := range []string{"", "proto=tcp,dst=10.0.0.0/8,dport=443", "proto=udp,src=2001:db8:aa::/48,sport=53"} {
		args := []string{"start", "--dry-run", "--sink-node-ip", "2001:db8:f::1", "--udp-dst-port", "3010", "--udp-src-port", "3000",
			"--vf", "vm-1,vm-2", "--pf", "0", "--underlay-ip", "2001:db8::10", "--router-mac", "0c:42:a1:00:00:01", "--pf-mac", "0c:42:a1:00:00:02"}
		if filter != "" {
			args = append(args, "--filter", filter)
		}
		program, code := dpcap(t, args...)
		if code != 0 {
			t.Fatalf("dry run: %s", program)
		}
		for _, want := range []string{"# envelope: from PF0 0c:42:a1:00:00:02 to router 0c:42:a1:00:00:01, underlay 2001:db8::10",
			"eth dst is 0c:42:a1:00:00:01 src is 0c:42:a1:00:00:02 type is 0x86dd / ipv6 src is 2001:db8::10 "} {
			if !strings.Contains(program, want) {
				t.Fatalf("dry run lacks %q:\n%s", want, program)
			}
		}
		var cmds []string
		for _, l := range strings.Split(program, "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			cmds = append(cmds, strings.Replace(l, "flow create", "flow validate", 1))
		}
		cmd := exec.Command("dpdk-testpmd", append(strings.Fields(ealNoHardware),
			"--vdev", "net_null0", "--vdev", "net_null1", "--vdev", "net_null2", "--", "-i", "--total-num-mbufs=2048")...)
		cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\nquit\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("testpmd: %v\n%s", err, out)
		}
		// Split testpmd's output at its prompts: one answer per command.
		answers := strings.Split(string(out), "testpmd> ")[1:]
		if len(answers) != len(cmds)+1 {
			t.Fatalf("testpmd answered %d commands of %d:\n%s", len(answers), len(cmds)+1, out)
		}
		for i, c := range cmds {
			a := answers[i]
			if strings.Contains(a, "Bad arguments") || strings.Contains(a, "bad") || strings.Contains(a, "Unrecognized") {
				t.Errorf("filter %q: testpmd cannot parse\n%s\n%s", filter, c, a)
			}
			if strings.HasPrefix(c, "flow validate") && !strings.Contains(a, "Function not implemented") {
				t.Errorf("filter %q: %s\nanswered %q, want the PMD's refusal", filter, c, a)
			}
			if strings.HasPrefix(c, "set ") && strings.TrimSpace(strings.TrimPrefix(a, c)) != "" {
				t.Errorf("filter %q: %s\nanswered %q", filter, c, a)
			}
		}
	}
}

// TestDPDKBackendOnPortsThatCannotSample runs dpcap serve --backend dpdk
// on ports without hardware: start fails with one line naming the port and
// what the PMD refused, and nothing is left captured.
func TestDPDKBackendOnPortsThatCannotSample(t *testing.T) {
	for _, tt := range []struct {
		name, vdevs, want string
	}{
		{"net_null", "--vdev net_null0 --vdev net_null1", "port vm-1 (net_null1): validate rule (group 1, priority 0; pattern eth; actions sample[raw_encap port_id] jump): Function not implemented (this PMD has no rte_flow support)"},
		{"net_tap", "--vdev net_tap0,iface=dpcaptap0 --vdev net_tap1,iface=dpcaptap1", "port vm-1 (net_tap1): validate rule (group 1, priority 0; pattern eth; actions sample[raw_encap port_id] jump): attributes refused: transfer is not supported: Operation not supported"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := testkit.NewNetNS(t) // net_tap makes interfaces: keep them in a namespace of the test's
			dev := strings.Fields(tt.vdevs)
			pf, vm := strings.Split(dev[1], ",")[0], strings.Split(dev[3], ",")[0]
			tmp := t.TempDir()
			socket := filepath.Join(tmp, "dpcap.sock")
			serve := ns.Cmd(bin("dpcap"), "serve", "--backend", "dpdk", "--eal", ealNoHardware+" "+tt.vdevs,
				"--port", "pf0="+pf, "--port", "vm-1="+vm, "--socket", socket, "--state-dir", filepath.Join(tmp, "state"), "--underlay-ip", "2001:db8::10")
			var stderr syncBuffer
			serve.Stderr = &stderr
			if err := serve.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { serve.Process.Kill(); serve.Wait() }()
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if out, code := dpcap(t, "status", "--socket", socket); code == 0 {
					if !strings.Contains(out, "NOT ACTIVE (dpdk backend)") {
						t.Fatalf("status: %s", out)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("dpcap serve did not start: %s", stderr.String())
				}
			}
			// PF0's MAC is read from the port; without the router's, capture
			// is refused, saying how to find it.
			out, _ := dpcap(t, "status", "--socket", socket)
			if !strings.Contains(out, "envelope: from PF0 ") || !strings.Contains(out, "to router NOT SET (dpcap serve --router-mac") || strings.Contains(out, "from PF0 -") {
				t.Fatalf("status does not show the envelope's MACs:\n%s", out)
			}
			out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8::9", "--udp-dst-port", "3010", "--vf", "vm-1", "--pf", "0")
			if code != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "give dpcap serve --router-mac MAC") || !strings.Contains(out, "ip -6 neigh show") {
				t.Fatalf("start without a router MAC: exit %d\n%s", code, out)
			}
			serve.Process.Kill()
			serve.Wait()
			serve = ns.Cmd(bin("dpcap"), "serve", "--backend", "dpdk", "--eal", ealNoHardware+" "+tt.vdevs,
				"--port", "pf0="+pf, "--port", "vm-1="+vm, "--socket", socket, "--state-dir", filepath.Join(tmp, "state"),
				"--underlay-ip", "2001:db8::10", "--router-mac", "0c:42:a1:00:00:01")
			serve.Stderr = &stderr
			if err := serve.Start(); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, 10*time.Second, "dpcap serve to answer", func() bool { _, code := dpcap(t, "status", "--socket", socket); return code == 0 })
			if out, _ := dpcap(t, "status", "--socket", socket); !strings.Contains(out, "to router 0c:42:a1:00:00:01, underlay 2001:db8::10") {
				t.Fatalf("status does not show the router MAC:\n%s", out)
			}
			out, code = dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8::9", "--udp-dst-port", "3010", "--vf", "vm-1", "--pf", "0")
			if code != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("start: exit %d\n%s\nwant one line containing\n%s", code, out, tt.want)
			}
			if out, _ := dpcap(t, "status", "--socket", socket); !strings.Contains(out, "NOT ACTIVE") {
				t.Fatalf("a failed start left: %s", out)
			}
		})
	}
}
