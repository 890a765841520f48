package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
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

// snmp6 reads one counter of a namespace's /proc/net/snmp6.
func snmp6(t *testing.T, ns *testkit.NetNS, name string) int {
	t.Helper()
	for _, line := range strings.Split(ns.Run(t, "cat", "/proc/net/snmp6"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Fatalf("no %s in /proc/net/snmp6", name)
	return 0
}

// TestZeroChecksumAcrossVeth proves the envelope's zero UDP checksum over
// IPv6 is dropped by a plain socket and received by sinkd, with the inner
// frames of real VM traffic landing byte-exact, over IPv6 and IPv4.
func TestZeroChecksumAcrossVeth(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	want := testkit.VMFrames(t)

	// The wire: tcpdump on the sink's side records the envelopes.
	wire := filepath.Join(t.TempDir(), "wire.pcap")
	td := startTcpdump(t, sk, "-i", "e2e0", "-U", "-w", wire, "udp port 3011")

	// A plain IPv6 UDP socket receives none of them: the kernel drops them
	// as checksum errors.
	var got int
	before := snmp6(t, sk, "Udp6InCsumErrors")
	sk.Do(t, func() {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{Port: 3011})
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		replay(t, hv, "[2001:db8:1::2]:3011", vmTraffic)
		buf := make([]byte, 65536)
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
			got++
		}
	})
	if got != 0 {
		t.Errorf("a plain UDP socket received %d zero-checksum datagrams; the kernel should drop them", got)
	}
	if errs := snmp6(t, sk, "Udp6InCsumErrors") - before; errs != len(want) {
		t.Errorf("Udp6InCsumErrors rose by %d, want %d", errs, len(want))
	}
	time.Sleep(200 * time.Millisecond)
	td.Process.Signal(syscall.SIGINT)
	td.Wait()
	envelopes := readFrames(t, wire)
	if len(envelopes) != len(want) {
		t.Fatalf("tcpdump saw %d envelopes on the wire, want %d", len(envelopes), len(want))
	}
	for i, e := range envelopes {
		// Ether 14 | IPv6 40 | UDP 8: checksum at 60, flow label in 14..17.
		if sum := binary.BigEndian.Uint16(e[60:62]); sum != 0 {
			t.Fatalf("envelope %d has UDP checksum %#04x, want 0", i, sum)
		}
		if fl := binary.BigEndian.Uint32(e[14:18]) & 0xfffff; fl != 0 || e[21] != 64 || e[20] != 17 {
			t.Fatalf("envelope %d: flow label %d, next header %d, hop limit %d; want 0, 17, 64", i, fl, e[20], e[21])
		}
		if !bytes.Equal(e[62:], want[i]) {
			t.Fatalf("envelope %d does not carry frame %d", i, i)
		}
	}

	// sinkd receives every one, over IPv6 and over IPv4 on the same socket.
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, sk, "-w", out)
	replay(t, hv, "[2001:db8:1::2]:3010", vmTraffic)
	replay(t, hv, "192.0.2.2:3010", vmTraffic)
	m := d.waitMetric(t, "sinkd_packets_written_total", float64(2*len(want)))
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd exit %d: %s", code, stderr)
	}
	if m["sinkd_packets_received_total"] != float64(2*len(want)) || m["sinkd_socket_drops_total"] != 0 {
		t.Errorf("received %v, socket drops %v", m["sinkd_packets_received_total"], m["sinkd_socket_drops_total"])
	}
	equalFrames(t, readFrames(t, out), append(slices.Clone(want), want...))
	checkWithTools(t, out, 2*len(want))
}

// TestFrameSizesByteExact sends frames from the 60-byte minimum to 9000-byte
// jumbo frames across a jumbo-MTU veth and compares every byte.
func TestFrameSizesByteExact(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 9216, 1)
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{60, 64, 65, 128, 512, 1000, 1514, 1518, 1522, 2048, 4096, 8192, 8999, 9000}
	for range 200 {
		sizes = append(sizes, 60+r.IntN(9000-60+1))
	}
	var frames [][]byte
	for _, n := range sizes {
		frames = append(frames, randomFrame(r, n))
	}
	in := testkit.WritePcap(t, frames)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, sk, "-w", out)
	start := time.Now()
	replay(t, hv, "[2001:db8:1::2]:3010", in)
	d.waitMetric(t, "sinkd_packets_written_total", float64(len(frames)))
	if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("sinkd exit %d: %s", code, stderr)
	}
	equalFrames(t, readFrames(t, out), frames)
	checkWithTools(t, out, len(frames))
	// Timestamps are the sink's receive times, at nanosecond resolution.
	times, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatal(err)
	}
	nanos := 0
	for _, f := range strings.Fields(string(times)) {
		ts, _ := strconv.ParseFloat(f, 64)
		if ts < float64(start.Unix())-1 || ts > float64(time.Now().Unix())+1 {
			t.Fatalf("timestamp %s is not a receive time", f)
		}
		if !strings.HasSuffix(f, "000") {
			nanos++
		}
	}
	if nanos == 0 {
		t.Error("no timestamp has sub-microsecond digits: the file is not nanosecond pcap")
	}
}

