package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/testkit"
)

// dpcapd is a running dpcap serve.
type dpcapd struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

func startServe(t *testing.T, ns *testkit.NetNS, socket, state string, extra ...string) *dpcapd {
	t.Helper()
	return startServeArgs(t, ns, socket, append([]string{"serve", "--backend", "software", "--port", "vm-1=tap-vm1",
		"--socket", socket, "--state-dir", state}, extra...))
}

// startServeArgs starts dpcap with args in ns and waits until it answers
// on socket.
func startServeArgs(t *testing.T, ns *testkit.NetNS, socket string, args []string) *dpcapd {
	t.Helper()
	d := &dpcapd{cmd: ns.Cmd(bin("dpcap"), args...), stderr: &syncBuffer{}}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	// Ready means answering: a killed daemon leaves its socket file behind.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, code := dpcap(t, "status", "--socket", socket); code == 0 {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("dpcap serve did not start: %s", d.stderr)
		}
	}
}

func (d *dpcapd) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
}

// dpcap runs a dpcap command and returns its output and exit code.
func dpcap(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin("dpcap"), args...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

func status(t *testing.T, socket string) control.Status {
	t.Helper()
	out, code := dpcap(t, "status", "-o", "json", "--socket", socket)
	if code != 0 {
		t.Fatalf("dpcap status: %s", out)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("dpcap status -o json: %v\n%s", err, out)
	}
	return st
}

// vmTrafficRound makes the VM send ping (IPv4, IPv6), UDP and TCP.
func vmTrafficRound(t *testing.T, vm *testkit.NetNS) {
	t.Helper()
	vm.Run(t, "ping", "-c", "2", "-i", "0.2", "192.0.2.1")
	vm.Run(t, "ping", "-6", "-c", "2", "-i", "0.2", "2001:db8:10::1")
	vm.Run(t, "bash", "-c", "echo hello >/dev/udp/192.0.2.1/9999; (echo >/dev/tcp/192.0.2.1/8080) 2>/dev/null; true")
}

// TestSoftwareBackendTakesInterfaceNames runs the software backend with no
// --port map: a port is the Linux interface of its name, an unknown one is
// refused as a usage error, and the copies reach sinkd under the
// interface's name (the global flags given before the command).
func TestSoftwareBackendTakesInterfaceNames(t *testing.T) {
	vm, hv, sk := softwareHosts(t)
	tmp := t.TempDir()
	socket, state := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state")
	startServeArgs(t, hv, socket, []string{"serve", "--backend", "software", "--socket", socket, "--state-dir", state})
	if out, code := dpcap(t, "--socket", socket, "start", "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "nosuch0"); code != 2 || !strings.Contains(out, `unknown port "nosuch0": no such interface`) {
		t.Fatalf("start on an interface that is not there: exit %d\n%s", code, out)
	}
	if st := status(t, socket); st.Active {
		t.Fatal("a refused start left capture active")
	}
	out, code := dpcap(t, "-o", "json", "--socket", socket, "start", "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "tap-vm1")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Active || len(st.Ports) != 1 || st.Ports[0].Name != "tap-vm1" {
		t.Fatalf("dpcap start --vf tap-vm1: exit %d\n%s", code, out)
	}
	capture := filepath.Join(tmp, "cap.pcapng")
	sinkd := startSinkd(t, sk, "--listen", "2001:db8:2::2", "-w", capture, "--port-map", filepath.Join(state, "portmap.json"))
	vmTrafficRound(t, vm)
	n := sinkd.waitStable(t, "sinkd_packets_written_total")
	if code, stderr := sinkd.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd: exit %d\n%s", code, stderr)
	}
	names, err := exec.Command("tshark", "-r", capture, "-T", "fields", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The stack's own chatter (ARP, neighbour discovery, router
	// solicitations) varies from run to run and can still trickle in after
	// the count settled; the round's six frames do not.
	lines := strings.Fields(string(names))
	if len(lines) == 0 || strings.Count(string(names), "tap-vm1") != len(lines) {
		t.Errorf("tshark names the interfaces of the %d frames %q", len(lines), lines)
	}
	if got := len(filterFrames(readFrames(t, capture), deliberate)); got != 6 {
		t.Errorf("%d of the round's 6 frames (2 pings, 2 pings over IPv6, UDP, TCP SYN) were captured, of %v written", got, n)
	}
}

// TestSoftwareBackendEndToEnd: a VM sends ordinary traffic over a veth to
// the hypervisor, whose dpcap serve mirrors the port after dpcap start;
// sinkd in a sink namespace writes the frames byte-exact, named by port.
// A daemon restart keeps the capture running; dpcap stop ends it.
func TestSoftwareBackendEndToEnd(t *testing.T) {
	vm, hv, sk := softwareHosts(t)
	tmp := t.TempDir()
	socket, state := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state")

	// What the port receives, as tcpdump sees it, from before capture starts.
	ref := filepath.Join(tmp, "port.pcap")
	td := startTcpdump(t, hv, "-i", "tap-vm1", "-Q", "in", "-U", "-w", ref)
	serve := startServe(t, hv, socket, state)
	if st := status(t, socket); st.Active {
		t.Fatalf("active before start: %+v", st)
	}
	// All or nothing: a port the daemon does not serve fails the start.
	if out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-1,vm-7"); code != 2 || !strings.Contains(out, `unknown port "vm-7"`) {
		t.Fatalf("start with an unknown port: exit %d\n%s", code, out)
	}
	if st := status(t, socket); st.Active {
		t.Fatal("a failed start left capture active")
	}
	out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--udp-src-port", "3000", "--vf", "vm-1")
	if code != 0 || !strings.Contains(out, "ACTIVE") || !strings.Contains(out, "vm-1") {
		t.Fatalf("dpcap start: exit %d\n%s", code, out)
	}
	if out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-1"); code != 1 || !strings.Contains(out, "stop it first") {
		t.Fatalf("a second start: exit %d\n%s", code, out)
	}
	// A replacement naming a port the daemon does not serve is refused
	// before the running capture is touched.
	if out, code := dpcap(t, "start", "--replace", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-7"); code != 2 || !strings.Contains(out, `unknown port "vm-7"`) {
		t.Fatalf("a replacement with an unknown port: exit %d\n%s", code, out)
	}
	if st := status(t, socket); !st.Active || len(st.Ports) != 1 || st.Ports[0].Name != "vm-1" {
		t.Fatalf("a refused replacement changed the capture: %+v", st)
	}

	capture := filepath.Join(tmp, "cap.pcapng")
	sinkd := startSinkd(t, sk, "--listen", "2001:db8:2::2", "-w", capture, "--port-map", filepath.Join(state, "portmap.json"))

	vmTrafficRound(t, vm)
	// The daemon restarts; the saved capture is applied again, the port
	// keeping its tag.
	tag := status(t, socket).Ports[0].Tag
	serve.stop(t)
	serve = startServe(t, hv, socket, state)
	st := status(t, socket)
	if !st.Active || len(st.Ports) != 1 || st.Ports[0].Tag != tag {
		t.Fatalf("after a restart: %+v, want tag %d (%s)", st, tag, serve.stderr)
	}
	vmTrafficRound(t, vm)
	time.Sleep(500 * time.Millisecond)
	if st := status(t, socket); st.Ports[0].Samples == 0 {
		t.Errorf("status counts no samples after the restart: %+v", st.Ports)
	}
	if out, code := dpcap(t, "stop", "--socket", socket); code != 0 || !strings.Contains(out, "capture stopped") {
		t.Fatalf("dpcap stop: exit %d\n%s", code, out)
	}
	// The capture is over: let sinkd take the last copies, then end the
	// reference, which must cover everything the capture could have seen.
	sinkd.waitStable(t, "sinkd_packets_written_total")
	td.Process.Signal(syscall.SIGINT)
	td.Wait()
	want := readFrames(t, ref)
	if len(want) < 10 {
		t.Fatalf("the port received only %d frames", len(want))
	}
	before := sinkd.metrics(t)["sinkd_packets_received_total"]
	vmTrafficRound(t, vm) // no longer mirrored
	time.Sleep(300 * time.Millisecond)
	if after := sinkd.metrics(t)["sinkd_packets_received_total"]; after != before {
		t.Errorf("sinkd received %v copies after dpcap stop", after-before)
	}
	if out, code := dpcap(t, "stop", "--socket", socket); code != 0 || !strings.Contains(out, "not active") {
		t.Fatalf("a second stop: exit %d\n%s", code, out)
	}
	if code, stderr := sinkd.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd: %d %s", code, stderr)
	}
	// The VM's own traffic, every frame of it, in order, byte for byte.
	// (Neighbour discovery and MLD come at random times: one sent while
	// the daemon restarted, or before tcpdump or sinkd started, is rightly
	// on one side only; each captured one must still be one the port got.)
	got := readFrames(t, capture)
	equalFrames(t, filterFrames(got, deliberate), filterFrames(want, deliberate))
	if n := len(filterFrames(want, deliberate)); n != 2*(2+2+2) {
		t.Errorf("the port received %d of the VM's 12 deliberate frames", n)
	}
	for i, f := range got {
		if !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, f) }) {
			t.Errorf("captured frame %d (%d bytes) is none the port received", i, len(f))
		}
	}
	names, err := exec.Command("tshark", "-r", capture, "-T", "fields", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Fields(string(names)) {
		if n != "vm-1" {
			t.Fatalf("a frame on interface %q, want vm-1", n)
		}
	}
	for _, f := range []string{"capture.json", "portmap.json"} {
		if _, err := os.Stat(filepath.Join(state, f)); err == nil {
			t.Errorf("%s is left after stop", f)
		}
	}
}

