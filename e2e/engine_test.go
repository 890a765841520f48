package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopDrainsTheSocket is the hardening break "packets queued at stop
// are lost uncounted": sinkd is frozen (SIGSTOP) while 5000 envelopes
// queue in its socket, then told to stop and thawed (SIGTERM + SIGCONT).
// Every queued envelope is written, and the summary says so.
func TestStopDrainsTheSocket(t *testing.T) {
	ns := newNS(t)
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
	ns := newNS(t)
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
	hv1, hv2, sk := newNS(t), newNS(t), newNS(t)
	linkN(t, hv1, sk, 1600, 1) // e2e0
	linkN(t, hv2, sk, 1600, 2) // e2e1
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
	equalFrames(t, readFrames(t, out), append(vmFrames(t), vmFrames(t)[:5]...))

	for _, bad := range []string{"fe80::1%nosuch0", "fe80::1%"} {
		cmd := sk.cmd(bin("sinkd"), "-w", filepath.Join(t.TempDir(), "x.pcap"), "--metrics-addr", "", "--allow", bad)
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
	hv, sk := newNS(t), newNS(t)
	link(t, hv, sk, 1600)
	envs := unsetLengths(t, hv, sk, vmFrames(t))
	d := startSinkd(t, sk, "-w", filepath.Join(t.TempDir(), "out.pcap"))
	before := d.metrics(t)[`sinkd_kernel_udp_errors_total{counter="Udp6InErrors"}`]
	// Keep sending, as a NIC would, until sinkd speaks up.
	waitFor(t, "the silent-sink warning", func() bool {
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
