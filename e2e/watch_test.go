package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/testkit"
)

// taggedMap is the port map of dpcap's own backends on the hypervisor
// 2001:db8:1::1: vm-1 tag 1, vm-2 tag 2.
func taggedMap(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(flowprog.TagTable{"vm-1": 1, "vm-2": 2}.PortMap(netip.MustParseAddr("2001:db8:1::1"), []string{"vm-1", "vm-2"}))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "ports.json")
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// watch starts dpcap watch in the viewer's namespace with the sink's URL,
// CA and token file before args, its standard output to stdout (nil:
// none).
func (l *liveSink) watch(t *testing.T, stdout *os.File, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := l.hv.Cmd(bin("dpcap"), append([]string{"watch", l.base, "--ca", l.certs.CA, "--token-file", l.tokenFile}, args...)...)
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stderr
}

// waitExit waits for cmd to exit and returns its status.
func waitExit(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) int {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit:\n%s", cmd.Args[0], stderr)
	}
	return cmd.ProcessState.ExitCode()
}

// TestWatchGetsThePortsFrames: dpcap watch -w FILE --port vm-1 gets
// exactly the frames sinkd wrote for vm-1, and not vm-2's; a wrong token
// is refused in one line.
func TestWatchGetsThePortsFrames(t *testing.T) {
	l := newLiveSink(t, taggedMap(t), false)
	dir := t.TempDir()
	files, watched := filepath.Join(dir, "sink.pcapng"), filepath.Join(dir, "watched.pcapng")
	d := l.start(t, files)
	cmd, stderr := l.watch(t, nil, "--port", "vm-1", "-c", "74", "-w", watched)
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "2", "--count", "40")
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	if code := waitExit(t, cmd, stderr); code != 0 {
		t.Fatalf("dpcap watch exit %d:\n%s", code, stderr)
	}
	if code, out := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd exit %d: %s", code, out)
	}
	checkWithTools(t, watched, 74)
	equalFrames(t, readFrames(t, watched), testkit.FramesByInterface(t, files)["vm-1"])
	equalFrames(t, readFrames(t, watched), testkit.VMFrames(t))
	if names := strings.Join(tsharkFields(t, watched, "-e", "frame.interface_name"), " "); names != strings.TrimSpace(strings.Repeat("vm-1 ", 74)) {
		t.Errorf("interfaces of the frames watched: %.200s", names)
	}
	if !strings.Contains(stderr.String(), "74 frames received, written to "+watched+"\n0 frames lost at the sink for this viewer\n0 reconnections\n") {
		t.Errorf("summary:\n%s", stderr)
	}

	// pcap: the frames as records after one header.
	d = l.start(t, filepath.Join(dir, "sink2.pcapng"))
	asPcap := filepath.Join(dir, "watched.pcap")
	cmd, stderr = l.watch(t, nil, "--port", "vm-1", "-c", "20", "--format", "pcap", "-w", asPcap)
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1", "--count", "20")
	if code := waitExit(t, cmd, stderr); code != 0 {
		t.Fatalf("dpcap watch --format pcap exit %d:\n%s", code, stderr)
	}
	checkWithTools(t, asPcap, 20)
	equalFrames(t, readFrames(t, asPcap), testkit.VMFrames(t)[:20])
	if b, err := os.ReadFile(asPcap); err != nil || binary.LittleEndian.Uint32(b) != pcapfile.MagicNano {
		t.Errorf("%s is not nanosecond pcap: %v", asPcap, err)
	}

	// The wrong token: one line, exit 1, no file.
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := filepath.Join(dir, "refused.pcapng")
	cmd = l.hv.Cmd(bin("dpcap"), "watch", l.base, "--ca", l.certs.CA, "--token-file", wrong, "-w", refused)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "401") ||
		strings.Contains(string(out), "not-the-token") {
		t.Errorf("a wrong token: %v\n%s", err, out)
	}
	if _, err := os.Lstat(refused); !os.IsNotExist(err) {
		t.Errorf("%s made: %v", refused, err)
	}
	d.stop(t, syscall.SIGTERM)
}

// framesIn counts the frames of a capture still being written, once it
// reads whole.
func framesIn(name string) int {
	pkts, _, err := pcapfile.ReadFile(name)
	if err != nil {
		return -1
	}
	return len(pkts)
}

