package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// extcapDir asks tshark where it looks for extcap programs.
func extcapDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("tshark", "-G", "folders").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Extcap path" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("tshark names no extcap folder:\n%s", out)
	return ""
}

// TestWiresharkLiveView installs sinkd as an extcap: tshark lists the
// dpcap interface and captures the decapsulated frames live.
func TestWiresharkLiveView(t *testing.T) {
	link := filepath.Join(extcapDir(t), "dpcap-sink-e2e")
	os.Remove(link)
	if err := os.Symlink(bin("sinkd"), link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	out, err := exec.Command("tshark", "-D").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dpcap (dpcap sink: frames the NIC sampled, decapsulated)") {
		t.Fatalf("tshark -D does not list the interface: %v\n%s", err, out)
	}
	ns := testkit.NewNetNS(t)
	capture := filepath.Join(t.TempDir(), "live.pcap")
	tshark := ns.Cmd("tshark", "-i", "dpcap", "-c", "74", "-w", capture)
	var stderr syncBuffer
	tshark.Stderr = &stderr
	if err := tshark.Start(); err != nil {
		t.Fatal(err)
	}
	defer tshark.Process.Kill()
	// tshark starts sinkd; wait until it listens.
	testkit.Eventually(t, 10*time.Second, "sinkd under tshark", func() bool {
		out, _ := ns.Cmd("ss", "-Hlun", "sport", "= :3010").Output()
		return strings.Contains(string(out), "3010")
	})
	replay(t, ns, "[::1]:3010", vmTraffic)
	done := make(chan error, 1)
	go func() { done <- tshark.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("tshark did not capture 74 frames:\n%s", stderr.String())
	}
	equalFrames(t, readFrames(t, capture), testkit.VMFrames(t))
	// sinkd ends with tshark.
	testkit.Eventually(t, 10*time.Second, "sinkd to exit", func() bool {
		out, _ := ns.Cmd("ss", "-Hlun", "sport", "= :3010").Output()
		return !strings.Contains(string(out), "3010")
	})
}
