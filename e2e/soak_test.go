package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// TestSoak runs sinkd under steady load, rotating every 5 seconds, for
// DPCAP_SOAK_SECONDS at DPCAP_SOAK_PPS (default 140000: 80% of the
// loss-free rate in docs/BENCHMARKS.md); make soak sets them, make test
// does not, and then it is skipped. Every scrape of /metrics must keep the
// accounting identity; it fails on a lost packet, an invalid file, RSS
// growth or file descriptor growth.
func TestSoak(t *testing.T) {
	seconds, err := strconv.Atoi(os.Getenv("DPCAP_SOAK_SECONDS"))
	if err != nil || seconds <= 0 {
		t.Skip("set DPCAP_SOAK_SECONDS (make soak) to run the soak")
	}
	pps := 140000
	if v := os.Getenv("DPCAP_SOAK_PPS"); v != "" {
		if pps, err = strconv.Atoi(v); err != nil || pps <= 0 {
			t.Fatalf("DPCAP_SOAK_PPS=%q: want a positive number", v)
		}
	}
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	dir := t.TempDir()
	d := startSinkd(t, sk, "--listen", "2001:db8:1::2", "-G", "5", "-w", filepath.Join(dir, "soak-%Y%m%d-%H%M%S.pcap"))
	pid := d.cmd.Process.Pid // ip netns exec executes sinkd in its place
	rss0, fds0 := rssKiB(t, pid), openFiles(t, pid)
	t.Logf("soak: %ds at %d pps, rotating every 5 s; sinkd RSS %d KiB, %d fds at start", seconds, pps, rss0, fds0)

	sender := hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", "0",
		"--count", strconv.Itoa(seconds*pps), "--pps", strconv.Itoa(pps), vmTraffic)
	replayErr := &syncBuffer{}
	sender.Stderr = replayErr
	if err := sender.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sender.Wait() }()
	scrapes := 0
	for tick := time.NewTicker(10 * time.Second); ; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("dpcap replay: %v\n%s", err, replayErr)
			}
		case <-tick.C:
			m := d.metrics(t)
			identity(t, m)
			scrapes++
			t.Logf("  %d received, %d written, %d socket drops; RSS %d KiB, %d fds, %d files",
				int(m["sinkd_packets_received_total"]), int(m["sinkd_packets_written_total"]), int(m["sinkd_socket_drops_total"]),
				rssKiB(t, pid), openFiles(t, pid), len(soakFiles(t, dir)))
			continue
		}
		tick.Stop()
		break
	}
	var sent int
	if _, err := fmt.Sscanf(replayErr.String(), "sent %d packets", &sent); err != nil {
		t.Fatalf("dpcap replay said %q", replayErr)
	}
	d.waitStable(t, "sinkd_packets_received_total")
	rss1, fds1 := rssKiB(t, pid), openFiles(t, pid)
	m := d.metrics(t)
	identity(t, m)
	received, written, drops := m["sinkd_packets_received_total"], m["sinkd_packets_written_total"], m["sinkd_socket_drops_total"]
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd exited %d: %s", code, stderr)
	}
	total, bad := 0, 0
	files := soakFiles(t, dir)
	for _, f := range files {
		out, err := exec.Command("capinfos", "-c", "-M", "-T", "-r", f).Output()
		fields := strings.Fields(string(out))
		n, convErr := 0, error(nil)
		if len(fields) > 0 {
			n, convErr = strconv.Atoi(fields[len(fields)-1])
		}
		if err != nil || len(fields) == 0 || convErr != nil {
			bad++
			continue
		}
		total += n
	}
	t.Logf("sent %d, received %d, written %d, in files %d, socket drops %d; %d files, %d invalid; %d scrapes kept the identity",
		sent, int(received), int(written), total, int(drops), len(files), bad, scrapes+1)
	t.Logf("sinkd RSS %d -> %d KiB, fds %d -> %d", rss0, rss1, fds0, fds1)
	if float64(sent) != received || received != written || written != float64(total) || drops != 0 {
		t.Error("packets lost")
	}
	if bad != 0 {
		t.Error("invalid files")
	}
	if fds1 > fds0 {
		t.Error("file descriptors grew")
	}
	if rss1 > rss0*3/2+4096 {
		t.Error("RSS grew")
	}
}

func soakFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// rssKiB is the resident set of process pid.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
