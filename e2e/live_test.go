package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
)

// The tokens of the live tests' sink: a NOC's that sees every port, and
// tenant-2's, which sees vm-2 (and PF0's copies towards it).
const (
	liveNOC     = "noc-e2e-0123456789abcdef"
	liveTenant2 = "tenant-2-e2e-0123456789"
	liveAddr    = "[2001:db8:1::2]:9311"
)

// liveServer is sinkd in namespace sk with --live, envelopes coming from hv
// over link 1, dp-service's port map.
type liveServer struct {
	hv, sk *testkit.NetNS
	d      *daemon
	out    string // the pcapng file
	certs  testkit.Certs
	base   string // the live endpoint's URL
}

// startLiveServer starts sinkd with --live on liveAddr, with TLS and tokens,
// or on [::1]:9311 with neither when plain is set; more are more flags.
func startLiveServer(t *testing.T, plain bool, more ...string) *liveServer {
	t.Helper()
	l := &liveServer{hv: testkit.NewNetNS(t), sk: testkit.NewNetNS(t), out: filepath.Join(t.TempDir(), "cap.pcapng")}
	testkit.Link(t, l.hv, l.sk, 1600, 1)
	args := []string{"--port-map", publishedMap(t), "-w", l.out}
	if plain {
		l.base = "http://[::1]:9311"
		args = append(args, "--live", "[::1]:9311")
	} else {
		l.certs = testkit.NewCerts(t, "2001:db8:1::2")
		tokens := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(tokens, []byte("# name token ports\nnoc "+liveNOC+" *\ntenant-2 "+liveTenant2+" vm-2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		l.base = "https://" + liveAddr
		args = append(args, "--live", liveAddr, "--live-cert", l.certs.Cert, "--live-key", l.certs.Key, "--live-tokens", tokens)
	}
	l.d = startSinkd(t, l.sk, append(args, more...)...)
	return l
}

// curl is a viewer: curl in a namespace, its body in a file.
type curl struct {
	cmd    *exec.Cmd
	file   string
	stderr *syncBuffer
	done   chan error
}

// curlArgs are curl's arguments for path of l's endpoint with token.
func (l *liveServer) curlArgs(path, token string, more ...string) []string {
	args := []string{"-sN", "-g"}
	if l.certs.CA != "" {
		args = append(args, "--cacert", l.certs.CA)
	}
	if token != "" {
		args = append(args, "-H", "Authorization: Bearer "+token)
	}
	return append(append(args, more...), l.base+path)
}

// startCurl starts a viewer from ns whose body goes to a file; with
// tshark, through 'tee FILE | tshark -r -', whose frame count
// tsharkCount then returns.
func (l *liveServer) startCurl(t *testing.T, ns *testkit.NetNS, path, token string, tshark bool) *curl {
	t.Helper()
	c := &curl{file: filepath.Join(t.TempDir(), "live"), stderr: &syncBuffer{}, done: make(chan error, 1)}
	if tshark {
		script := `curl "$@" | tee "$LIVE_FILE" | tshark -n -r - -T fields -e frame.number > "$LIVE_FILE.tshark"`
		c.cmd = ns.Cmd("sh", append([]string{"-c", script, "sh"}, l.curlArgs(path, token)...)...)
		c.cmd.Env = append(os.Environ(), "LIVE_FILE="+c.file)
	} else {
		c.cmd = ns.Cmd("curl", l.curlArgs(path, token, "-o", c.file)...)
	}
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() { c.cmd.Process.Kill(); <-c.done })
	return c
}

// wait waits for the viewer's end (sinkd stopped: its stream ended).
func (c *curl) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("viewer: %v: %s", err, c.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the viewer's stream did not end: %s", c.stderr)
	}
}

// tsharkCount is how many frames tshark read from the viewer's stream.
func (c *curl) tsharkCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(c.file + ".tshark")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// packet is a frame of a capture file with the name of its interface.
type packet struct {
	iface  string
	ts     time.Time
	data   []byte
	length int
}

// readPackets reads a whole capture file (from a stream, perhaps), each
// packet with its interface's name ("" in pcap).
func readPackets(t *testing.T, name string) []packet {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var pkts []packet
	for {
		data, ci, _, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p := packet{ts: ci.Timestamp, data: bytes.Clone(data), length: ci.Length}
		if r.Pcapng() {
			ifc, err := r.Interface(ci.InterfaceIndex)
			if err != nil {
				t.Fatal(err)
			}
			p.iface = ifc.Name
		}
		pkts = append(pkts, p)
	}
}