// softwareHosts makes a VM joined to a hypervisor by a veth whose
// hypervisor end, tap-vm1, is the port (192.0.2.1, 2001:db8:10::1), and
// a sink on the hypervisor's underlay (2001:db8:2::1 -> ::2, MTU 1600).
func softwareHosts(t *testing.T) (vm, hv, sk *testkit.NetNS) {
	t.Helper()
	vm, hv, sk = testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	if out, err := exec.Command("ip", "link", "add", "vm0", "netns", vm.Name, "type", "veth", "peer", "name", "tap-vm1", "netns", hv.Name).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v %s", err, out)
	}
	vm.Run(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "vm0")
	vm.Run(t, "ip", "addr", "add", "2001:db8:10::10/64", "dev", "vm0", "nodad")
	hv.Run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "tap-vm1")
	hv.Run(t, "ip", "addr", "add", "2001:db8:10::1/64", "dev", "tap-vm1", "nodad")
	vm.Run(t, "ip", "link", "set", "vm0", "up")
	hv.Run(t, "ip", "link", "set", "tap-vm1", "up")
	testkit.Link(t, hv, sk, 1600, 2) // the underlay: 2001:db8:2::1 -> ::2
	return vm, hv, sk
}

func filterFrames(frames [][]byte, keep func([]byte) bool) [][]byte {
	var out [][]byte
	for _, f := range frames {
		if keep(f) {
			out = append(out, f)
		}
	}
	return out
}

