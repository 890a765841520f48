// Package e2e runs the built binaries against each other and against the
// tools operators use (tcpdump, tshark, capinfos, promtool), in network
// namespaces of their own. It needs root, and fails without it rather than
// pass having tested nothing.
package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
)

var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// A suite that passes without running proves nothing: fail.
		fmt.Println("e2e: FAIL: these tests need root (network namespaces, AF_PACKET); run 'sudo make e2e'")
		os.Exit(1)
	}
	for _, tool := range []string{"ip", "tcpdump", "tshark", "capinfos", "promtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Printf("e2e: %s is missing; 'make test' installs it\n", tool)
			os.Exit(1)
		}
	}
	dir, err := testkit.Build("libpcap,dpdk", "cmd/sinkd", "cmd/dpcap")
	if err != nil {
		fmt.Println("e2e: build failed:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a running sinkd.
type daemon struct {
	ns          *testkit.NetNS
	metricsAddr string // its --metrics-addr
	cmd         *exec.Cmd
	stderr      *syncBuffer
	done        chan struct{}
	code        int
}

const defaultMetricsAddr = "127.0.0.1:9310"

// startSinkd starts sinkd in ns and waits until /readyz answers 200.
func startSinkd(t *testing.T, ns *testkit.NetNS, args ...string) *daemon {
	t.Helper()
	d := startSinkdNoWait(t, ns, args...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := d.get(t, "/readyz"); code == 200 {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("sinkd exited with %d: %s", d.code, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sinkd not ready: %s", d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startSinkdNoWait(t *testing.T, ns *testkit.NetNS, args ...string) *daemon {
	t.Helper()
	d := &daemon{ns: ns, metricsAddr: defaultMetricsAddr, cmd: ns.Cmd(bin("sinkd"), args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	for i, a := range args[:max(len(args)-1, 0)] {
		if a == "--metrics-addr" {
			d.metricsAddr = args[i+1]
		}
	}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		d.code = d.cmd.ProcessState.ExitCode()
		close(d.done)
	}()
	t.Cleanup(func() { d.cmd.Process.Kill(); <-d.done })
	return d
}

// get fetches a path from sinkd's metrics listener inside its namespace.
func (d *daemon) get(t *testing.T, path string) (code int, body string) {
	t.Helper()
	d.ns.Do(t, func() {
		c, err := net.DialTimeout("tcp", d.metricsAddr, time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: sinkd\r\n\r\n", path)
		b, _ := io.ReadAll(c)
		head, rest, _ := strings.Cut(string(b), "\r\n\r\n")
		if f := strings.Fields(head); len(f) > 1 {
			code, _ = strconv.Atoi(f[1])
		}
		body = rest
	})
	return code, body
}

// metrics scrapes /metrics into "name{labels}" → value, parsed with
// Prometheus' own text parser.
func (d *daemon) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := d.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return testkit.Metrics(t, body)
}

// waitMetric polls until name reaches want.
func (d *daemon) waitMetric(t *testing.T, name string, want float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := d.metrics(t)
		if m[name] >= want {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v; stderr:\n%s", name, m[name], want, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStable polls name until it stops changing for half a second.
func (d *daemon) waitStable(t *testing.T, name string) float64 {
	t.Helper()
	last, since := -1.0, time.Now()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		v := d.metrics(t)[name]
		if v != last {
			last, since = v, time.Now()
			continue
		}
		if time.Since(since) >= 500*time.Millisecond {
			return v
		}
	}
	t.Fatalf("%s never settled: %s", name, d.stderr)
	return 0
}

// stop sends sig and waits for exit; it returns the exit code and stderr.
func (d *daemon) stop(t *testing.T, sig syscall.Signal) (int, string) {
	t.Helper()
	d.cmd.Process.Signal(sig)
	return d.wait(t)
}

func (d *daemon) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("sinkd did not exit: %s", d.stderr)
	}
	return d.code, d.stderr.String()
}

// startTcpdump starts tcpdump in ns and waits until it is listening. It
// runs in immediate mode (a ring block is not held back for its timeout),
// whose ring slots are sized by the snap length: -s 9300 and -B 32 MiB
// hold the tests' bursts of envelopes, jumbo frames included.
func startTcpdump(t *testing.T, ns *testkit.NetNS, args ...string) *exec.Cmd {
	t.Helper()
	cmd := ns.Cmd("tcpdump", append([]string{"--immediate-mode", "-s", "9300", "-B", "32768"}, args...)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "listening on"); {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start listening: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd
}

// replay sends file to sink from ns with dpcap replay.
func replay(t *testing.T, ns *testkit.NetNS, sink, file string, args ...string) string {
	t.Helper()
	return ns.Run(t, bin("dpcap"), append(append([]string{"replay", "--sink", sink}, args...), file)...)
}

// sendRaw sends frames as they are on ifname in ns through an AF_PACKET
// socket, bypassing the sender's IP stack.
func sendRaw(t *testing.T, ns *testkit.NetNS, ifname string, frames [][]byte) {
	t.Helper()
	ns.Do(t, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Error(err)
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				t.Errorf("send %d bytes on %s: %v", len(f), ifname, err)
				return
			}
		}
	})
}

// macOf returns ifname's MAC address in ns.
func macOf(t *testing.T, ns *testkit.NetNS, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	ns.Do(t, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Error(err)
			return
		}
		mac = ifi.HardwareAddr
	})
	return mac
}

// randomFrame returns an Ethernet frame of n bytes with random contents
// after a fixed header, so that reordering or corruption shows.
func randomFrame(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x88, 0xb5}) // local experimental ethertype
	return b
}

// readFrames reads a capture file's frames and fails the test unless the
// file is complete.
func readFrames(t *testing.T, name string) [][]byte {
	t.Helper()
	pkts, _, err := pcapfile.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, len(pkts))
	for i, p := range pkts {
		frames[i] = p.Data
	}
	return frames
}

// checkWithTools has capinfos, tcpdump and tshark read a file and agree it
// holds want packets.
func checkWithTools(t *testing.T, name string, want int) {
	t.Helper()
	out, err := exec.Command("capinfos", "-c", "-M", "-T", "-r", name).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos %s: %v\n%s", name, err, out)
	}
	if f := strings.Fields(string(out)); len(f) < 2 || f[len(f)-1] != strconv.Itoa(want) {
		t.Errorf("capinfos counts %q in %s, want %d", strings.TrimSpace(string(out)), name, want)
	}
	out, err = exec.Command("tcpdump", "--count", "-r", name).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v", name, err)
	}
	plural := "s"
	if want == 1 {
		plural = ""
	}
	if got := strings.TrimSpace(string(out)); got != fmt.Sprintf("%d packet%s", want, plural) {
		t.Errorf("tcpdump --count reads %q from %s, want %d packets", got, name, want)
	}
	out, err = exec.Command("tshark", "-n", "-r", name, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", name, err)
	}
	if n := strings.Count(string(out), "\n"); n != want {
		t.Errorf("tshark reads %d packets from %s, want %d", n, name, want)
	}
}

// vmTraffic is the real capture shipped in testdata.
const vmTraffic = "../testdata/vm-traffic.pcap"

func equalFrames(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs: got %d bytes, want %d", i, len(got[i]), len(want[i]))
		}
	}
}

// tsharkFields is what tshark -n -r name, with args (-e FIELD, -Y, -d...)
// and -T fields, prints: one line per packet, its fields tab-separated.
func tsharkFields(t *testing.T, name string, args ...string) []string {
	t.Helper()
	out, err := exec.Command("tshark", append([]string{"-n", "-r", name, "-T", "fields"}, args...)...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", name, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}