// only returns the packets of the interfaces named.
func only(pkts []packet, ifaces ...string) []packet {
	var out []packet
	for _, p := range pkts {
		for _, name := range ifaces {
			if p.iface == name {
				out = append(out, p)
			}
		}
	}
	return out
}

// samePackets checks a stream's packets against the file's: the same
// frames (cut to snap, when given), interfaces, timestamps and lengths,
// in the same order.
func samePackets(t *testing.T, what string, got, want []packet, snap int, pcap bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, the file %d", what, len(got), len(want))
	}
	for i, w := range want {
		if snap > 0 && len(w.data) > snap {
			w.data = w.data[:snap]
		}
		if pcap {
			w.iface = ""
		}
		g := got[i]
		if g.iface != w.iface || !g.ts.Equal(w.ts) || g.length != w.length || !bytes.Equal(g.data, w.data) {
			t.Fatalf("%s: frame %d is %q %v %d bytes of %d, the file's %q %v %d of %d", what, i,
				g.iface, g.ts, len(g.data), g.length, w.iface, w.ts, len(w.data), w.length)
		}
	}
}

// TestLiveTLS: remote viewers over real TLS with a token, read by curl and
// tshark, get exactly the frames sinkd wrote for their ports: pcapng with
// the files' interface names and timestamps and final statistics; pcap
// with an expression and a snap length applied on the sink.
func TestLiveTLS(t *testing.T) {
	l := startLiveServer(t, false)
	ng := l.startCurl(t, l.hv, "/v1/stream?port=vm-1", liveNOC, true)
	pc := l.startCurl(t, l.hv, "/v1/stream?port=vm-2&format=pcap&snaplen=60&filter=tcp", liveNOC, true)
	l.d.waitMetric(t, "sinkd_live_viewers", 2)
	_, all := dpserviceCopies(t)
	replay(t, l.hv, "[2001:db8:1::2]:3010", testkit.WritePcap(t, all))
	l.d.waitMetric(t, "sinkd_packets_written_total", float64(len(all)))
	if code, stderr := l.d.stop(t, syscall.SIGTERM); code != 0 || !strings.Contains(stderr, "2 live viewers served") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	ng.wait(t)
	pc.wait(t)
	file := readPackets(t, l.out)

	want := only(file, "vm-1", "pf0 to vm-1")
	samePackets(t, "pcapng of vm-1", readPackets(t, ng.file), want, 0, false)
	if n := ng.tsharkCount(t); n != len(want) {
		t.Errorf("tshark reads %d frames of vm-1's stream, the file has %d", n, len(want))
	}
	raw, err := os.ReadFile(ng.file)
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := testkit.PcapngStats(t, raw)
	wantStats := map[string]testkit.InterfaceStats{
		"vm-1":        {Recv: uint64(len(only(file, "vm-1"))), FilterAccept: uint64(len(only(file, "vm-1")))},
		"pf0 to vm-1": {Recv: uint64(len(only(file, "pf0 to vm-1"))), FilterAccept: uint64(len(only(file, "pf0 to vm-1")))},
	}
	if fmt.Sprint(stats) != fmt.Sprint(wantStats) {
		t.Errorf("statistics %v, want %v", stats, wantStats)
	}

	// The file's TCP frames of vm-2, as tshark selects them.
	var tcp []packet
	numbers := tsharkFields(t, l.out, "-Y", `(frame.interface_name == "vm-2" or frame.interface_name == "pf0 to vm-2") and tcp`, "-e", "frame.number")
	for _, n := range numbers {
		i, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("tshark: %q", numbers)
		}
		tcp = append(tcp, file[i-1])
	}
	if len(tcp) == 0 {
		t.Fatal("no TCP frame of vm-2 in the file")
	}
	samePackets(t, "pcap of vm-2's TCP, 60 bytes", readPackets(t, pc.file), tcp, 60, true)
	if n := pc.tsharkCount(t); n != len(tcp) {
		t.Errorf("tshark reads %d frames of vm-2's stream, the file has %d", n, len(tcp))
	}
}