// TestMalformedCountedWhileValidLand mixes datagrams too short to hold an
// Ethernet header with real frames.
func TestMalformedCountedWhileValidLand(t *testing.T) {
	ns := testkit.NewNetNS(t)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, ns, "-w", out)
	want := testkit.VMFrames(t)
	ns.Do(t, func() {
		c, err := net.Dial("udp", "[::1]:3010")
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		for i, f := range want {
			c.Write(f)
			c.Write(f[:i%14]) // 0 to 13 bytes: malformed
		}
	})
	m := d.waitMetric(t, "sinkd_packets_received_total", float64(2*len(want)))
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if m[`sinkd_packets_malformed_total{reason="short_frame"}`] != float64(len(want)) {
		t.Errorf("malformed = %v, want %d", m[`sinkd_packets_malformed_total{reason="short_frame"}`], len(want))
	}
	equalFrames(t, readFrames(t, out), want)
	if !strings.Contains(stderr, fmt.Sprintf("%d packets malformed", len(want))) ||
		!strings.Contains(stderr, fmt.Sprintf("%d packets received", 2*len(want))) {
		t.Errorf("summary does not account for the malformed packets:\n%s", stderr)
	}
}

// TestSIGTERMFlushesAndSummarizes stops sinkd right after a burst.
func TestSIGTERMFlushesAndSummarizes(t *testing.T) {
	ns := testkit.NewNetNS(t)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, ns, "-w", out)
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "20")
	d.waitMetric(t, "sinkd_packets_received_total", 20*74)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range []string{"1480 packets captured", "1480 packets received", "0 packets dropped by kernel", "0 packets malformed"} {
		if !strings.Contains(stderr, line+"\n") {
			t.Errorf("summary lacks %q:\n%s", line, stderr)
		}
	}
	checkWithTools(t, out, 1480)
}

// TestStdoutStreamsLive pipes sinkd -w - into tcpdump -r - and sees packets
// decoded while sinkd is still running.
func TestStdoutStreamsLive(t *testing.T) {
	ns := testkit.NewNetNS(t)
	sinkd := ns.Cmd(bin("sinkd"), "-w", "-")
	td := exec.Command("tcpdump", "-n", "-l", "-r", "-")
	pipe, err := sinkd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	td.Stdin = pipe
	var lines syncBuffer
	td.Stdout = &lines
	if err := sinkd.Start(); err != nil {
		t.Fatal(err)
	}
	defer sinkd.Process.Kill()
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	defer td.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	replay(t, ns, "[::1]:3010", vmTraffic)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(lines.String(), "\n") < 74 {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump decoded %d of 74 packets while sinkd ran", strings.Count(lines.String(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(lines.String(), "web.lab") {
		t.Errorf("tcpdump output lacks the DNS query of the capture:\n%s", lines.String())
	}
	sinkd.Process.Signal(syscall.SIGTERM)
	if err := sinkd.Wait(); err != nil {
		t.Errorf("sinkd: %v", err)
	}
	if err := td.Wait(); err != nil {
		t.Errorf("tcpdump: %v", err)
	}
}

// TestRotationBySize checks tcpdump's -C naming, that each file is valid and
// under the limit, and that the files together hold every packet in order.
func TestRotationBySize(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "cap"), "-C", "100k")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "30", "--pps", "20000")
	d.waitMetric(t, "sinkd_packets_written_total", 30*74)
	if code, _ := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	names := testkit.DirNames(t, dir)
	if len(names) < 5 {
		t.Fatalf("files %v: want several 100 KiB files", names)
	}
	var all [][]byte
	for i := range names {
		name := "cap"
		if i > 0 {
			name += strconv.Itoa(i)
		}
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("tcpdump's naming: %v (files %v)", err, names)
		}
		if st.Size() > 100<<10 {
			t.Errorf("%s: %d bytes, over -C 100k", name, st.Size())
		}
		frames := readFrames(t, path)
		checkWithTools(t, path, len(frames))
		all = append(all, frames...)
	}
	var want [][]byte
	for range 30 {
		want = append(want, testkit.VMFrames(t)...)
	}
	equalFrames(t, all, want)
}