// TestWatchReconnectsWhenTheSinkRestarts kills sinkd under a running
// dpcap watch and starts it again on the same address: the watch says it
// reconnects, and its output is one capture holding the frames of both
// runs, each once.
func TestWatchReconnectsWhenTheSinkRestarts(t *testing.T) {
	l := newLiveSink(t, taggedMap(t), false)
	dir := t.TempDir()
	watched, err := os.Create(filepath.Join(dir, "watched.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	defer watched.Close()
	d := l.start(t, filepath.Join(dir, "first.pcapng"))
	cmd, stderr := l.watch(t, watched, "--port", "vm-1", "-w", "-")
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	testkit.Eventually(t, 20*time.Second, "74 frames watched", func() bool { return framesIn(watched.Name()) == 74 })

	d.stop(t, syscall.SIGKILL)
	// Asked again while it is away: 0.5 s, then twice as long.
	testkit.Eventually(t, 20*time.Second, "the watch to find the sink away twice", func() bool {
		return strings.Contains(stderr.String(), "; reconnecting in 1s\n")
	})
	d = l.start(t, filepath.Join(dir, "second.pcapng"))
	testkit.Eventually(t, 30*time.Second, "the watch to reconnect", func() bool {
		return strings.Contains(stderr.String(), "dpcap watch: reconnected\n")
	})
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1", "--count", "40")
	testkit.Eventually(t, 20*time.Second, "114 frames watched", func() bool { return framesIn(watched.Name()) == 114 })
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, stderr); code != 0 {
		t.Fatalf("dpcap watch exit %d:\n%s", code, stderr)
	}
	checkWithTools(t, watched.Name(), 114)
	vm := testkit.VMFrames(t)
	equalFrames(t, readFrames(t, watched.Name()), append(vm[:74:74], vm[:40]...))
	// Each connection a section of its own, which tshark reads on.
	sections := strings.Join(tsharkFields(t, watched.Name(), "-e", "frame.section_number"), " ")
	if want := strings.TrimSpace(strings.Repeat("1 ", 74) + strings.Repeat("2 ", 40)); sections != want {
		t.Errorf("the frames' sections: %s", sections)
	}
	msgs := stderr.String()
	t.Logf("dpcap watch said:\n%s", msgs)
	for _, want := range []string{"dpcap watch: sink went away: the stream broke off: unexpected EOF; reconnecting in 500ms\n",
		"dpcap watch: sink went away: dial tcp [2001:db8:1::2]:9311: connect: connection refused; reconnecting in 1s\n", "dpcap watch: reconnected\n",
		"114 frames received, written to standard output\n", "1 reconnections\n"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msgs)
		}
	}
	d.stop(t, syscall.SIGTERM)
}