// TestLiveTokens: no token or a wrong one gets 401 and not a byte of
// capture; tenant-2's token gets 403 for vm-1 and, asking for every port,
// sees vm-2's frames and never vm-1's.
func TestLiveTokens(t *testing.T) {
	l := startLiveServer(t, false)
	refused := []struct {
		path, token string
		status      int
	}{
		{"/v1/stream", "", 401},
		{"/v1/stream?port=vm-1", liveTenant2[:len(liveTenant2)-1] + "X", 401},
		{"/v1/ports", "", 401},
		{"/v1/stream?port=vm-1", liveTenant2, 403},
		{"/v1/stream?port=vm-2,vm-1", liveTenant2, 403},
	}
	for _, r := range refused {
		out := l.hv.Run(t, "curl", l.curlArgs(r.path, r.token, "-o", "-", "-w", "%{http_code}")...)
		body, code := out[:len(out)-3], out[len(out)-3:]
		if code != strconv.Itoa(r.status) || strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
			t.Errorf("%s with %q: %s %q", r.path, r.token, code, body)
		}
	}
	tenant := l.startCurl(t, l.hv, "/v1/stream", liveTenant2, false)
	l.d.waitMetric(t, "sinkd_live_viewers", 1)
	_, all := dpserviceCopies(t)
	replay(t, l.hv, "[2001:db8:1::2]:3010", testkit.WritePcap(t, all))
	l.d.waitMetric(t, "sinkd_packets_written_total", float64(len(all)))
	ports := l.hv.Run(t, "curl", l.curlArgs("/v1/ports", liveTenant2)...)
	if ports != `{"ports":[{"name":"vm-2","description":"nic envelopes from 2001:db8:1::1, to UDP port 3010"},{"name":"pf0 to vm-2","description":"nic envelopes from 2001:db8:1::1, to UDP port 3010"}]}`+"\n" {
		t.Errorf("/v1/ports for tenant-2: %s", ports)
	}
	m := l.d.metrics(t)
	if m[`sinkd_live_requests_total{result="unauthorized"}`] != 3 || m[`sinkd_live_requests_total{result="forbidden"}`] != 2 {
		t.Errorf("requests: %v", m)
	}
	code, stderr := l.d.stop(t, syscall.SIGTERM)
	if code != 0 || strings.Contains(stderr, liveTenant2) || strings.Contains(stderr, liveNOC) || !strings.Contains(stderr, "token=tenant-2") {
		t.Fatalf("exit %d, a token in the log or no name:\n%s", code, stderr)
	}
	tenant.wait(t)
	samePackets(t, "tenant-2's stream", readPackets(t, tenant.file), only(readPackets(t, l.out), "vm-2", "pf0 to vm-2"), 0, false)
}

// TestLiveStalledViewer: three viewers on one busy port, one of them
// stopped (SIGSTOP): the file and the two others get every frame, the
// accounting identity holds in every scrape, and the stopped one's losses
// are counted in /metrics and, once it runs again, in its stream's
// statistics.
func TestLiveStalledViewer(t *testing.T) {
	l := startLiveServer(t, true, "--live-queue", "2m", "--live-write-timeout", "5m")
	var viewers []*curl
	for range 3 {
		viewers = append(viewers, l.startCurl(t, l.sk, "/v1/stream?port=vm-1", "", false))
	}
	l.d.waitMetric(t, "sinkd_live_viewers", 3)
	stopped := viewers[2]
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer stopped.cmd.Process.Signal(syscall.SIGCONT)
	// vm-1's frames of 1,200 bytes: 48 MB in all, more than the stopped
	// viewer's socket buffers and queue hold.
	var frames [][]byte
	for i := range 1000 {
		frames = append(frames, append(vmFrame(t, vm1MAC, "10.0.0.1", "fd00:1::1", i), make([]byte, 1100)...))
	}
	const loops = 40
	sender := l.hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--pps", "10000", "--loop", strconv.Itoa(loops), testkit.WritePcap(t, frames))
	scrapeWhileSending(t, l.d, []*exec.Cmd{sender})
	written := l.d.waitStable(t, "sinkd_packets_written_total")
	m := l.d.metrics(t)
	identity(t, m)
	lost := m[`sinkd_live_frames_lost_total{reason="queue_full"}`]
	if lost == 0 || written < loops*1000*0.9 {
		t.Fatalf("written %v, lost %v: %v", written, lost, m)
	}
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code, stderr := l.d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, v := range viewers {
		v.wait(t)
	}
	file := readPackets(t, l.out)
	if len(file) != int(written) {
		t.Fatalf("the file has %d frames, sinkd wrote %v", len(file), written)
	}
	for i, v := range viewers[:2] {
		samePackets(t, fmt.Sprintf("viewer %d", i), readPackets(t, v.file), file, 0, false)
	}
	raw, err := os.ReadFile(stopped.file)
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := testkit.PcapngStats(t, raw)
	got := readPackets(t, stopped.file)
	if s := stats["vm-1"]; s.Drop != uint64(lost) || s.Recv != uint64(written) || s.FilterAccept != uint64(len(got)) || s.FilterAccept+s.Drop != s.Recv {
		t.Errorf("the stopped viewer's statistics %+v: %d frames, %v lost, %v written", s, len(got), lost, written)
	}
	t.Logf("%v frames written; the stopped viewer got %d and lost %v", written, len(got), lost)
}

