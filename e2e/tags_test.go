package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// vmPort is a VM whose port the software backend captures: its own
// namespace, joined to the hypervisor by a veth whose hypervisor end,
// tap-vmK, is the port.
type vmPort struct {
	ns      *testkit.NetNS
	name    string // the port's name, vm-K
	mac     net.HardwareAddr
	gateway string // the hypervisor's end, which the VM pings
}

// vmPorts makes n VMs on hv: vm-K has MAC 02:00:00:00:00:0K and pings
// 10.K.0.1 from 10.K.0.2. They run no IPv6, so that only ARP and the
// pings cross their ports.
func vmPorts(t *testing.T, hv *testkit.NetNS, n int) []vmPort {
	t.Helper()
	var vms []vmPort
	for k := 1; k <= n; k++ {
		vm := vmPort{ns: testkit.NewNetNS(t), name: fmt.Sprintf("vm-%d", k), mac: net.HardwareAddr{2, 0, 0, 0, 0, byte(k)}, gateway: fmt.Sprintf("10.%d.0.1", k)}
		for _, c := range []string{"all", "default"} {
			vm.ns.Run(t, "sysctl", "-qw", "net.ipv6.conf."+c+".disable_ipv6=1")
		}
		tap := fmt.Sprintf("tap-vm%d", k)
		if out, err := exec.Command("ip", "link", "add", "vm0", "address", vm.mac.String(), "netns", vm.ns.Name,
			"type", "veth", "peer", "name", tap, "netns", hv.Name).CombinedOutput(); err != nil {
			t.Fatalf("veth: %v %s", err, out)
		}
		vm.ns.Run(t, "ip", "addr", "add", fmt.Sprintf("10.%d.0.2/24", k), "dev", "vm0")
		hv.Run(t, "ip", "addr", "add", vm.gateway+"/24", "dev", tap)
		vm.ns.Run(t, "ip", "link", "set", "vm0", "up")
		hv.Run(t, "ip", "link", "set", tap, "up")
		vms = append(vms, vm)
	}
	return vms
}

// isEchoRequest tells an ICMP echo request over IPv4 from the rest.
func isEchoRequest(f []byte) bool {
	if len(f) < 14+20+1 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[14+9] != 1 {
		return false
	}
	return f[14+int(f[14]&0x0f)*4] == 8
}