// deliberate tells vmTrafficRound's frames from the stack's own chatter:
// ICMP and ICMPv6 echo requests, UDP to 9999, TCP to 8080.
func deliberate(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0800:
		ip := f[14:]
		if len(ip) < 24 {
			return false
		}
		l4 := ip[int(ip[0]&0x0F)*4:]
		switch ip[9] {
		case 1:
			return l4[0] == 8
		case 6:
			return binary.BigEndian.Uint16(l4[2:4]) == 8080
		case 17:
			return binary.BigEndian.Uint16(l4[2:4]) == 9999
		}
	case 0x86DD:
		return len(f) > 54 && f[20] == 58 && f[54] == 128
	}
	return false
}

// TestSoftwareBackendFollowsARecreatedInterface: the VM restarts and its
// tap is deleted and made again under the same name. Status shows the port's
// problem while the tap is gone, then the re-attachment, and the frames the
// VM sends on the new tap reach the sink like those before. After a host
// reboot, the saved capture waits for the VM's tap.
func TestSoftwareBackendFollowsARecreatedInterface(t *testing.T) {
	vm, hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	// No IPv6 chatter (router solicitations, MLD) when the VM's interface
	// comes up: only the test's frames cross the tap.
	for _, c := range []string{"all", "default"} {
		vm.Run(t, "sysctl", "-qw", "net.ipv6.conf."+c+".disable_ipv6=1")
	}
	makeTap := func() {
		t.Helper()
		if out, err := exec.Command("ip", "link", "add", "vm0", "netns", vm.Name, "type", "veth", "peer", "name", "tap-vm1", "netns", hv.Name).CombinedOutput(); err != nil {
			t.Fatalf("veth: %v %s", err, out)
		}
		vm.Run(t, "ip", "link", "set", "vm0", "up")
		hv.Run(t, "ip", "link", "set", "tap-vm1", "up")
	}
	makeTap()
	testkit.Link(t, hv, sk, 1600, 2)
	tmp := t.TempDir()
	socket, capture, state := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "cap.pcap"), filepath.Join(tmp, "state")
	serve := startServe(t, hv, socket, state)
	if out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-1"); code != 0 {
		t.Fatalf("dpcap start: exit %d\n%s", code, out)
	}
	sinkd := startSinkd(t, sk, "--listen", "2001:db8:2::2", "-w", capture)
	r := rand.New(rand.NewPCG(12, 0))
	var sent [][]byte
	send := func(n int) {
		t.Helper()
		var frames [][]byte
		for i := range n {
			frames = append(frames, randomFrame(r, 60+i*23))
		}
		sendRaw(t, vm, "vm0", frames)
		sent = append(sent, frames...)
		sinkd.waitMetric(t, "sinkd_packets_received_total", float64(len(sent)))
	}
	send(20)

	vm.Run(t, "ip", "link", "del", "vm0") // the VM stops: its tap goes
	testkit.Eventually(t, 10*time.Second, "status to report the tap gone", func() bool {
		st := status(t, socket)
		return st.Active && len(st.Ports) == 1 && strings.Contains(st.Ports[0].Problem, "interface tap-vm1 is gone")
	})
	if out, _ := dpcap(t, "status", "--socket", socket); !strings.Contains(out, "problem: port vm-1: interface tap-vm1 is gone") {
		t.Errorf("dpcap status does not show the problem:\n%s", out)
	}

	makeTap() // the VM starts again, on a new tap of the same name
	testkit.Eventually(t, 10*time.Second, "status to report the re-attachment", func() bool {
		st := status(t, socket)
		return len(st.Ports) == 1 && st.Ports[0].Reattached == 1 && st.Ports[0].Problem == ""
	})
	send(20)
	if out, _ := dpcap(t, "status", "--socket", socket); !strings.Contains(out, "port vm-1: its interface was deleted and made again, capture followed it once") {
		t.Errorf("dpcap status does not show the re-attachment:\n%s", out)
	}
	if st := status(t, socket); st.Ports[0].Samples != uint64(len(sent)) {
		t.Errorf("status counts %d samples, want %d across both taps", st.Ports[0].Samples, len(sent))
	}

	// The host reboots: the daemon starts again before the VM. The saved
	// capture waits for the tap instead of being lost.
	serve.stop(t)
	vm.Run(t, "ip", "link", "del", "vm0")
	serve = startServe(t, hv, socket, state)
	if st := status(t, socket); !st.Active || len(st.Ports) != 1 || !strings.Contains(st.Ports[0].Problem, "interface tap-vm1 is not there") {
		t.Fatalf("restored without the tap: %+v\n%s", st, serve.stderr)
	}
	makeTap()
	testkit.Eventually(t, 10*time.Second, "the restored capture to attach to the tap", func() bool { return status(t, socket).Ports[0].Problem == "" })
	send(20)

	if code, stderr := sinkd.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd: %d %s", code, stderr)
	}
	equalFrames(t, readFrames(t, capture), sent)
}

