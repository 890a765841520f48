package e2e

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/dpservice/dpservicetest"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/portmap"
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

// TestCaptureIDTravels: every start gets an id, shown by start and
// status; it is in the port map dpcap serve publishes, in the pcapng
// interface descriptions of sinkd's files (capinfos and tshark show it)
// and in the uploads' metadata; and dpcap fetch --capture ID, from MinIO
// or from the sink's directory, returns each of two sessions on the same
// port with its frames and no other's, though one file holds both.
func TestCaptureIDTravels(t *testing.T) {
	vm, hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	// No IPv6 chatter from the VM: only the test's frames cross the port.
	for _, c := range []string{"all", "default"} {
		vm.Run(t, "sysctl", "-qw", "net.ipv6.conf."+c+".disable_ipv6=1")
	}
	if out, err := exec.Command("ip", "link", "add", "vm0", "netns", vm.Name, "type", "veth", "peer", "name", "tap-vm1", "netns", hv.Name).CombinedOutput(); err != nil {
		t.Fatalf("veth: %v %s", err, out)
	}
	vm.Run(t, "ip", "link", "set", "vm0", "up")
	hv.Run(t, "ip", "link", "set", "tap-vm1", "up")
	testkit.Link(t, hv, sk, 1600, 2)
	store, client := storeIn(t, sk)
	tmp := t.TempDir()
	socket, state, sinkDir := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state"), filepath.Join(tmp, "sink")
	if err := os.Mkdir(sinkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	startServe(t, hv, socket, state)
	const bucket = "s3://captures/e2e"

	r := rand.New(rand.NewPCG(23, 0))
	var sinkd *daemon
	sent := map[string][][]byte{}
	var ids []string
	for session := range 2 {
		reads := 0
		if sinkd != nil {
			reads = strings.Count(sinkd.stderr.String(), "port map read again")
		}
		st := startBounded(t, socket, "--for", "1m")
		if st.ID == "" || (session > 0 && st.ID <= ids[0]) {
			t.Fatalf("session %d: id %q after %q", session, st.ID, ids)
		}
		ids = append(ids, st.ID)
		if out, _ := dpcap(t, "status", "--socket", socket); !strings.Contains(out, "id:      "+st.ID+"\n") {
			t.Fatalf("status shows no id:\n%s", out)
		}
		m, err := portmap.Load(filepath.Join(state, "portmap.json"))
		if err != nil || len(m.Ports) != 1 || m.Ports[0].Capture != st.ID {
			t.Fatalf("the published port map does not name capture %s: %+v %v", st.ID, m, err)
		}
		if session == 0 {
			sinkd = startSinkd(t, sk, "--listen", "2001:db8:2::2", "-w", filepath.Join(sinkDir, "cap.pcapng"), "--port-map", filepath.Join(state, "portmap.json"),
				"--upload", bucket, "--upload-endpoint", store.Endpoint(), "--upload-path-style", "--upload-sink-id", "sink-a", "--upload-retry-max", "1s")
		} else {
			// The sink takes the new map within a second (docs/PORTMAP.md).
			testkit.Eventually(t, 10*time.Second, "sinkd to read the second session's map", func() bool {
				return strings.Count(sinkd.stderr.String(), "port map read again") > reads
			})
		}
		var frames [][]byte
		for i := range 15 {
			frames = append(frames, randomFrame(r, 60+i*31+session))
		}
		sendRaw(t, vm, "vm0", frames)
		sent[st.ID] = frames
		sinkd.waitMetric(t, "sinkd_packets_received_total", float64(15*(session+1)))
		// /metrics labels the map's current capture only.
		var infos []string
		for k := range sinkd.metrics(t) {
			if strings.HasPrefix(k, "sinkd_port_map_capture_info") {
				infos = append(infos, k)
			}
		}
		if want := `sinkd_port_map_capture_info{capture="` + st.ID + `"}`; len(infos) != 1 || infos[0] != want {
			t.Errorf("capture info metrics %q, want %s", infos, want)
		}
		if out, code := dpcap(t, "stop", "--socket", socket); code != 0 {
			t.Fatalf("dpcap stop: exit %d\n%s", code, out)
		}
	}
	if code, stderr := sinkd.stop(t, syscall.SIGTERM); code != 0 || !strings.Contains(stderr, "files uploaded") {
		t.Fatalf("sinkd: exit %d\n%s", code, stderr)
	}

	// One file holds both sessions, on two interfaces named vm-1.
	file := filepath.Join(sinkDir, "cap.pcapng")
	info, err := exec.Command("capinfos", file).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos: %v\n%s", err, info)
	}
	for _, id := range ids {
		if !strings.Contains(string(info), "; dpcap capture "+id+"\n") {
			t.Errorf("capinfos does not show capture %s:\n%s", id, info)
		}
	}
	lines := tsharkFields(t, file, "-e", "frame.interface_name", "-e", "frame.interface_description")
	if len(lines) != 30 {
		t.Fatalf("tshark reads %d frames, want 30", len(lines))
	}
	for i, l := range lines {
		if name, desc, _ := strings.Cut(l, "\t"); name != "vm-1" || !strings.HasSuffix(desc, "; dpcap capture "+ids[i/15]) {
			t.Errorf("frame %d: interface %q, want vm-1 of capture %s", i+1, l, ids[i/15])
		}
	}
	h, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("captures"), Key: aws.String(onlyKey(t, listKeys(t, client, "captures")))})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Metadata["dpcap-captures"]; got != ids[0]+","+ids[1] {
		t.Errorf("the upload's dpcap-captures metadata is %q, want %s,%s", got, ids[0], ids[1])
	}

	for _, id := range ids {
		for _, loc := range [][]string{{bucket, "--endpoint", store.Endpoint(), "--path-style"}, {sinkDir}} {
			out := filepath.Join(tmp, "fetched-"+id+".pcapng")
			cmd := sk.Cmd(bin("dpcap"), append(append([]string{"fetch"}, loc...), "--capture", id, "-w", out)...)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("dpcap fetch %s --capture %s: %v\n%s", loc[0], id, err, msg)
			}
			equalFrames(t, readFrames(t, out), sent[id])
		}
	}
	// An id no file holds matches nothing.
	if msg, err := sk.Cmd(bin("dpcap"), "fetch", sinkDir, "--capture", "20200101-000000.000-000000", "-w", filepath.Join(tmp, "none.pcapng")).CombinedOutput(); err == nil || !strings.Contains(string(msg), "no packet matched") {
		t.Errorf("fetch of an id never used: %v\n%s", err, msg)
	}
}

// onlyKey returns the one key of keys.
func onlyKey(t *testing.T, keys []string) string {
	t.Helper()
	if len(keys) != 1 {
		t.Fatalf("%d objects, want 1: %q", len(keys), keys)
	}
	return keys[0]
}