// TestCopiesKeepTheirPortsName reproduces issue 19's misfiled copies: the
// software backend tagged ports in the order of --vf, and sinkd never read
// its map again, so after 'dpcap start --replace' in another order vm-2's
// pings were written under the interface vm-1. Now a port keeps its tag
// through replacements in any order and with other ports; a copy whose tag
// the sink's map does not list (a port added since) is counted and named
// after its sender; and sinkd takes a map copied over its file within a
// second, and on SIGHUP. No frame is ever named after a port it did not
// come from.
func TestCopiesKeepTheirPortsName(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	vms := vmPorts(t, hv, 3)
	testkit.Link(t, hv, sk, 1600, 2) // the underlay: 2001:db8:2::1 -> ::2
	tmp := t.TempDir()
	socket, state, sinkDir := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state"), filepath.Join(tmp, "sink")
	if err := os.Mkdir(sinkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	startServeArgs(t, hv, socket, []string{"serve", "--backend", "software", "--socket", socket, "--state-dir", state,
		"--port", "vm-1=tap-vm1", "--port", "vm-2=tap-vm2", "--port", "vm-3=tap-vm3"})
	tags := map[string]uint32{}
	start := func(vfs string, replace bool) {
		t.Helper()
		args := []string{"start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", vfs}
		if replace {
			args = append(args, "--replace")
		}
		if out, code := dpcap(t, args...); code != 0 {
			t.Fatalf("dpcap %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		for _, p := range status(t, socket).Ports {
			if tags[p.Name] == 0 {
				tags[p.Name] = p.Tag
			}
			if p.Tag != tags[p.Name] {
				t.Errorf("--vf %s: %s has tag %d, had %d", vfs, p.Name, p.Tag, tags[p.Name])
			}
		}
	}
	// copyMap copies the published map to the sink as an operator does
	// (cp writes into the file sinkd reads).
	sinkMap := filepath.Join(sinkDir, "portmap.json")
	copyMap := func() {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(state, "portmap.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sinkMap, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start("vm-1,vm-2", false)
	copyMap()
	sinkd := startSinkd(t, sk, "--listen", "2001:db8:2::2", "-w", filepath.Join(sinkDir, "cap.pcapng"), "--port-map", sinkMap)
	sent := map[string]int{} // echo requests per VM
	ping := func(ks ...int) {
		t.Helper()
		for _, k := range ks {
			vms[k-1].ns.Run(t, "ping", "-c", "2", "-i", "0.2", vms[k-1].gateway)
			sent[vms[k-1].name] += 2
		}
		sinkd.waitStable(t, "sinkd_packets_written_total")
	}
	// waitReads waits for sinkd to have read the map again n times; on a
	// failure the files are still checked.
	waitReads := func(n int, when string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); strings.Count(sinkd.stderr.String(), "port map read again") < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("sinkd did not read the map %s", when)
				return
			}
		}
	}
	ping(1, 2)

	start("vm-2,vm-1", true) // another order; the sink keeps its map
	ping(1, 2)
	start("vm-3,vm-2", true) // another port: the sink's map cannot name it
	ping(3, 2)
	unknown := sinkd.metrics(t)["sinkd_unknown_tag_packets_total"]
	if unknown < 2 {
		t.Errorf("%v copies counted with a tag the map does not list; vm-3 sent at least 2", unknown)
	}
	copyMap() // no signal: sinkd notices the file changed
	waitReads(1, "copied over its file")
	ping(3, 2)
	sinkd.cmd.Process.Signal(syscall.SIGHUP)
	waitReads(2, "on SIGHUP")
	ping(3, 2)
	if m := sinkd.metrics(t); m["sinkd_unknown_tag_packets_total"] != unknown {
		t.Errorf("%v copies with an unknown tag after the map was copied, %v before", m["sinkd_unknown_tag_packets_total"], unknown)
	}
	if code, stderr := sinkd.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd: exit %d\n%s", code, stderr)
	}

	// Every frame, by its VM's MAC, against the interface it was filed
	// under (SIGHUP rotated: two files).
	byMAC := map[string]string{}
	for _, vm := range vms {
		byMAC[vm.mac.String()] = vm.name
	}
	const sender = "2001:db8:2::1" // the hypervisor, for copies the map cannot name
	echoes, inSender := map[string]int{}, 0
	for _, file := range testkit.DirNames(t, sinkDir) {
		if !strings.HasPrefix(file, "cap.pcapng") {
			continue
		}
		for iface, frames := range testkit.FramesByInterface(t, filepath.Join(sinkDir, file)) {
			for _, f := range frames {
				from := byMAC[net.HardwareAddr(f[6:12]).String()]
				switch {
				case iface == sender && from == "vm-3":
					inSender++
				case iface != from:
					t.Errorf("%s: a frame of %s (%d bytes) filed under %q", file, from, len(f), iface)
					continue
				}
				if isEchoRequest(f) {
					echoes[from+" as "+iface]++
				}
			}
		}
		out, err := exec.Command("tshark", "-r", filepath.Join(sinkDir, file), "-T", "fields", "-e", "frame.interface_name", "-e", "eth.src").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", file, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			iface, mac, _ := strings.Cut(line, "\t")
			if from := byMAC[mac]; iface != from && !(iface == sender && from == "vm-3") {
				t.Errorf("tshark: %s: a frame of %s (%s) on interface %q", file, from, mac, iface)
			}
		}
	}
	if inSender != int(unknown) {
		t.Errorf("%d of vm-3's frames filed under the sender, %v counted with an unknown tag", inSender, unknown)
	}
	want := map[string]int{"vm-1 as vm-1": sent["vm-1"], "vm-2 as vm-2": sent["vm-2"], "vm-3 as " + sender: 2, "vm-3 as vm-3": sent["vm-3"] - 2}
	for k, n := range want {
		if echoes[k] != n {
			t.Errorf("echo requests of %s: %d, want %d (all: %v)", k, echoes[k], n, echoes)
		}
	}
	t.Logf("tags %v; echo requests %v; %v copies of vm-3 counted with an unknown tag", tags, echoes, unknown)
}