// TestWiresharkRemoteLiveView drives dpcap's extcap as Wireshark does:
// it lists the sink's ports (the environment names the sink), offers
// their options and reloads them, and captures the chosen port with the
// capture filter applied on the sink into a fifo that tshark reads; and
// tshark itself captures through it.
func TestWiresharkRemoteLiveView(t *testing.T) {
	l := newLiveSink(t, taggedMap(t), false)
	dir := t.TempDir()
	d := l.start(t, filepath.Join(dir, "sink.pcapng"))
	env := append(os.Environ(), "DPCAP_LIVE_URL="+l.base, "DPCAP_LIVE_TOKEN_FILE="+l.tokenFile, "DPCAP_LIVE_CA="+l.certs.CA)
	extcap := func(args ...string) string {
		t.Helper()
		cmd := l.hv.Cmd(bin("dpcap"), args...)
		cmd.Env = env
		var stderr syncBuffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.String() != "" {
			t.Fatalf("dpcap %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	ifaces := extcap("--extcap-interfaces", "--extcap-version=4.0")
	for _, want := range []string{"interface {value=dpcap-live}", "interface {value=dpcap-live-vm-1}{display=dpcap live: vm-1", "interface {value=dpcap-live-vm-2}"} {
		if !strings.Contains(ifaces, want) {
			t.Errorf("--extcap-interfaces lacks %q:\n%s", want, ifaces)
		}
	}
	if config := extcap("--extcap-config", "--extcap-interface", "dpcap-live"); !strings.Contains(config, "value {arg=4}{value=vm-1}") ||
		strings.Contains(config, liveNOC) {
		t.Errorf("--extcap-config:\n%s", config)
	}
	env = os.Environ() // a reload is given the options' values
	if reload := extcap("--extcap-config", "--extcap-interface", "dpcap-live", "--extcap-reload-option", "port",
		"--url", l.base, "--token-file", l.tokenFile, "--ca", l.certs.CA); !strings.Contains(reload, "value {arg=4}{value=vm-2}{display=vm-2") {
		t.Errorf("--extcap-reload-option port:\n%s", reload)
	}

	// The capture filter is the sink's expression: only vm-1's UDP
	// frames come, as tcpdump selects them from what was sent.
	wantFile := filepath.Join(dir, "want.pcap")
	if out, err := exec.Command("tcpdump", "-r", vmTraffic, "-w", wantFile, "udp").CombinedOutput(); err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, out)
	}
	want := readFrames(t, wantFile)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "got.pcapng")
	tshark := l.hv.Cmd("tshark", "-i", fifo, "-c", "6", "-w", got)
	tsharkErr := startCmd(t, tshark)
	capture := l.hv.Cmd(bin("dpcap"), "--capture", "--extcap-interface", "dpcap-live", "--fifo", fifo,
		"--extcap-capture-filter", "udp", "--url", l.base, "--token-file", l.tokenFile, "--ca", l.certs.CA, "--port", "vm-1")
	captureErr := startCmd(t, capture)
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "2")
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	if code := waitExit(t, tshark, tsharkErr); code != 0 {
		t.Fatalf("tshark exit %d:\n%s", code, tsharkErr)
	}
	// The fifo's reader gone, the extcap ends, quietly.
	if code := waitExit(t, capture, captureErr); code != 0 || captureErr.String() != "" {
		t.Errorf("extcap exit %d, stderr %q", code, captureErr)
	}
	equalFrames(t, readFrames(t, got), want)

	// tshark starting the extcap itself, from its folder.
	link := filepath.Join(extcapDir(t), "dpcap-live-e2e")
	os.Remove(link)
	if err := os.Symlink(bin("dpcap"), link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	viaTshark := filepath.Join(dir, "via-tshark.pcapng")
	tshark = l.hv.Cmd("tshark", "-i", "dpcap-live-vm-1", "-f", "udp", "-c", "6", "-w", viaTshark)
	tshark.Env = append(os.Environ(), "DPCAP_LIVE_URL="+l.base, "DPCAP_LIVE_TOKEN_FILE="+l.tokenFile, "DPCAP_LIVE_CA="+l.certs.CA)
	tsharkErr = startCmd(t, tshark)
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	if code := waitExit(t, tshark, tsharkErr); code != 0 {
		t.Fatalf("tshark -i dpcap-live-vm-1 exit %d:\n%s", code, tsharkErr)
	}
	equalFrames(t, readFrames(t, viaTshark), want)
	d.stop(t, syscall.SIGTERM)
}

// TestWatchCountsItsLosses stops a viewer while the sink sends more than
// its queue holds: the sink loses the viewer's frames, and the watch's
// summary says as many as the sink counted, from the statistics blocks of
// its stream; what it received and lost are what sinkd wrote.
func TestWatchCountsItsLosses(t *testing.T) {
	l := newLiveSink(t, taggedMap(t), false)
	// A write timeout far beyond the stop: the viewer is slow, not gone.
	l.args = append(l.args, "--live-queue", "64k", "--live-write-timeout", "60s")
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched.pcapng")
	d := l.start(t, filepath.Join(dir, "sink.pcapng"))
	cmd, stderr := l.watch(t, nil, "--port", "vm-1", "-w", watched)
	d.waitMetric(t, "sinkd_live_viewers", 1)
	cmd.Process.Signal(syscall.SIGSTOP)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1", "--loop", "200", "--pps", "50000")
	cmd.Process.Signal(syscall.SIGCONT)
	var m map[string]float64
	testkit.Eventually(t, 30*time.Second, "every frame written sent or lost", func() bool {
		m = d.metrics(t)
		return m["sinkd_packets_written_total"] > 0 &&
			m["sinkd_live_frames_sent_total"]+m[`sinkd_live_frames_lost_total{reason="queue_full"}`] == m["sinkd_packets_written_total"]
	})
	sent, lost := m["sinkd_live_frames_sent_total"], m[`sinkd_live_frames_lost_total{reason="queue_full"}`]
	if lost == 0 {
		t.Fatalf("the sink lost nothing for the stopped viewer: %v sent", sent)
	}
	// sinkd's end gives the stream its last statistics.
	d.stop(t, syscall.SIGTERM)
	testkit.Eventually(t, 20*time.Second, "the watch to see the sink go", func() bool {
		return strings.Contains(stderr.String(), "sink went away: the stream ended")
	})
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd, stderr); code != 0 {
		t.Fatalf("dpcap watch exit %d:\n%s", code, stderr)
	}
	want := fmt.Sprintf("%.0f frames received, written to %s\n%.0f frames lost at the sink for this viewer (its queue was full", sent, watched, lost)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("summary:\n%s\nwant %q", stderr, want)
	}
	if n := len(readFrames(t, watched)); n != int(sent) {
		t.Errorf("%s holds %d frames, the sink sent %v", watched, n, sent)
	}
	t.Logf("%v written, %v sent, %v lost:\n%s", m["sinkd_packets_written_total"], sent, lost, stderr)
}