// TestLiveConnectCycles: 1,000 viewers that connect and leave, some
// before their request is whole, leave sinkd with the descriptors and
// goroutines it had.
func TestLiveConnectCycles(t *testing.T) {
	l := startLiveServer(t, true)
	pid := l.d.cmd.Process.Pid
	cycle := func(i int) {
		l.sk.Do(t, func() {
			c, err := net.DialTimeout("tcp", "[::1]:9311", 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			switch i % 4 {
			case 0: // leaves mid-request
				io.WriteString(c, "GET /v1/stream HTTP/1.1\r\nHost: sinkd\r\n")
				return
			case 1: // a bad request
				io.WriteString(c, "GET /v1/stream?snaplen=0 HTTP/1.1\r\nHost: sinkd\r\n\r\n")
			default: // a stream, left once it began
				io.WriteString(c, "GET /v1/stream?format=pcap HTTP/1.1\r\nHost: sinkd\r\n\r\n")
			}
			buf := make([]byte, 256)
			if _, err := io.ReadAtLeast(c, buf, 64); err != nil {
				t.Errorf("cycle %d: %v", i, err)
			}
		})
	}
	cycle(2)
	count := func() (fds, goroutines int) {
		return openFiles(t, pid), int(l.d.metrics(t)["go_goroutines"])
	}
	testkit.Eventually(t, 20*time.Second, "the first viewer to leave", func() bool { return l.d.metrics(t)["sinkd_live_viewers"] == 0 })
	fds0, g0 := count()
	for i := range 1000 {
		cycle(i)
	}
	var fds, g int
	testkit.Eventually(t, 30*time.Second, "sinkd's descriptors and goroutines back where they were", func() bool {
		fds, g = count()
		return fds <= fds0+2 && g <= g0+2
	})
	m := l.d.metrics(t)
	if m[`sinkd_live_requests_total{result="streamed"}`] != 501 || m[`sinkd_live_requests_total{result="bad_request"}`] != 250 || m["sinkd_live_viewers"] != 0 {
		t.Errorf("requests: %v", m)
	}
	t.Logf("before: %d descriptors, %d goroutines; after 1,000 cycles: %d, %d", fds0, g0, fds, g)
}

// TestLiveExposure: --live beyond loopback without TLS and tokens is
// refused at start, in one line, exit 2; so is half of TLS.
func TestLiveExposure(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--live", "0.0.0.0:9311"},
		{"--live", "[::]:9311", "--live-tokens", "x"},
		{"--live", "192.0.2.1:9311", "--live-cert", "c", "--live-key", "k"},
		{"--live", "[::1]:9311", "--live-cert", "c"},
		{"--live-tokens", "x"},
	} {
		cmd := exec.Command(bin("sinkd"), append([]string{"-w", filepath.Join(dir, "x.pcap"), "--metrics-addr", ""}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "--live") {
			t.Errorf("sinkd %s: %v: %q", strings.Join(args, " "), err, out)
		}
	}
	if names := testkit.DirNames(t, dir); len(names) != 0 {
		t.Errorf("files made: %v", names)
	}
}