// TestRotationRing checks -C with -W: a ring of exactly W files.
func TestRotationRing(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "ring.pcap"), "-C", "40k", "-W", "3")
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "20", "--pps", "20000")
	d.waitMetric(t, "sinkd_packets_written_total", 20*74)
	m := d.metrics(t)
	if code, _ := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := testkit.DirNames(t, dir); !slices.Equal(got, []string{"ring.pcap0", "ring.pcap1", "ring.pcap2"}) {
		t.Fatalf("files = %v", got)
	}
	for _, name := range testkit.DirNames(t, dir) {
		path := filepath.Join(dir, name)
		checkWithTools(t, path, len(readFrames(t, path)))
	}
	if m["sinkd_files_rotated_total"] < 3 {
		t.Errorf("rotations = %v, want the ring to have wrapped", m["sinkd_files_rotated_total"])
	}
}

// TestRotationOnTheClockWhenIdle checks -G rotates with no traffic at all,
// every file valid, the -z command run on each closed file, and -W ending
// the capture.
func TestRotationOnTheClockWhenIdle(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	hookLog := filepath.Join(t.TempDir(), "hook.log")
	hook := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$1\" >>"+hookLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "g-%Y%m%d-%H%M%S.pcap"), "-G", "1", "-W", "3", "-z", hook)
	replay(t, ns, "[::1]:3010", vmTraffic)
	code, stderr := d.wait(t) // -W 3 ends the capture by itself after 3 files
	if code != 0 || !strings.Contains(stderr, "Maximum file limit reached: 3") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	names := testkit.DirNames(t, dir)
	if len(names) != 3 {
		t.Fatalf("files = %v, want 3", names)
	}
	total := 0
	for _, name := range names {
		if _, err := time.Parse("g-20060102-150405.pcap", name); err != nil {
			t.Errorf("%s is not strftime-named: %v", name, err)
		}
		path := filepath.Join(dir, name)
		n := len(readFrames(t, path))
		checkWithTools(t, path, n)
		total += n
	}
	if total != 74 {
		t.Errorf("files hold %d packets, want 74", total)
	}
	logged, _ := os.ReadFile(hookLog)
	for _, name := range names {
		if !strings.Contains(string(logged), name) {
			t.Errorf("-z did not run on %s; it ran on:\n%s", name, logged)
		}
	}
}

// TestSIGHUPRotates checks rotation on demand splits the capture cleanly.
func TestSIGHUPRotates(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "out.pcap"))
	replay(t, ns, "[::1]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitMetric(t, "sinkd_files_rotated_total", 1)
	replay(t, ns, "[::1]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_written_total", 148)
	if code, _ := d.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"out.pcap", "out.pcap1"} {
		path := filepath.Join(dir, name)
		equalFrames(t, readFrames(t, path), testkit.VMFrames(t))
		checkWithTools(t, path, 74)
	}
}

// TestWriteErrorsSurvived fills the disk under sinkd, then frees it: the
// failed writes are counted, every packet is accounted for, writing resumes
// and the file stays valid.
func TestWriteErrorsSurvived(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	out := filepath.Join(dir, "out.pcap")
	d := startSinkd(t, ns, "-w", out)
	filler := filepath.Join(dir, "filler")
	exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run() // stops at ENOSPC
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "10")
	d.waitMetric(t, "sinkd_packets_received_total", 740)
	eventuallyM := func(cond func(map[string]float64) bool) map[string]float64 {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			m := d.metrics(t)
			if cond(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics never settled: %v\n%s", m, d.stderr)
			}
		}
	}
	m := eventuallyM(func(m map[string]float64) bool {
		return m["sinkd_packets_written_total"]+m[`sinkd_packets_dropped_total{reason="write_error"}`] == 740
	})
	if m["sinkd_write_errors_total"] == 0 || m[`sinkd_packets_dropped_total{reason="write_error"}`] == 0 {
		t.Fatalf("a full disk caused no counted write error: %v", m)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // writing pauses a second after a failure
	replay(t, ns, "[::1]:3010", vmTraffic)
	m = eventuallyM(func(m map[string]float64) bool {
		return m["sinkd_packets_received_total"] == 814 &&
			m["sinkd_packets_written_total"]+m[`sinkd_packets_dropped_total{reason="write_error"}`] == 814
	})
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "writing resumed") {
		t.Errorf("no log line says writing resumed:\n%s", stderr)
	}
	written := int(m["sinkd_packets_written_total"])
	frames := readFrames(t, out)
	if len(frames) != written || written < 74 {
		t.Fatalf("file holds %d packets; sinkd wrote %d (and must have written the last 74)", len(frames), written)
	}
	equalFrames(t, frames[len(frames)-74:], testkit.VMFrames(t))
	checkWithTools(t, out, written)
}