// TestSoftwareMirrorMethodsAgree: the kernel mirror (tc BPF) and the
// AF_PACKET mirror send the same envelopes, byte for byte but for the
// lengths, which follow each frame; status shows the method in use; a
// filter runs in either; and the kernel mirror leaves nothing attached.
func TestSoftwareMirrorMethodsAgree(t *testing.T) {
	vm, hv, sk := softwareHosts(t)
	tmp := t.TempDir()
	headers := map[string][][]byte{}
	for _, method := range []string{"af_packet", "bpf"} {
		socket, state := filepath.Join(tmp, method+".sock"), filepath.Join(tmp, method)
		wire := filepath.Join(tmp, method+".pcap")
		td := startTcpdump(t, sk, "-i", "e2e1", "-Q", "in", "-U", "-w", wire, "udp dst port 3010")
		serve := startServe(t, hv, socket, state, "--mirror", method)
		// Only the VM's IPv4: the filter runs inside the kernel mirror.
		if out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010",
			"--udp-src-port", "3000", "--vf", "vm-1", "--filter", "ip=4"); code != 0 {
			t.Fatalf("%s: dpcap start: exit %d\n%s", method, code, out)
		}
		if st := status(t, socket); len(st.Ports) != 1 || st.Ports[0].Mirror != method {
			t.Fatalf("status shows %+v, want mirror %s", st.Ports, method)
		}
		vmTrafficRound(t, vm)
		time.Sleep(300 * time.Millisecond)
		st := status(t, socket)
		if out, code := dpcap(t, "stop", "--socket", socket); code != 0 {
			t.Fatalf("%s: dpcap stop: %s", method, out)
		}
		serve.stop(t)
		time.Sleep(300 * time.Millisecond)
		td.Process.Signal(syscall.SIGINT)
		td.Wait()
		for _, env := range readFrames(t, wire) {
			inner := env[62:]
			if binary.BigEndian.Uint16(inner[12:14]) != 0x0800 {
				t.Errorf("%s: the filter let through a frame that is not IPv4: % x", method, inner[:14])
			}
			if !deliberate(inner) {
				continue
			}
			if n := int(binary.BigEndian.Uint16(env[18:20])); n != len(inner)+8 {
				t.Errorf("%s: IPv6 payload length %d for a %d-byte frame", method, n, len(inner))
			}
			if n := int(binary.BigEndian.Uint16(env[58:60])); n != len(inner)+8 {
				t.Errorf("%s: UDP length %d for a %d-byte frame", method, n, len(inner))
			}
			h := slices.Clone(env[:62])
			clear(h[18:20])
			clear(h[58:60])
			headers[method] = append(headers[method], h)
		}
		// Two pings, one UDP datagram, one TCP SYN.
		if got := len(headers[method]); got != 4 || st.Ports[0].Samples < 4 {
			t.Fatalf("%s: %d of the VM's IPv4 frames on the wire, %d samples counted, want 4", method, got, st.Ports[0].Samples)
		}
	}
	want := headers["af_packet"][0]
	if want[14]&0xf0 != 0x60 || binary.BigEndian.Uint32(want[14:18])&0xfffff != flowprog.PreferredTag("vm-1") || want[21] != 64 {
		t.Errorf("af_packet envelope header % x: want IPv6, flow label %d (vm-1's tag), hop limit 64", want, flowprog.PreferredTag("vm-1"))
	}
	for method, hs := range headers {
		for _, h := range hs {
			if !bytes.Equal(h, want) {
				t.Errorf("%s envelope header\n% x\nwant (af_packet)\n% x", method, h, want)
			}
		}
	}
	// The programs went with the capture: nothing is mirrored any more.
	after := filepath.Join(tmp, "after.pcap")
	td := startTcpdump(t, sk, "-i", "e2e1", "-Q", "in", "-U", "-w", after, "udp dst port 3010")
	vmTrafficRound(t, vm)
	time.Sleep(300 * time.Millisecond)
	td.Process.Signal(syscall.SIGINT)
	td.Wait()
	if n := len(readFrames(t, after)); n != 0 {
		t.Errorf("%d envelopes after the capture stopped: a program was left attached", n)
	}
}

