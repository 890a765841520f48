package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/internal/testkit"
)

// captureHosts are the software backend's hosts for dpcap capture: dpcap
// serve on the VM's port (vm-1 is tap-vm1), and sinkd with --live on
// [::1]:9311 in the sink's namespace, reading serve's port map, which a
// first capture published (a sink runs before the captures it receives).
type captureHosts struct {
	vm, hv, sk    *testkit.NetNS
	socket, state string
	sinkd         *daemon
	dir           string
}

func newCaptureHosts(t *testing.T) *captureHosts {
	t.Helper()
	h := &captureHosts{dir: t.TempDir()}
	h.vm, h.hv, h.sk = softwareHosts(t)
	h.socket, h.state = filepath.Join(h.dir, "dpcap.sock"), filepath.Join(h.dir, "state")
	startServe(t, h.hv, h.socket, h.state)
	startBounded(t, h.socket, "--for", "1m")
	h.sinkd = startSinkd(t, h.sk, "--listen", "2001:db8:2::2", "--port", "3010", "-w", filepath.Join(h.dir, "sink.pcapng"),
		"--port-map", filepath.Join(h.state, "portmap.json"), "--live", "[::1]:9311")
	if out, code := dpcap(t, "stop", "--socket", h.socket); code != 0 {
		t.Fatalf("dpcap stop: %s", out)
	}
	return h
}

// command is dpcap capture of vm-1 from the sink's namespace (the live
// endpoint is its loopback; dpcap serve's socket a file) with args.
func (h *captureHosts) command(args ...string) *exec.Cmd {
	return h.sk.Cmd(bin("dpcap"), append([]string{"capture", "--socket", h.socket, "--vf", "vm-1", "--sink", "http://[::1]:9311",
		"--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010"}, args...)...)
}

// checkStopped fails unless the capture is stopped and tap-vm1 has no
// mirror program left.
func (h *captureHosts) checkStopped(t *testing.T) {
	t.Helper()
	if st := status(t, h.socket); st.Active {
		t.Fatalf("the capture is still active: %+v", st)
	}
	if out, _ := dpcap(t, "status", "--socket", h.socket); !strings.Contains(out, "capture: NOT ACTIVE") {
		t.Fatalf("status:\n%s", out)
	}
	if n := tcxPrograms(t, h.hv, "tap-vm1"); n != 0 {
		t.Fatalf("%d programs left on tap-vm1", n)
	}
}

// numbered makes the VM send "seq N" UDP datagrams to the hypervisor,
// about 100 a second, until the test ends, and records what it sent with
// tcpdump on its side of the link; stop ends both and returns the file.
func numbered(t *testing.T, vm *testkit.NetNS, dir string) (stop func() string) {
	t.Helper()
	sent := filepath.Join(dir, "sent.pcap")
	td := startTcpdump(t, vm, "-i", "vm0", "-Q", "out", "-U", "-w", sent)
	loop := vm.Cmd("bash", "-c", `i=0; while :; do printf 'seq %06d\n' $i >/dev/udp/192.0.2.1/9999; i=$((i+1)); sleep 0.01; done`)
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loop.Process.Kill(); loop.Wait() })
	return func() string {
		loop.Process.Kill()
		loop.Wait()
		td.Process.Signal(syscall.SIGTERM)
		td.Wait()
		return sent
	}
}

// seqs are the sequence numbers of the "seq N" datagrams in file, as
// tshark reads them.
func seqs(t *testing.T, file string) []int {
	t.Helper()
	var out []int
	for _, line := range tsharkFields(t, file, "-Y", "udp.dstport == 9999", "-e", "udp.payload") {
		b, err := hex.DecodeString(strings.ReplaceAll(line, ":", ""))
		if err != nil || !bytes.HasPrefix(b, []byte("seq ")) {
			t.Fatalf("payload %q", line)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b[4:])))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// checkSentRun fails unless got's numbered frames are, byte for byte, a
