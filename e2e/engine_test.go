package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// TestStopDrainsTheSocket is the hardening break "packets queued at stop
// are lost uncounted": sinkd is frozen (SIGSTOP) while 5000 envelopes
// queue in its socket, then told to stop and thawed (SIGTERM + SIGCONT).
// Every queued envelope is written, and the summary says so.
func TestStopDrainsTheSocket(t *testing.T) {
	ns := testkit.NewNetNS(t)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, ns, "-w", out)
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const sent = 68 * 74 // 5032 envelopes
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "68")
	time.Sleep(100 * time.Millisecond)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Process.Signal(syscall.SIGCONT)
	code, stderr := d.wait(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{
		fmt.Sprintf("%d packets captured", sent),
		fmt.Sprintf("%d packets received", sent),
		"0 packets dropped by kernel",
	} {
		if !strings.Contains(stderr, line+"\n") {
			t.Errorf("summary lacks %q:\n%s", line, stderr)
		}
	}
	if strings.Contains(stderr, "still queued when the capture stopped") {
		t.Errorf("packets dropped at stop:\n%s", stderr)
	}
	checkWithTools(t, out, sent)
}

// TestCountDropsWhatIsLeft stops at -c while more envelopes are queued:
// the file holds exactly the count, and the rest are counted as dropped at
// stop, in the summary and so in the identity.
func TestCountDropsWhatIsLeft(t *testing.T) {
	ns := testkit.NewNetNS(t)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, ns, "-w", out, "-c", "100")
	d.cmd.Process.Signal(syscall.SIGSTOP)
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "10") // 740
	d.cmd.Process.Signal(syscall.SIGCONT)
	code, stderr := d.wait(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{"100 packets captured", "740 packets received",
		"640 packets dropped, still queued when the capture stopped"} {
		if !strings.Contains(stderr, line+"\n") {
			t.Errorf("summary lacks %q:\n%s", line, stderr)
		}
	}
	checkWithTools(t, out, 100)
}

// TestAllowHonoursZones is the hardening break "--allow ignores the zone":
// a zone requires the arrival interface, a zone naming no interface is a
// usage error, and an IPv4 sender matches its ::ffff: spelling.
func TestAllowHonoursZones(t *testing.T) {
	hv1, hv2, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv1, sk, 1600, 1) // e2e0
	testkit.Link(t, hv2, sk, 1600, 2) // e2e1
	out := filepath.Join(t.TempDir(), "out.pcap")
	// hv2's IPv6 address is allowed only as arriving on e2e0, which its
	// envelopes do not.
	d := startSinkd(t, sk, "-w", out, "--allow", "2001:db8:1::/64%e2e0,2001:db8:2::1%e2e0,::ffff:198.51.100.1")
	replay(t, hv1, "[2001:db8:1::2]:3010", vmTraffic)
	replay(t, hv2, "[2001:db8:2::2]:3010", vmTraffic)
	replay(t, hv2, "198.51.100.2:3010", vmTraffic, "--count", "5")
	m := d.waitMetric(t, "sinkd_packets_received_total", 74+74+5)
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := m[`sinkd_packets_dropped_total{reason="source_not_allowed"}`]; got != 74 {
		t.Errorf("denied %v, want 74 (hv2 over IPv6, on the wrong link)", got)
	}
	equalFrames(t, readFrames(t, out), append(testkit.VMFrames(t), testkit.VMFrames(t)[:5]...))

	for _, bad := range []string{"fe80::1%nosuch0", "fe80::1%"} {
		cmd := sk.Cmd(bin("sinkd"), "-w", filepath.Join(t.TempDir(), "x.pcap"), "--metrics-addr", "", "--allow", bad)
		msg, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), "invalid --allow") {
			t.Errorf("--allow %s: exit %d: %s", bad, cmd.ProcessState.ExitCode(), msg)
		}
	}
}

// TestSilentSinkSaysWhy sends envelopes whose length fields were never
// written to sinkd's UDP socket: the kernel discards every one before the
// socket. sinkd exports the namespace's counters that rise and logs, once,
// that 'sinkd -i IFACE' is the fix.
func TestSilentSinkSaysWhy(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	envs := unsetLengths(t, hv, sk, testkit.VMFrames(t))
	d := startSinkd(t, sk, "-w", filepath.Join(t.TempDir(), "out.pcap"))
	before := d.metrics(t)[`sinkd_kernel_udp_errors_total{counter="Udp6InErrors"}`]
	// Keep sending, as a NIC would, until sinkd speaks up.
	testkit.Eventually(t, 10*time.Second, "the silent-sink warning", func() bool {
		sendRaw(t, hv, "e2e0", envs)
		time.Sleep(200 * time.Millisecond)
		return strings.Contains(d.stderr.String(), "sinkd -i IFACE")
	})
	m := d.metrics(t)
	if got := m[`sinkd_kernel_udp_errors_total{counter="Udp6InErrors"}`] - before; got < 74 {
		t.Errorf("Udp6InErrors rose by %v, want at least 74", got)
	}
	if m["sinkd_packets_received_total"] != 0 {
		t.Errorf("received %v", m["sinkd_packets_received_total"])
	}
	sendRaw(t, hv, "e2e0", envs)
	time.Sleep(2500 * time.Millisecond)
	_, stderr := d.stop(t, syscall.SIGTERM)
	if n := strings.Count(stderr, "sinkd -i IFACE"); n != 1 {
		t.Errorf("the warning appears %d times, want once:\n%s", n, stderr)
	}
	if !strings.Contains(stderr, "Udp6InErrors=") {
		t.Errorf("the warning does not name the counter:\n%s", stderr)
	}
}

