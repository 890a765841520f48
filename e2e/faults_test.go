package e2e

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// TestOutputDirectoryRemoved deletes the capture directory under sinkd:
// the loss is counted, and writing resumes in a new file once the
// directory is back.
func TestOutputDirectoryRemoved(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := filepath.Join(t.TempDir(), "captures")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"))
	replay(t, ns, "[::1]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the check runs about once a second
	replay(t, ns, "[::1]:3010", vmTraffic)
	testkit.Eventually(t, 10*time.Second, "the removal noticed", func() bool { return strings.Contains(d.stderr.String(), "was removed") })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a failed open is retried after a second
	replay(t, ns, "[::1]:3010", vmTraffic)
	replay(t, ns, "[::1]:3010", vmTraffic)
	m := d.waitMetric(t, "sinkd_packets_received_total", 4*74)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	names := testkit.DirNames(t, dir)
	if len(names) != 1 {
		t.Fatalf("files after the directory came back: %v\n%s", names, stderr)
	}
	n := len(readFrames(t, filepath.Join(dir, names[0])))
	checkWithTools(t, filepath.Join(dir, names[0]), n)
	if n < 74 {
		t.Errorf("the new file holds %d packets; the last replay alone sent 74", n)
	}
	if m["sinkd_write_errors_total"] == 0 && m[`sinkd_packets_dropped_total{reason="write_error"}`] == 0 {
		t.Logf("note: the removal cost no counted write (the new file opened at once)")
	}
}

// TestSIGKILLLeavesAReadableFile kills sinkd while it writes: tshark reads
// the file up to the last complete packet.
func TestSIGKILLLeavesAReadableFile(t *testing.T) {
	ns := testkit.NewNetNS(t)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, ns, "-w", out)
	sender := ns.Cmd(bin("dpcap"), "replay", "--sink", "[::1]:3010", "--loop", "0", "--pps", "50000", vmTraffic)
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sender.Process.Kill(); sender.Wait() }()
	d.waitMetric(t, "sinkd_packets_written_total", 20000)
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.wait(t)
	cmd := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.number")
	b, _ := cmd.Output()
	nums := strings.Fields(string(b))
	if len(nums) < 20000 {
		t.Fatalf("tshark read %d packets of a killed capture; sinkd had written 20000", len(nums))
	}
	if last, _ := strconv.Atoi(nums[len(nums)-1]); last != len(nums) {
		t.Errorf("tshark's packets are not numbered 1..%d", len(nums))
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 2 {
		t.Errorf("tshark exit %d", code)
	}
}

// TestSinkRestartWhileSending restarts sinkd while dpcap replay sends on:
// the sender never fails, and both runs write what they received.
func TestSinkRestartWhileSending(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	first := startSinkd(t, ns, "-w", filepath.Join(dir, "first.pcap"))
	sender := ns.Cmd(bin("dpcap"), "replay", "--sink", "[::1]:3010", "--loop", "0", "--pps", "2000", vmTraffic)
	var serr syncBuffer
	sender.Stderr = &serr
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	first.waitMetric(t, "sinkd_packets_written_total", 500)
	if code, _ := first.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("first sinkd exit %d", code)
	}
	time.Sleep(300 * time.Millisecond) // copies sent while nothing listens are lost, as with the NIC
	second := startSinkd(t, ns, "-w", filepath.Join(dir, "second.pcap"))
	second.waitMetric(t, "sinkd_packets_written_total", 500)
	sender.Process.Signal(syscall.SIGINT)
	if err := sender.Wait(); err != nil {
		t.Fatalf("the sender failed across the restart: %v\n%s", err, serr.String())
	}
	second.stop(t, syscall.SIGTERM)
	for _, f := range []string{"first.pcap", "second.pcap"} {
		n := len(readFrames(t, filepath.Join(dir, f)))
		if n < 500 {
			t.Errorf("%s holds %d packets", f, n)
		}
		checkWithTools(t, filepath.Join(dir, f), n)
	}
}

// TestDaemonKilledWhileCapturing SIGKILLs dpcap serve during a capture:
// the next daemon applies the saved capture again.
func TestDaemonKilledWhileCapturing(t *testing.T) {
	hv := testkit.NewNetNS(t)
	hv.Run(t, "ip", "link", "add", "tap-vm1", "type", "veth", "peer", "name", "vm0")
	hv.Run(t, "ip", "link", "set", "tap-vm1", "up")
	hv.Run(t, "ip", "addr", "add", "2001:db8::1/64", "dev", "tap-vm1", "nodad") // a route to the sink
	tmp := t.TempDir()
	socket, state := filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state")
	serve := startServe(t, hv, socket, state)
	if out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8::9", "--udp-dst-port", "3010", "--vf", "vm-1"); code != 0 {
		t.Fatalf("start: %s", out)
	}
	serve.cmd.Process.Signal(syscall.SIGKILL)
	serve.cmd.Wait()
	startServe(t, hv, socket, state) // the dead daemon's socket file is stale: replaced
	if st := status(t, socket); !st.Active || len(st.Ports) != 1 || st.Ports[0].Name != "vm-1" {
		t.Fatalf("after SIGKILL and restart: %+v", st)
	}
}

// TestReplayToARefusingSink replays over a veth to an IPv4 sink where
// nothing listens: the sink host refuses with ICMP port unreachable (which
// it rate-limits), and dpcap replay exits 1 with a line saying how many
// were refused, for one packet as for the file; with sinkd listening there,
// it exits 0.
func TestReplayToARefusingSink(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	refusal := regexp.MustCompile(`(?m)^dpcap replay: the sink refused [1-9][0-9]* of the (1|74) packets sent .*192\.0\.2\.2:3010\? \(sinkd -i binds no port: it captures them all the same\)$`)
	for _, count := range []string{"1", "74"} {
		out, err := hv.Cmd(bin("dpcap"), "replay", "--sink", "192.0.2.2:3010", "--count", count, vmTraffic).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !refusal.Match(out) {
			t.Errorf("--count %s to a port nobody listens on: %v\n%s", count, err, out)
		}
	}
	d := startSinkd(t, sk, "-w", filepath.Join(t.TempDir(), "out.pcap"))
	if out := replay(t, hv, "192.0.2.2:3010", vmTraffic); strings.Contains(out, "refused") {
		t.Errorf("refused with sinkd listening:\n%s", out)
	}
	d.waitMetric(t, "sinkd_packets_written_total", 74)
}

// TestReplayAcrossASmallerMTU replays frames larger than a router's next
// link over IPv4: the router's "fragmentation needed" makes the kernel
// fragment from then on, and replay, which queues ICMP errors to count
// refusals, takes the report and sends on; sinkd gets every frame after
// the first.
func TestReplayAcrossASmallerMTU(t *testing.T) {
	hv, router, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, router, 1600, 1) // 192.0.2.1 - .2
	testkit.Link(t, router, sk, 1300, 2) // 198.51.100.1 - .2
	router.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	hv.Run(t, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.2")
	sk.Run(t, "ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1")
	r := rand.New(rand.NewPCG(7, 7))
	var frames [][]byte
	for range 50 {
		frames = append(frames, randomFrame(r, 1400))
	}
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, sk, "-w", out)
	replay(t, hv, "198.51.100.2:3010", testkit.WritePcap(t, frames), "--pps", "500")
	// The first datagram, sent whole with DF set, is the one the router
	// drops when it reports the smaller MTU.
	d.waitMetric(t, "sinkd_packets_written_total", float64(len(frames)-1))
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	got := readFrames(t, out)
	equalFrames(t, got, frames[len(frames)-len(got):])
}
