// Package e2e runs the built binaries against each other and against the
// tools operators use (tcpdump, tshark, capinfos, promtool), in network
// namespaces of their own. It needs root, and fails without it rather than
// pass having tested nothing.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
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
	dir, err := os.MkdirTemp("", "dpcap-e2e-bin")
	if err != nil {
		panic(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // tests run the binaries as other users too
		panic(err)
	}
	build := exec.Command("go", "build", "-tags", "libpcap,dpdk", "-o", dir+"/", "../cmd/sinkd", "../cmd/dpcap")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Println("e2e: build failed:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// netns is a network namespace made for one test.
type netns struct{ name string }

var nsSeq atomic.Int32

func newNS(t *testing.T) *netns {
	t.Helper()
	n := &netns{name: fmt.Sprintf("dpcap-e2e-%d-%d", os.Getpid(), nsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", n.name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				// The test itself shows up when do() entered the namespace on
				// the main thread, which Go parks instead of ending.
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	n.run(t, "ip", "link", "set", "lo", "up")
	return n
}

func (n *netns) cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// run runs a command in the namespace and fails the test if it fails.
func (n *netns) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := n.cmd(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// do runs fn on an OS thread that has entered the namespace, so sockets fn
// opens live there. The thread is discarded afterwards.
func (n *netns) do(t *testing.T, fn func()) {
	t.Helper()
	if err := n.enter(fn); err != nil {
		t.Fatal(err)
	}
}

// enter runs fn on a fresh OS thread inside the namespace.
func (n *netns) enter(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// dial connects from inside the namespace (a socket stays in the
// namespace it was made in).
func (n *netns) dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	if eerr := n.enter(func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) }); eerr != nil {
		return nil, eerr
	}
	return c, err
}

// link joins two namespaces with a veth pair e2e0 addressed 2001:db8:1::1/64
// and 192.0.2.1/24 on a's side, ::2 and .2 on b's.
func link(t *testing.T, a, b *netns, mtu int) { linkN(t, a, b, mtu, 1) }

// linkN joins two namespaces with veth pair n (interface e2e<n-1>, subnets
// 2001:db8:<n>::/64 and, for n = 1, 192.0.2.0/24; 198.51.100.0/24 for 2).
func linkN(t *testing.T, a, b *netns, mtu, n int) {
	t.Helper()
	ifname := fmt.Sprintf("e2e%d", n-1)
	v4 := map[int]string{1: "192.0.2.", 2: "198.51.100."}[n]
	if out, err := exec.Command("ip", "link", "add", ifname, "netns", a.name, "mtu", strconv.Itoa(mtu),
		"type", "veth", "peer", "name", ifname, "netns", b.name, "mtu", strconv.Itoa(mtu)).CombinedOutput(); err != nil {
		t.Fatalf("ip link add veth: %v: %s", err, out)
	}
	for i, ns := range []*netns{a, b} {
		ns.run(t, "ip", "addr", "add", fmt.Sprintf("2001:db8:%d::%d/64", n, i+1), "dev", ifname, "nodad")
		if v4 != "" {
			ns.run(t, "ip", "addr", "add", fmt.Sprintf("%s%d/24", v4, i+1), "dev", ifname)
		}
		ns.run(t, "ip", "link", "set", ifname, "up")
	}
	// Resolve neighbours before any test traffic: packets sent while
	// discovery is pending queue in a small per-neighbour buffer and drop.
	dsts := []string{fmt.Sprintf("2001:db8:%d::2", n)}
	if v4 != "" {
		dsts = append(dsts, v4+"2")
	}
	for _, dst := range dsts {
		deadline := time.Now().Add(10 * time.Second)
		for a.cmd("ping", "-c", "1", "-W", "1", dst).Run() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no path from %s to %s", a.name, dst)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

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
	ns          *netns
	metricsAddr string // its --metrics-addr
	cmd         *exec.Cmd
	stderr      *syncBuffer
	done        chan struct{}
	code        int
}

const defaultMetricsAddr = "127.0.0.1:9310"

// startSinkd starts sinkd in ns and waits until /readyz answers 200.
func startSinkd(t *testing.T, ns *netns, args ...string) *daemon {
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

func startSinkdNoWait(t *testing.T, ns *netns, args ...string) *daemon {
	t.Helper()
	d := &daemon{ns: ns, metricsAddr: defaultMetricsAddr, cmd: ns.cmd(bin("sinkd"), args...), stderr: &syncBuffer{}, done: make(chan struct{})}
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
	d.ns.do(t, func() {
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

// metrics scrapes /metrics into "name{labels}" → value.
func (d *daemon) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := d.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "sinkd_") {
			i := strings.LastIndexByte(line, ' ')
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			m[line[:i]] = v
		}
	}
	return m
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
func startTcpdump(t *testing.T, ns *netns, args ...string) *exec.Cmd {
	t.Helper()
	cmd := ns.cmd("tcpdump", append([]string{"--immediate-mode", "-s", "9300", "-B", "32768"}, args...)...)
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
func replay(t *testing.T, ns *netns, sink, file string, args ...string) string {
	t.Helper()
	return ns.run(t, bin("dpcap"), append(append([]string{"replay", "--sink", sink}, args...), file)...)
}

// sendRaw sends frames as they are on ifname in ns through an AF_PACKET
// socket, bypassing the sender's IP stack.
func sendRaw(t *testing.T, ns *netns, ifname string, frames [][]byte) {
	t.Helper()
	ns.do(t, func() {
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
func macOf(t *testing.T, ns *netns, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	ns.do(t, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Error(err)
			return
		}
		mac = ifi.HardwareAddr
	})
	return mac
}

// writePcap writes frames to a new Ethernet pcap file.
func writePcap(t *testing.T, frames [][]byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	return name
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

func vmFrames(t *testing.T) [][]byte { return readFrames(t, vmTraffic) }

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

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