// TestWatchCounterOnATerminal runs dpcap watch -w FILE on a terminal
// (script's pseudo-terminal): it counts the frames on one line, as tcpdump
// -w does, and clears it for the summary.
func TestWatchCounterOnATerminal(t *testing.T) {
	l := newLiveSink(t, taggedMap(t), false)
	dir := t.TempDir()
	d := l.start(t, filepath.Join(dir, "sink.pcapng"))
	watched := filepath.Join(dir, "watched.pcapng")
	cmd := l.hv.Cmd("script", "-qfec", strings.Join([]string{bin("dpcap"), "watch", l.base, "--ca", l.certs.CA,
		"--token-file", l.tokenFile, "--port", "vm-1", "-c", "74", "-w", watched}, " "), "/dev/null")
	term := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = term, term
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testkit.Eventually(t, 20*time.Second, "the counter", func() bool { return strings.Contains(term.String(), "\r\x1b[KGot 0") })
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	if code := waitExit(t, cmd, term); code != 0 {
		t.Fatalf("exit %d:\n%q", code, term)
	}
	if out := term.String(); !strings.Contains(out, "\r\x1b[K74 frames received, written to "+watched) {
		t.Errorf("the terminal got %q", out)
	}
	checkWithTools(t, watched, 74)
}

// TestWiresharkRemoteViewAcrossARestart kills sinkd under the extcap
// capturing into tshark's fifo and starts it again: the extcap
// reconnects, quietly, and tshark reads on through the new section.
func TestWiresharkRemoteViewAcrossARestart(t *testing.T) {
	l := newLiveSink(t, taggedMap(t), false)
	dir := t.TempDir()
	d := l.start(t, filepath.Join(dir, "first.pcapng"))
	fifo, got, logFile := filepath.Join(dir, "fifo"), filepath.Join(dir, "got.pcapng"), filepath.Join(dir, "extcap.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tshark := l.hv.Cmd("tshark", "-i", fifo, "-c", "114", "-w", got)
	tsharkErr := startCmd(t, tshark)
	capture := l.hv.Cmd(bin("dpcap"), "--capture", "--extcap-interface", "dpcap-live-vm-1", "--fifo", fifo,
		"--url", l.base, "--token-file", l.tokenFile, "--ca", l.certs.CA, "--log-file", logFile)
	captureErr := startCmd(t, capture)
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1")
	d.waitMetric(t, "sinkd_live_frames_sent_total", 74)
	d.waitStable(t, "sinkd_live_bytes_sent_total") // in the kernel's hands, which a SIGKILL leaves them in
	d.stop(t, syscall.SIGKILL)
	d = l.start(t, filepath.Join(dir, "second.pcapng"))
	d.waitMetric(t, "sinkd_live_viewers", 1)
	replay(t, l.hv, "[2001:db8:1::2]:3010", vmTraffic, "--tag", "1", "--count", "40")
	if code := waitExit(t, tshark, tsharkErr); code != 0 {
		t.Fatalf("tshark exit %d:\n%s", code, tsharkErr)
	}
	if code := waitExit(t, capture, captureErr); code != 0 || captureErr.String() != "" {
		t.Errorf("extcap exit %d, stderr %q", code, captureErr)
	}
	vm := testkit.VMFrames(t)
	equalFrames(t, readFrames(t, got), append(vm[:74:74], vm[:40]...))
	log, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(log), "dpcap: sink went away: the stream broke off") || !strings.Contains(string(log), "dpcap: reconnected\n") {
		t.Errorf("the extcap's log: %v\n%s", err, log)
	}
}

// startCmd starts cmd, its standard error into the buffer it returns,
// and kills it at the test's end if it is still running.
func startCmd(t *testing.T, cmd *exec.Cmd) *syncBuffer {
	t.Helper()
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return stderr
}