// TestStartRefusesEnvelopeAddresses: the envelope's addresses given to
// dpcap start are the dry run's; a start the daemon applies refuses them
// (exit 2, one line) rather than ignore them, and the daemon's envelopes
// keep dpcap serve's.
func TestStartRefusesEnvelopeAddresses(t *testing.T) {
	ns := testkit.NewNetNS(t)
	tmp := t.TempDir()
	socket := filepath.Join(tmp, "dpcap.sock")
	startServeArgs(t, ns, socket, []string{"serve", "--backend", "software", "--port", "vm-1=lo", "--socket", socket,
		"--state-dir", filepath.Join(tmp, "state"), "--underlay-ip", "2001:db8::10", "--router-mac", "0c:42:a1:00:00:01"})
	start := []string{"start", "--socket", socket, "--sink-node-ip", "::1", "--udp-dst-port", "3010", "--vf", "vm-1"}
	for _, flag := range [][]string{{"--router-mac", "02:00:00:00:00:09"}, {"--underlay-ip", "2001:db8::99"}, {"--pf-mac", "02:00:00:00:00:08"}} {
		out, code := dpcap(t, append(start, flag...)...)
		if code != 2 || strings.Count(out, "\n") != 1 || !strings.Contains(out, flag[0]+" is for --dry-run only") {
			t.Errorf("start %s: exit %d\n%s", flag[0], code, out)
		}
		if st := status(t, socket); st.Active {
			t.Fatalf("start %s started capture", flag[0])
		}
		if out, code := dpcap(t, append(append(start, flag...), "--dry-run")...); code != 0 || !strings.Contains(out, flag[1]) {
			t.Errorf("start %s --dry-run: exit %d\n%s", flag[0], code, out)
		}
	}
	if out, code := dpcap(t, start...); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	if st := status(t, socket); !st.Active || st.RouterMAC != "0c:42:a1:00:00:01" || st.UnderlayIP != "2001:db8::10" {
		t.Errorf("status: active %v, router %s, underlay %s", st.Active, st.RouterMAC, st.UnderlayIP)
	}
}
