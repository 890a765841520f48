package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// captureFiles reads every capture file in dir with the tools and returns
// the packets they hold together; a file they cannot read fails the test.
func captureFiles(t *testing.T, dir string, skip ...string) int {
	t.Helper()
	total := 0
	for _, name := range testkit.DirNames(t, dir) {
		p := filepath.Join(dir, name)
		if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() || slices.Contains(skip, name) {
			continue
		}
		n := len(readFrames(t, p))
		checkWithTools(t, p, n)
		total += n
	}
	return total
}

// TestPlantedFifoDoesNotHang plants a fifo at the next -C name (issue 11,
// break 3): sinkd used to block in open() for good. It skips the name,
// loudly, captures on, and stops on SIGTERM.
func TestPlantedFifoDoesNotHang(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "out.pcap1"), 0o666); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"), "-C", "40k")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "6")
	m := d.waitMetric(t, "sinkd_packets_written_total", 6*74)
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 || !strings.Contains(stderr, "a fifo: not a regular file") {
		t.Fatalf("exit %d; the skip was not logged:\n%s", code, stderr)
	}
	if st, err := os.Lstat(filepath.Join(dir, "out.pcap1")); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the fifo was replaced: %v", err)
	}
	if n := captureFiles(t, dir, "out.pcap1"); n != 6*74 || m[`sinkd_packets_dropped_total{reason="write_error"}`] != 0 {
		t.Errorf("files hold %d packets, want %d; metrics %v", n, 6*74, m)
	}
}