// identity checks the accounting identity in one scrape and returns the
// packets received.
func identity(t *testing.T, m map[string]float64) float64 {
	t.Helper()
	sum := m["sinkd_packets_written_total"] + m["sinkd_packets_buffered"] + m["sinkd_packets_filtered_total"] +
		m["sinkd_fragments_held"] + m["sinkd_fragments_absorbed_total"]
	for k, v := range m {
		for _, p := range []string{"sinkd_packets_malformed_total{", "sinkd_packets_skipped_total{", "sinkd_packets_dropped_total{",
			"sinkd_fragments_evicted_total{"} {
			if strings.HasPrefix(k, p) {
				sum += v
			}
		}
	}
	if rx := m["sinkd_packets_received_total"]; rx != sum {
		t.Errorf("a scrape breaks the identity: received %v, accounted %v: %v", rx, sum, m)
	}
	return m["sinkd_packets_received_total"]
}

// scrapeWhileSending starts the senders and checks the identity in every
// scrape of d's /metrics until they are done; at least 10 scrapes must see
// traffic move.
func scrapeWhileSending(t *testing.T, d *daemon, senders []*exec.Cmd) {
	t.Helper()
	done := make(chan error, len(senders))
	for _, c := range senders {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- c.Wait() }()
	}
	scrapes, last := 0, -1.0
	for running := len(senders); running > 0; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("a sender failed: %v", err)
			}
			running--
		default:
		}
		if rx := identity(t, d.metrics(t)); rx != last {
			scrapes, last = scrapes+1, rx
		}
	}
	if scrapes < 10 {
		t.Errorf("only %d scrapes saw traffic move", scrapes)
	}
}

// summed adds up the summary lines "N packets WORD" of sinkd's stderr.
func summed(stderr string) map[string]int {
	sum := map[string]int{}
	for _, line := range strings.Split(stderr, "\n") {
		var n int
		var what string
		if _, err := fmt.Sscanf(line, "%d packets %s", &n, &what); err == nil {
			sum[what] += n
		}
	}
	return sum
}

// TestIdentityUnderLoad is the hardening break "written > received during
// rotation": sinkd rotates every few packets while allowed, denied,
// filtered and malformed envelopes flow; every scrape must add up. Then it
// is frozen while more queue, and -c ends it mid-queue: the rest are
// dropped at stop, and the summary adds up too.
func TestIdentityUnderLoad(t *testing.T) {
	hv1, hv2, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv1, sk, 1600, 1)
	testkit.Link(t, hv2, sk, 1600, 2)
	dir := t.TempDir()
	short := make([][]byte, 200)
	for i := range short {
		short[i] = make([]byte, 10) // shorter than an Ethernet header
	}
	shortFile := testkit.WritePcap(t, short)
	d := startSinkd(t, sk, "-w", filepath.Join(dir, "out.pcap"), "-C", "10k", "-c", "3000",
		"--allow", "2001:db8:1::/64", "ip")
	senders := []*exec.Cmd{
		hv1.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", "60", "--pps", "3000", vmTraffic), // 2040 IPv4 frames
		hv2.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:2::2]:3010", "--loop", "20", "--pps", "1000", vmTraffic), // not allowed
		hv1.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", "5", "--pps", "700", shortFile),   // malformed
	}
	scrapeWhileSending(t, d, senders)
	m := d.waitMetric(t, "sinkd_packets_received_total", 60*74+20*74+5*200)
	identity(t, m)
	for _, k := range []string{"sinkd_files_rotated_total", `sinkd_packets_malformed_total{reason="short_frame"}`,
		`sinkd_packets_dropped_total{reason="source_not_allowed"}`, "sinkd_packets_filtered_total"} {
		if m[k] == 0 {
			t.Errorf("%s is 0: the load lacks a case", k)
		}
	}

	// Frozen, 40 more rounds queue (1360 IPv4 frames): -c 3000 is reached
	// within them, and the rest are dropped at stop.
	d.cmd.Process.Signal(syscall.SIGSTOP)
	replay(t, hv1, "[2001:db8:1::2]:3010", vmTraffic, "--loop", "40")
	d.cmd.Process.Signal(syscall.SIGCONT)
	code, stderr := d.wait(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sum := summed(stderr)
	rx := 60*74 + 20*74 + 5*200 + 40*74
	if sum["captured"] != 3000 || sum["received"] != rx || sum["dropped,"] == 0 ||
		sum["captured"]+sum["malformed"]+sum["filtered"]+sum["from"]+sum["dropped,"] != rx {
		t.Errorf("the summary does not add up to %d received:\n%s", rx, stderr)
	}
}

// TestStopDrainsTheRing is TestStopDrainsTheSocket for -i: what the
// capture ring holds when sinkd is told to stop is written.
func TestStopDrainsTheRing(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	want := testkit.VMFrames(t)
	var envs [][]byte
	for range 10 {
		envs = append(envs, unsetLengths(t, hv, sk, want)...)
	}
	out := filepath.Join(t.TempDir(), "raw.pcap")
	d := startSinkd(t, sk, "-i", "e2e0", "-w", out)
	d.cmd.Process.Signal(syscall.SIGSTOP)
	sendRaw(t, hv, "e2e0", envs)
	time.Sleep(100 * time.Millisecond)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Process.Signal(syscall.SIGCONT)
	code, stderr := d.wait(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf("%d packets captured\n", len(envs))) ||
		!strings.Contains(stderr, "0 packets dropped by kernel\n") {
		t.Errorf("want all %d envelopes written:\n%s", len(envs), stderr)
	}
	checkWithTools(t, out, len(envs))
}
