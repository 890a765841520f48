package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/dpservice/dpservicetest"
	"github.com/dpcap/dpcap/internal/testkit"
)

// tcxPrograms counts the programs attached to ifname's TCX ingress in ns:
// the kernel mirror's.
func tcxPrograms(t *testing.T, ns *testkit.NetNS, ifname string) int {
	t.Helper()
	var n int
	ns.Do(t, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Error(err)
			return
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			t.Error(err)
			return
		}
		n = len(r.Programs)
	})
	return n
}

// startBounded runs dpcap start with args and returns the status it printed.
func startBounded(t *testing.T, socket string, args ...string) control.Status {
	t.Helper()
	out, code := dpcap(t, append([]string{"start", "-o", "json", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-1"}, args...)...)
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("dpcap start %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return st
}

// TestBoundedCaptureStopsItself: dpcap start --for 3s, and no client
// after it: dpcap serve stops the capture at the deadline (status says
// so, no program is left on the port, no frame reaches the sink after
// it), logging the line dpcap stop logs. A dpcap serve SIGKILLed during a
// capture and started again after its deadline stops it at start-up,
// restoring nothing. A start asking for more than --max-duration is
// refused in one line and changes nothing.
func TestBoundedCaptureStopsItself(t *testing.T) {
	vm, hv, sk := softwareHosts(t)
	tmp := t.TempDir()
	socket, state := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state")
	serve := startServe(t, hv, socket, state, "--max-duration", "1m")

	st := startBounded(t, socket, "--for", "3s")
	if st.ID == "" || !st.Active || st.TimeLeft == "" || st.MaxDuration != "1m0s" {
		t.Fatalf("start --for 3s: %+v", st)
	}
	if left := time.Until(st.Deadline); left <= 0 || left > 3*time.Second {
		t.Fatalf("deadline %v is %v away, want within 3s", st.Deadline, left)
	}
	out, _ := dpcap(t, "status", "--socket", socket)
	if !strings.Contains(out, "id:      "+st.ID+"\n") || !strings.Contains(out, "stops:   "+st.Deadline.Local().Format(time.RFC3339)+" (in ") {
		t.Fatalf("status shows no id or deadline:\n%s", out)
	}
	// Refused above the ceiling, in one line; the capture stays as it was.
	out, code := dpcap(t, "start", "--replace", "--socket", socket, "--sink-node-ip", "2001:db8:2::2", "--udp-dst-port", "3010", "--vf", "vm-1", "--for", "2m")
	if code != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "dpcap serve's --max-duration is 1m0s; nothing was changed") {
		t.Fatalf("start --for 2m under --max-duration 1m: exit %d\n%s", code, out)
	}
	if got := status(t, socket); !got.Active || got.ID != st.ID || !got.Deadline.Equal(st.Deadline) {
		t.Fatalf("a refused start changed the capture: %+v", got)
	}
	kernel := status(t, socket).Ports[0].Mirror == "bpf"
	t.Logf("the mirror is %s", status(t, socket).Ports[0].Mirror)
	if kernel && tcxPrograms(t, hv, "tap-vm1") == 0 {
		t.Fatal("the kernel mirror shows no program on tap-vm1")
	}
	sinkd := startSinkd(t, sk, "--listen", "2001:db8:2::2", "-w", filepath.Join(tmp, "cap.pcapng"), "--port-map", filepath.Join(state, "portmap.json"))
	vmTrafficRound(t, vm)
	if n := sinkd.metrics(t)["sinkd_packets_received_total"]; n == 0 {
		t.Fatal("no copy reached the sink during the capture")
	}

	testkit.Eventually(t, 30*time.Second, "the deadline to stop the capture", func() bool { return !status(t, socket).Active })
	if time.Now().Before(st.Deadline) {
		t.Fatalf("stopped before the deadline %v", st.Deadline)
	}
	if out, _ := dpcap(t, "status", "--socket", socket); !strings.Contains(out, "capture: NOT ACTIVE") {
		t.Fatalf("status after the deadline:\n%s", out)
	}
	if n := tcxPrograms(t, hv, "tap-vm1"); n != 0 {
		t.Fatalf("%d programs left on tap-vm1 after the deadline", n)
	}
	for _, f := range []string{"capture.json", "portmap.json"} {
		if _, err := os.Stat(filepath.Join(state, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after the deadline: %v", f, err)
		}
	}
	before := sinkd.waitStable(t, "sinkd_packets_received_total")
	vmTrafficRound(t, vm)
	if after := sinkd.waitStable(t, "sinkd_packets_received_total"); after != before {
		t.Errorf("%v copies reached the sink after the deadline", after-before)
	}
	// The deadline's line is dpcap stop's but for who stopped it.
	startBounded(t, socket, "--for", "1m")
	if out, code := dpcap(t, "stop", "--socket", socket); code != 0 || out != "capture stopped\n" {
		t.Fatalf("dpcap stop: exit %d %q", code, out)
	}
	lines := stopLines(serve.stderr.String())
	if len(lines) != 2 || lines[0] != `level=INFO msg="capture stopped" by=deadline ports=vm-1` || lines[1] != `level=INFO msg="capture stopped" by="dpcap stop" ports=vm-1` {
		t.Fatalf("the stops' log lines:\n%s", strings.Join(lines, "\n"))
	}

	// dpcap serve dies during a capture and comes back after its deadline.
	st = startBounded(t, socket, "--for", "3s")
	serve.cmd.Process.Signal(syscall.SIGKILL)
	serve.cmd.Wait()
	testkit.Eventually(t, 30*time.Second, "the deadline to pass", func() bool { return time.Now().After(st.Deadline) })
	serve = startServe(t, hv, socket, state, "--max-duration", "1m")
	if got := status(t, socket); got.Active || got.Problem != "" {
		t.Fatalf("restarted after the deadline: %+v", got)
	}
	log := serve.stderr.String()
	if lines := stopLines(log); len(lines) != 1 || lines[0] != `level=INFO msg="capture stopped" by=deadline ports=vm-1` || strings.Contains(log, "capture restored") {
		t.Fatalf("restarted after the deadline, the log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(state, "capture.json")); !os.IsNotExist(err) {
		t.Errorf("capture.json left after the start-up stop: %v", err)
	}
	if n := tcxPrograms(t, hv, "tap-vm1"); n != 0 {
		t.Fatalf("%d programs on tap-vm1 after the start-up stop", n)
	}
	before = sinkd.waitStable(t, "sinkd_packets_received_total")
	vmTrafficRound(t, vm)
	if after := sinkd.waitStable(t, "sinkd_packets_received_total"); after != before {
		t.Errorf("%v copies reached the sink after the start-up stop", after-before)
	}
}

// stopLines returns dpcap serve's "capture stopped" lines, without their
// time and id.
func stopLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="capture stopped"`) {
			continue
		}
		var kept []string
		for _, f := range strings.Fields(line) {
			if !strings.HasPrefix(f, "time=") && !strings.HasPrefix(f, "id=") {
				kept = append(kept, f)
			}
		}
		out = append(out, strings.Join(kept, " "))
	}
	return out
}

// TestDPServiceDeadline: with dp-service, the deadline asks CaptureStop
// as dpcap stop does, and meets its stop defect the same way: the capture
// is marked refused (status NOT STOPPED, its port map kept) and ends once
// dp-service restarts. A dpcap serve started after a deadline passed asks
// for the stop at start-up, once, before anything else.
func TestDPServiceDeadline(t *testing.T) {
	f := newDPService(t, dpservicetest.Options{Offload: true})
	f.orchestrate(t, "vm-1", "vm-2")
	f.waitDataplane(t, "dp-service ready", func(d *control.DataplaneStatus) bool { return d.State == "ready" && len(d.Interfaces) == 2 })
	stops := f.svc.Calls("CaptureStop")
	if out, code := f.start(t, "--vf", "vm-1,vm-2", "--for", "2s"); code != 0 || !strings.Contains(out, "captures vm-1, vm-2") {
		t.Fatalf("start --for 2s: exit %d\n%s", code, out)
	}
	testkit.Eventually(t, 30*time.Second, "the deadline to call CaptureStop", func() bool { return f.svc.Calls("CaptureStop") > stops })
	st := f.waitDataplane(t, "the refused stop in status", func(d *control.DataplaneStatus) bool { return len(d.Stuck) == 2 })
	if st.StopRefused.IsZero() {
		t.Fatalf("after the deadline: %+v", st)
	}
	if out, _ := dpcap(t, "status", "--socket", f.socket); !strings.Contains(out, "NOT STOPPED: dp-service still captures vm-1, vm-2") {
		t.Fatalf("status after the deadline's refused stop:\n%s", out)
	}
	log := f.serveLog.String()
	if !strings.Contains(log, `msg="the capture's deadline has passed but it could not be stopped" by=deadline`) || !strings.Contains(log, "210 ALREADY_ACTIVE") {
		t.Fatalf("the log does not say the deadline's stop was refused:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(f.state, "portmap.json")); err != nil {
		t.Fatalf("the port map went while dp-service still captures: %v", err)
	}
	// dpcap stop is the same stop, refused the same way.
	out, code := dpcap(t, "stop", "--socket", f.socket)
	oneLine(t, "stop after the deadline", out, code, 1, "did not stop capture", "210 ALREADY_ACTIVE", "still captures vm-1, vm-2")
	if err := f.svc.Restart(); err != nil { // what ends it
		t.Fatal(err)
	}
	f.orchestrate(t, "vm-1", "vm-2")
	testkit.Eventually(t, 10*time.Second, "the capture to end", func() bool { return !f.status(t).Active })

	// dpcap serve is down past the deadline: it asks for the stop at
	// start-up (once), and applies nothing.
	if out, code := f.start(t, "--vf", "vm-1", "--for", "2s"); code != 0 {
		t.Fatalf("start --for 2s: exit %d\n%s", code, out)
	}
	deadline := f.status(t).Deadline
	f.stopServe(t) // dp-service's capture outlives it
	testkit.Eventually(t, 30*time.Second, "the deadline to pass", func() bool { return time.Now().After(deadline) })
	starts, stops := f.svc.Calls("CaptureStart"), f.svc.Calls("CaptureStop")
	f.startServe(t)
	st = f.waitDataplane(t, "the start-up stop refused", func(d *control.DataplaneStatus) bool { return len(d.Stuck) == 1 })
	if st.StopRefused.IsZero() || f.svc.Calls("CaptureStop") != stops+1 || f.svc.Calls("CaptureStart") != starts {
		t.Fatalf("after a start-up past the deadline: %+v; %d CaptureStop, %d CaptureStart calls\n%s", st, f.svc.Calls("CaptureStop")-stops, f.svc.Calls("CaptureStart")-starts, f.serveLog)
	}
}