// run of those the VM sent (sent), none left out, and returns their
// sequence numbers. (The stack's own chatter, neighbour discovery and
// MLD, is left out as in TestSoftwareBackendCapture; how much of it each
// side has is logged.)
func checkSentRun(t *testing.T, got, sent string) []int {
	t.Helper()
	all, allSent := readFrames(t, got), readFrames(t, sent)
	g, s := filterFrames(all, numberedFrame), filterFrames(allSent, numberedFrame)
	t.Logf("%d frames written, %d of them numbered; the VM sent %d, %d numbered", len(all), len(g), len(allSent), len(s))
	if len(g) == 0 {
		t.Fatal("no numbered frame written")
	}
	i := 0
	for i < len(s) && !bytes.Equal(s[i], g[0]) {
		i++
	}
	if i+len(g) > len(s) {
		t.Fatalf("the first of %d frames written is not among the %d the VM sent, or the run is longer", len(g), len(s))
	}
	equalFrames(t, g, s[i:i+len(g)])
	n := seqs(t, got)
	for j := 1; j < len(n); j++ {
		if n[j] != n[j-1]+1 {
			t.Fatalf("seq %d follows seq %d", n[j], n[j-1])
		}
	}
	return n
}

// checkSpan fails unless the numbered frames in file span about the 3 s
// of a capture --for 3s: the whole window, not a part of it.
func checkSpan(t *testing.T, file string) {
	t.Helper()
	times := tsharkFields(t, file, "-Y", "udp.dstport == 9999", "-e", "frame.time_epoch")
	f, _ := strconv.ParseFloat(times[0], 64)
	l, _ := strconv.ParseFloat(times[len(times)-1], 64)
	if span := l - f; span < 2 || span > 3.5 {
		t.Fatalf("%d numbered frames over %.2fs, want about 3s of them", len(times), span)
	}
}

// numberedFrame tells the "seq N" datagrams (IPv4, UDP to 9999).
func numberedFrame(f []byte) bool {
	return len(f) >= 14+20+8 && binary.BigEndian.Uint16(f[12:14]) == 0x0800 && f[14+9] == 17 &&
		binary.BigEndian.Uint16(f[14+int(f[14]&0x0F)*4+2:]) == 9999
}

// TestCaptureForAWhile: dpcap capture --vf vm-1 --for 3s -w FILE returns
// after about 3 s with every frame the VM sent to the port meanwhile, a
// run of them byte for byte (as it sent them, by tcpdump on its side),
// and the capture stopped: status says so, no mirror program is left on
// the port. The summary says, for vm-1, what the sink received and what
// was written.
func TestCaptureForAWhile(t *testing.T) {
	h := newCaptureHosts(t)
	stopSending := numbered(t, h.vm, h.dir)
	out := filepath.Join(h.dir, "out.pcapng")
	cmd := h.command("--for", "3s", "-w", out)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	took := time.Since(start)
	sent := stopSending()
	if err != nil {
		t.Fatalf("dpcap capture: %v\n%s", err, b)
	}
	t.Logf("dpcap capture --for 3s took %v:\n%s", took, b)
	if took < 3*time.Second || took > 15*time.Second {
		t.Fatalf("dpcap capture --for 3s took %v", took)
	}
	h.checkStopped(t)
	n := checkSentRun(t, out, sent)
	checkSpan(t, out)
	frames := len(readFrames(t, out))
	line := "vm-1: " + strconv.Itoa(frames) + " received by the sink, " + strconv.Itoa(frames) + " written; lost: 0 at the NIC or in the kernel, 0 at the sink for this viewer; 0 filtered out\n"
	if !strings.Contains(string(b), line) || !strings.Contains(string(b), strconv.Itoa(frames)+" frames written to "+out+"\n") {
		t.Fatalf("the summary does not say %q:\n%s", line, b)
	}
	t.Logf("seq %d to %d (%d frames in all) in %s", n[0], n[len(n)-1], frames, out)
}