// TestPlantedLinksNotWrittenThrough plants, at the next rotation names, a
// hard link to a file of another user and another user's writable file
// (issue 11, break 8): sinkd used to truncate and fill both. Their inodes
// keep their content; the names get sinkd's own files.
func TestPlantedLinksNotWrittenThrough(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	other := t.TempDir()
	secret := filepath.Join(other, "secret")
	if err := os.WriteFile(secret, []byte("nobody's data"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(secret, 65534, 65534)
	if err := os.Link(secret, filepath.Join(dir, "out.pcap1")); err != nil {
		t.Fatal(err)
	}
	trap := filepath.Join(dir, "out.pcap2")
	if err := os.WriteFile(trap, []byte("attacker's file"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chown(trap, 65534, 65534)
	held, err := os.Open(trap) // the attacker keeps it open to read what root writes
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"), "-C", "40k")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "6")
	d.waitMetric(t, "sinkd_packets_written_total", 6*74)
	if code, _ := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if b, _ := os.ReadFile(secret); string(b) != "nobody's data" {
		t.Errorf("the hard-linked file was written: %q", b)
	}
	if b := make([]byte, 64); true {
		n, _ := held.ReadAt(b, 0)
		if string(b[:n]) != "attacker's file" {
			t.Errorf("the planted file's inode was written: %q", b[:n])
		}
	}
	for _, name := range []string{"out.pcap1", "out.pcap2"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o640 || st.Nlink != 1 {
			t.Errorf("%s: owner %d mode %v links %d, want sinkd's own new file", name, st.Uid, fi.Mode().Perm(), st.Nlink)
		}
	}
	if n := captureFiles(t, dir); n != 6*74 {
		t.Errorf("files hold %d packets, want %d", n, 6*74)
	}
}

// TestSymlinkAtRotationNameSkipped plants a symlink at out.pcap1 (issue
// 11, break 9): -C capture used to stop for good, dropping every packet.
// sinkd skips the name, loudly, and loses nothing.
func TestSymlinkAtRotationNameSkipped(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	if err := os.Symlink("/nonexistent/elsewhere", filepath.Join(dir, "out.pcap1")); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"), "-C", "40k")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "6")
	m := d.waitMetric(t, "sinkd_packets_written_total", 6*74)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "a symlink: not a regular file") {
		t.Fatalf("exit %d; the skip was not logged:\n%s", code, stderr)
	}
	if m[`sinkd_packets_dropped_total{reason="write_error"}`] != 0 || m["sinkd_write_errors_total"] != 0 {
		t.Errorf("packets lost to the symlink: %v", m)
	}
	if target, err := os.Readlink(filepath.Join(dir, "out.pcap1")); err != nil || target != "/nonexistent/elsewhere" {
		t.Errorf("the symlink was touched: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.pcap2")); err != nil {
		t.Errorf("capture did not go on past the symlink: %v", err)
	}
	if n := captureFiles(t, dir, "out.pcap1"); n != 6*74 {
		t.Errorf("files hold %d packets, want %d", n, 6*74)
	}
}

// TestDiskFullLeavesNoHeaderlessFile rotates on a full disk (issue 11,
// break 10): sinkd used to leave 0-byte files that tcpdump calls
// truncated. Every file there is a valid capture, and once space is back
// the capture goes on.
func TestDiskFullLeavesNoHeaderlessFile(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	caps := filepath.Join(dir, "caps")
	if err := os.Mkdir(caps, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(caps, "out.pcap"), "-C", "8k")
	filler := filepath.Join(dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").Run() // stops at ENOSPC
	time.Sleep(1100 * time.Millisecond)                             // past the retry pause of a failed write
	for range 3 {
		replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "2")
		time.Sleep(1100 * time.Millisecond) // each failure pauses writing a second: try again
	}
	m := d.waitMetric(t, "sinkd_packets_received_total", 6*74)
	if m["sinkd_write_errors_total"] == 0 {
		t.Fatalf("the full disk caused no write error: %v", m)
	}
	for _, name := range testkit.DirNames(t, caps) {
		if st, err := os.Stat(filepath.Join(caps, name)); err == nil && st.Size() < 24 {
			t.Errorf("%s: %d bytes, less than a pcap header", name, st.Size())
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "2")
	d.waitMetric(t, "sinkd_packets_received_total", 8*74)
	m = d.waitMetric(t, "sinkd_packets_written_total", 148)
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range testkit.DirNames(t, caps) {
		if strings.HasSuffix(name, ".part") {
			t.Errorf("temporary file %s left behind", name)
		}
	}
	if n := captureFiles(t, caps); n != int(m["sinkd_packets_written_total"]) || n < 148 {
		t.Errorf("files hold %d packets; sinkd wrote %v", n, m["sinkd_packets_written_total"])
	}
}

// TestHooksBoundedAndStopNotHeld runs a -z command that never ends on a
// capture rotating hundreds of times (issue 11, break 4): sinkd used to
// start one per file and wait for all at SIGTERM. Now --hook-jobs run at
// once, the rest queue or are skipped, counted, and SIGTERM waits only
// --hook-wait, leaving the commands running.
func TestHooksBoundedAndStopNotHeld(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	started := filepath.Join(t.TempDir(), "started")
	hook := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho $$ >>"+started+"\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"), "-C", "2k", "-z", hook, "--hook-jobs", "3", "--hook-wait", "1s")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "20", "--pps", "5000")
	d.waitMetric(t, "sinkd_packets_written_total", 20*74)
	time.Sleep(300 * time.Millisecond)
	files := len(testkit.DirNames(t, dir))
	m := d.metrics(t)
	if m["sinkd_hook_commands_running"] != 3 || m["sinkd_hook_commands_started_total"] != 3 ||
		m["sinkd_hook_files_queued"]+m["sinkd_hook_files_skipped_total"] != float64(files-4) {
		t.Errorf("hook metrics with %d files (one still open): %v", files, m)
	}
	_, body := d.get(t, "/metrics")
	lint := exec.Command("promtool", "check", "metrics")
	lint.Stdin = strings.NewReader(body)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	begin := time.Now()
	code, stderr := d.stop(t, syscall.SIGTERM)
	took := time.Since(begin)
	b, _ := os.ReadFile(started)
	pids := strings.Fields(string(b))
	for _, p := range pids { // the commands were left running: end them
		if pid, err := strconv.Atoi(p); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if code != 0 || took > 5*time.Second {
		t.Fatalf("exit %d after %v:\n%s", code, took, stderr)
	}
	if len(pids) != 3 {
		t.Errorf("%d commands started for %d files, want 3 at once", len(pids), files)
	}
	want := fmt.Sprintf("3 post-rotate commands run (0 failed, %d skipped; 3 left running, %d not run at exit)", files-3, files-3)
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "left to finish on its own") {
		t.Errorf("summary lacks %q:\n%s", want, stderr)
	}
}

// TestStdoutReaderGone pipes sinkd into 'head -c 100' (issue 11, break 6):
// sinkd used to die of SIGPIPE (exit 141) with no summary. It stops
// cleanly and accounts for every packet.
func TestStdoutReaderGone(t *testing.T) {
	ns := testkit.NewNetNS(t)
	errFile := filepath.Join(t.TempDir(), "stderr")
	codeFile := filepath.Join(t.TempDir(), "code")
	pipeline := ns.Cmd("sh", "-c", "{ "+bin("sinkd")+" -w - 2>"+errFile+"; echo $? >"+codeFile+"; } | head -c 100 >/dev/null")
	if err := pipeline.Start(); err != nil {
		t.Fatal(err)
	}
	defer pipeline.Process.Kill()
	d := &daemon{ns: ns, metricsAddr: defaultMetricsAddr}
	testkit.Eventually(t, 10*time.Second, "sinkd", func() bool { code, _ := d.get(t, "/readyz"); return code == 200 })
	for range 5 { // head has gone after the first 100 bytes; sinkd notices on its next write
		replay(t, ns, "[::1]:3010", vmTraffic)
		if _, err := os.Stat(codeFile); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- pipeline.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sinkd went on after its reader went away")
	}
	code, _ := os.ReadFile(codeFile)
	stderr, _ := os.ReadFile(errFile)
	if strings.TrimSpace(string(code)) != "0" {
		t.Fatalf("exit %s, want 0:\n%s", code, stderr)
	}
	for _, want := range []string{"reader of the output went away", "packets captured", "packets received"} {
		if !strings.Contains(string(stderr), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestStdoutReaderGoneOnAQuietPort pipes sinkd into 'head -c 100' and
// sends one packet, which head takes whole, then nothing (issue 19): sinkd
// used to notice its reader gone only at its next write, and so waited for
// the next packet, and the user's shell with it. It ends within a second,
// with the summary and exit 0, as tcpdump does on EPIPE.
func TestStdoutReaderGoneOnAQuietPort(t *testing.T) {
	ns := testkit.NewNetNS(t)
	var stderr syncBuffer
	cmd := ns.Cmd(bin("sinkd"), "-w", "-")
	cmd.Stderr = &stderr
	p := startIntoHead(t, cmd)
	d := &daemon{ns: ns, metricsAddr: defaultMetricsAddr}
	testkit.Eventually(t, 10*time.Second, "sinkd", func() bool { code, _ := d.get(t, "/readyz"); return code == 200 })
	// The file header (24 bytes), the record's (16) and a frame of 60 or
	// more: 100 bytes or more in one write.
	replay(t, ns, "[::1]:3010", vmTraffic, "--count", "1")
	code, after := p.exitAfterHead(t, &stderr)
	t.Logf("sinkd exited %v after its reader", after)
	if code != 0 || after > time.Second {
		t.Errorf("exit %d %v after the reader went away; want 0 within a second:\n%s", code, after, stderr.String())
	}
	for _, want := range []string{"reader of the output went away", "1 packets captured", "1 packets received"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// headPipe is a command whose standard output is piped into 'head -c 100'.
type headPipe struct {
	headGone chan struct{} // closed when head exited
	gone     time.Time     // when head exited
	done     chan struct{} // closed when the command exited
	exited   time.Time
	code     int
}

// startIntoHead starts cmd piped into 'head -c 100', which exits once it
// has read 100 bytes: the pipe has no reader from then on.
func startIntoHead(t *testing.T, cmd *exec.Cmd) *headPipe {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	head := exec.Command("head", "-c", "100")
	head.Stdin, cmd.Stdout = r, w
	err = head.Start()
	if err == nil {
		if err = cmd.Start(); err != nil {
			head.Process.Kill()
			head.Wait()
		}
	}
	r.Close() // head's and the command's copies are the only ones
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &headPipe{headGone: make(chan struct{}), done: make(chan struct{})}
	go func() {
		head.Wait()
		p.gone = time.Now()
		close(p.headGone)
	}()
	go func() {
		cmd.Wait()
		p.exited, p.code = time.Now(), cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		head.Process.Kill()
		cmd.Process.Kill()
		<-p.headGone
		<-p.done
	})
	return p
}

// exitAfterHead waits for head to exit, then for the command; it returns
// the command's exit code and how long it outlived its reader.
func (p *headPipe) exitAfterHead(t *testing.T, stderr fmt.Stringer) (int, time.Duration) {
	t.Helper()
	select {
	case <-p.headGone:
	case <-time.After(30 * time.Second):
		t.Fatalf("head never got its 100 bytes:\n%s", stderr)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after its reader went away:\n%s", stderr)
	}
	return p.code, p.exited.Sub(p.gone)
}

// TestTimeRingCapturesOn runs -G with --keep (issue 11, break 14): the
// capture goes on past the ring's size, keeping the newest files.
func TestTimeRingCapturesOn(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "g-%H%M%S.pcap"), "-G", "1", "--keep", "2")
	for range 5 {
		replay(t, ns, "[::1]:3010", vmTraffic)
		time.Sleep(700 * time.Millisecond)
		if n := len(testkit.DirNames(t, dir)); n > 2 {
			t.Errorf("%d files, want the newest 2: %v", n, testkit.DirNames(t, dir))
		}
	}
	m := d.metrics(t)
	if m["sinkd_files_rotated_total"] < 3 {
		t.Fatalf("rotations %v: want the ring to have turned", m["sinkd_files_rotated_total"])
	}
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 || strings.Contains(stderr, "Maximum file limit") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := len(testkit.DirNames(t, dir)); n != 2 {
		t.Errorf("%d files at the end, want 2", n)
	}
	captureFiles(t, dir)
}

// TestShippedConfigCapturesForever checks the shipped /etc/default/sinkd
// and unit (issue 11, break 14): the flags used to stop capturing after
// 288 files (-G 300 -W 288) and the unit did not restart on exit 0. The
// flags now keep a ring (--keep, no -W) and start a capture; the unit
// restarts whatever ended sinkd.
func TestShippedConfigCapturesForever(t *testing.T) {
	b, err := os.ReadFile("../deploy/systemd/sinkd.default")
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SINKD_FLAGS="); ok {
			flags = strings.Fields(v)
		}
	}
	if !slices.Contains(flags, "--keep") || slices.Contains(flags, "-W") || !slices.Contains(flags, "-G") {
		t.Fatalf("SINKD_FLAGS %v: want a -G ring with --keep and no -W", flags)
	}
	unit, err := os.ReadFile("../deploy/systemd/sinkd.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nRestart=always\n") {
		t.Error("sinkd.service does not restart on every exit")
	}
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	args := append([]string{"-w", filepath.Join(dir, "capture-%Y%m%d-%H%M%S.pcapng")}, flags...)
	d := startSinkd(t, ns, args...)
	replay(t, ns, "[::1]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := captureFiles(t, dir); n != 74 {
		t.Errorf("files hold %d packets, want 74", n)
	}
}

// TestOthersFileInStickyDirectory runs sinkd as nobody in a shared sticky
// directory where another user's writable file holds the next rotation
// name: sinkd used to write into it (it could open it), and may not
// replace it. It skips the name, loudly, and captures on.
func TestOthersFileInStickyDirectory(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "out.pcap1")
	if err := os.WriteFile(other, []byte("daemon's file"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(other, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Chown(other, 1, 1); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"), "-C", "40k", "-Z", "nobody")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "6")
	m := d.waitMetric(t, "sinkd_packets_written_total", 6*74)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 || !strings.Contains(stderr, "cannot be taken") {
		t.Fatalf("exit %d; the skip was not logged:\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(other); string(b) != "daemon's file" {
		t.Errorf("the other user's file was written: %q", b)
	}
	if m[`sinkd_packets_dropped_total{reason="write_error"}`] != 0 {
		t.Errorf("packets lost: %v", m)
	}
	if n := captureFiles(t, dir, "out.pcap1"); n != 6*74 {
		t.Errorf("files hold %d packets, want %d", n, 6*74)
	}
}
