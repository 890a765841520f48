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