// TestCaptureCount: -c 10 ends the command after 10 frames, and the
// capture with it, long before its deadline; an expression the sink
// applies leaves out the rest of the VM's frames (counted as filtered).
func TestCaptureCount(t *testing.T) {
	h := newCaptureHosts(t)
	stopSending := numbered(t, h.vm, h.dir)
	out := filepath.Join(h.dir, "out.pcapng")
	start := time.Now()
	b, err := h.command("--for", "1m", "-c", "10", "-w", out, "udp", "port", "9999").CombinedOutput()
	took := time.Since(start)
	stopSending()
	if err != nil {
		t.Fatalf("dpcap capture -c 10: %v\n%s", err, b)
	}
	t.Logf("dpcap capture -c 10 took %v:\n%s", took, b)
	if took > 30*time.Second {
		t.Fatalf("took %v", took)
	}
	h.checkStopped(t)
	if n := seqs(t, out); len(n) != 10 {
		t.Fatalf("%d frames written, want 10", len(n))
	}
	checkWithTools(t, out, 10)
	if !strings.Contains(string(b), ": -c 10: capture stopped\n") || !strings.Contains(string(b), " 10 written; lost: 0 at the NIC") {
		t.Fatalf("output:\n%s", b)
	}
}

// TestCaptureKilledStillEnds: dpcap capture SIGKILLed during its capture
// leaves it to dpcap serve's deadline, which stops it: status says so, no
// program is left on the port, no copy reaches the sink after it.
func TestCaptureKilledStillEnds(t *testing.T) {
	h := newCaptureHosts(t)
	cmd := h.command("--for", "4s", "-w", filepath.Join(h.dir, "out.pcapng"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var st control.Status
	testkit.Eventually(t, 30*time.Second, "the capture to start", func() bool { st = status(t, h.socket); return st.Active })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if st = status(t, h.socket); !st.Active {
		t.Fatal("the capture stopped with the command, before its deadline")
	}
	testkit.Eventually(t, 30*time.Second, "the deadline to stop the capture", func() bool { return !status(t, h.socket).Active })
	if time.Now().Before(st.Deadline) {
		t.Fatalf("stopped before the deadline %v", st.Deadline)
	}
	h.checkStopped(t)
	before := h.sinkd.waitStable(t, "sinkd_packets_received_total")
	vmTrafficRound(t, h.vm)
	if after := h.sinkd.waitStable(t, "sinkd_packets_received_total"); after != before {
		t.Errorf("%v copies reached the sink after the deadline", after-before)
	}
}

// TestCaptureSeedSpelling: dpcap capture start|status|stop with
// dpservice-cli's flags are dpcap start, status and stop.
func TestCaptureSeedSpelling(t *testing.T) {
	_, hv, _ := softwareHosts(t)
	tmp := t.TempDir()
	socket := filepath.Join(tmp, "dpcap.sock")
	startServe(t, hv, socket, filepath.Join(tmp, "state"))
	out, code := dpcap(t, "capture", "start", "-o", "json", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-src-port", "4000", "--udp-dst-port", "3010", "--vf", "vm-1", "--for", "1m")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || !st.Active || st.ID == "" || st.Request.SrcPort != 4000 {
		t.Fatalf("dpcap capture start: exit %d\n%s", code, out)
	}
	seed, code := dpcap(t, "--socket", socket, "capture", "status")
	if code != 0 || !strings.Contains(seed, "id:      "+st.ID+"\n") || !strings.Contains(seed, "UDP source port 4000") {
		t.Fatalf("dpcap capture status: exit %d\n%s", code, seed)
	}
	// The same as dpcap status but for what ticks between them: the time
	// left, the VM's chatter counted.
	steady := func(args ...string) control.Status {
		out, code := dpcap(t, args...)
		var st control.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("dpcap %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		st.TimeLeft = ""
		for i := range st.Ports {
			st.Ports[i].Samples = 0
		}
		return st
	}
	if a, b := steady("capture", "status", "-o", "json", "--socket", socket), steady("status", "-o", "json", "--socket", socket); !reflect.DeepEqual(a, b) {
		t.Fatalf("dpcap capture status %+v\ndpcap status %+v", a, b)
	}
	if out, code := dpcap(t, "capture", "start", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-1"); code != 1 || !strings.Contains(out, "dpcap start: ") {
		t.Fatalf("a second dpcap capture start: exit %d\n%s", code, out)
	}
	if out, code := dpcap(t, "capture", "stop", "--socket", socket); code != 0 || out != "capture stopped\n" {
		t.Fatalf("dpcap capture stop: exit %d %q", code, out)
	}
	if status(t, socket).Active || tcxPrograms(t, hv, "tap-vm1") != 0 {
		t.Fatal("dpcap capture stop left the capture")
	}
}