// TestStartupErrors checks each start-up failure is one line and exit 2.
func TestStartupErrors(t *testing.T) {
	ns := testkit.NewNetNS(t)
	busy := startSinkd(t, ns, "-w", filepath.Join(t.TempDir(), "a.pcap"))
	defer busy.stop(t, syscall.SIGTERM)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-w", "x.pcap", "--bogus"}, "flag provided but not defined: -bogus"},
		{"no output", []string{}, "no output"},
		{"bad size", []string{"-w", "x.pcap", "-C", "lots"}, `invalid size "lots"`},
		{"bad port", []string{"-w", "x.pcap", "--port", "70000"}, `invalid port "70000"`},
		{"ring without rotation", []string{"-w", "x.pcap", "-W", "3"}, "-W needs -C or -G"},
		{"rotation to stdout", []string{"-w", "-", "-G", "5"}, "need a file name"},
		{"unwritable path", []string{"-w", "/proc/no/such/dir/x.pcap", "--port", "3020", "--metrics-addr", ""}, "create /proc/no/such/dir/x.pcap"},
		{"port in use", []string{"-w", filepath.Join(t.TempDir(), "b.pcap"), "--metrics-addr", ""}, "address already in use"},
		{"metrics port in use", []string{"-w", filepath.Join(t.TempDir(), "c.pcap"), "--port", "3021"}, "metrics listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := ns.Cmd(bin("sinkd"), tt.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if cmd.ProcessState.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; stderr:\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "sinkd: ") || !strings.Contains(last, tt.want) {
				t.Fatalf("last line %q, want one naming %q", last, tt.want)
			}
			for _, l := range lines[:len(lines)-1] {
				if !strings.Contains(l, "level=WARN") {
					t.Errorf("stray line before the error: %q", l)
				}
			}
		})
	}
}

// TestMetricsPassPromtool runs Prometheus' own checker over a live scrape.
func TestMetricsPassPromtool(t *testing.T) {
	ns := testkit.NewNetNS(t)
	d := startSinkd(t, ns, "-w", filepath.Join(t.TempDir(), "out.pcap"))
	replay(t, ns, "[::1]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	_, body := d.get(t, "/metrics")
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, name := range []string{"sinkd_packets_received_total", "sinkd_packets_written_total", "sinkd_bytes_written_total",
		`sinkd_packets_malformed_total{reason="short_frame"}`, "sinkd_socket_drops_total", "sinkd_files_rotated_total", "sinkd_write_errors_total"} {
		if !strings.Contains(body, name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestCountAndListen checks --listen binds one address only and -c ends the
// capture by itself after exactly COUNT packets.
func TestCountAndListen(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, sk, "--listen", "2001:db8:1::2", "-c", "10", "-w", out)
	// Nothing listens on the IPv4 address: dpcap replay says so. (Paced, so
	// that the ICMP errors arrive while it still sends.)
	msg, err := hv.Cmd(bin("dpcap"), "replay", "--sink", "192.0.2.2:3010", "--pps", "500", vmTraffic).CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(msg), "the sink refused") {
		t.Errorf("replay to a port nobody listens on did not report it (%v):\n%s", err, msg)
	}
	replay(t, hv, "[2001:db8:1::2]:3010", vmTraffic)
	code, stderr := d.wait(t)
	if code != 0 || !strings.Contains(stderr, "10 packets captured\n") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	equalFrames(t, readFrames(t, out), testkit.VMFrames(t)[:10])
}

// TestReplayPaces checks --pps spreads the packets out: the sink's receive
// timestamps span at least the time the rate implies.
func TestReplayPaces(t *testing.T) {
	ns := testkit.NewNetNS(t)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, ns, "-w", out)
	replay(t, ns, "[::1]:3010", vmTraffic, "--pps", "250")
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	d.stop(t, syscall.SIGTERM)
	times, err := exec.Command("tshark", "-r", out, "-T", "fields", "-e", "frame.time_epoch").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(times))
	first, _ := strconv.ParseFloat(f[0], 64)
	last, _ := strconv.ParseFloat(f[len(f)-1], 64)
	if span := last - first; span < 73.0/250*0.9 {
		t.Errorf("74 packets at 250 pps arrived within %.3fs, want about %.3fs", span, 73.0/250)
	}
}
