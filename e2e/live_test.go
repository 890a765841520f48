package e2e

import (
	"bytes"
	"encoding/binary"
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

// liveSink is sinkd in namespace sk with --live, envelopes and viewers
// coming from hv over link 1.
type liveSink struct {
	hv, sk *testkit.NetNS
	d      *daemon
	out    string // the pcapng file startLiveSink writes
	certs  testkit.Certs
	base   string // the live endpoint's URL
	// tokenFile holds the NOC's token, for dpcap watch.
	tokenFile string
	args      []string // sinkd's flags, but -w
}

// newLiveSink prepares sinkd with portMap and --live on liveAddr, with
// TLS and tokens, or on [::1]:9311 with neither when plain is set; more
// are more flags.
func newLiveSink(t *testing.T, portMap string, plain bool, more ...string) *liveSink {
	t.Helper()
	dir := t.TempDir()
	l := &liveSink{hv: testkit.NewNetNS(t), sk: testkit.NewNetNS(t), out: filepath.Join(dir, "cap.pcapng"),
		tokenFile: filepath.Join(dir, "token")}
	testkit.Link(t, l.hv, l.sk, 1600, 1)
	l.args = []string{"--port-map", portMap}
	if plain {
		l.base = "http://[::1]:9311"
		l.args = append(l.args, "--live", "[::1]:9311")
	} else {
		l.certs = testkit.NewCerts(t, "2001:db8:1::2")
		tokens := filepath.Join(dir, "tokens")
		for name, content := range map[string]string{
			tokens:      "# name token ports\nnoc " + liveNOC + " *\ntenant-2 " + liveTenant2 + " vm-2\n",
			l.tokenFile: liveNOC + "\n",
		} {
			if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		l.base = "https://" + liveAddr
		l.args = append(l.args, "--live", liveAddr, "--live-cert", l.certs.Cert, "--live-key", l.certs.Key, "--live-tokens", tokens)
	}
	l.args = append(l.args, more...)
	return l
}

// start starts sinkd writing to out.
func (l *liveSink) start(t *testing.T, out string) *daemon {
	t.Helper()
	l.d = startSinkd(t, l.sk, append(l.args, "-w", out)...)
	return l.d
}

// startLiveSink starts sinkd with dp-service's port map (publishedMap)
// writing to l.out.
func startLiveSink(t *testing.T, plain bool, more ...string) *liveSink {
	t.Helper()
	l := newLiveSink(t, publishedMap(t), plain, more...)
	l.start(t, l.out)
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
func (l *liveSink) curlArgs(path, token string, more ...string) []string {
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
func (l *liveSink) startCurl(t *testing.T, ns *testkit.NetNS, path, token string, tshark bool) *curl {
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
	l := startLiveSink(t, false)
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
	l := startLiveSink(t, false)
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
	l := startLiveSink(t, true, "--live-queue", "16m", "--live-write-timeout", "5m")
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
	// viewer's socket buffers and queue hold (16 MiB: the running viewers
	// may fall behind by a second and a half on a loaded machine).
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
	l := startLiveSink(t, true)
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
		return fds <= fds0+4 && g <= g0+4
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
	// An address in use: a start error, in one line.
	ns := testkit.NewNetNS(t)
	ns.Do(t, func() {
		ln, err := net.Listen("tcp", "[::1]:9311")
		if err != nil {
			t.Error(err)
			return
		}
		defer ln.Close()
		out, err := exec.Command(bin("sinkd"), "-w", filepath.Join(dir, "y.pcap"), "--metrics-addr", "", "--live", "[::1]:9311").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || string(out) != "sinkd: --live [::1]:9311: listen tcp [::1]:9311: bind: address already in use\n" {
			t.Errorf("--live on an address in use: %v: %q", err, out)
		}
	})
}

// TestLiveFilesUnchanged: the files sinkd writes are byte for byte the
// same with viewers as without, and the viewers get their frames. sinkd
// converts envelopes from its standard input, which holds the second half
// back until the viewers are connected.
func TestLiveFilesUnchanged(t *testing.T) {
	one, err := os.ReadFile("../testdata/envelopes/nic-ether.pcap")
	if err != nil {
		t.Fatal(err)
	}
	// Its records again and again, 3 MiB: sinkd -r reads its input a MiB
	// at a time.
	in := bytes.Clone(one)
	for len(in) < 3<<20 {
		in = append(in, one[24:]...)
	}
	for _, format := range []string{"pcap", "pcapng"} {
		var files [2][]byte
		for i, viewers := range []int{0, 2} {
			ns := testkit.NewNetNS(t)
			out := filepath.Join(t.TempDir(), "cap."+format)
			l := &liveSink{sk: ns, base: "http://[::1]:9311", out: out}
			cmd := ns.Cmd(bin("sinkd"), "-r", "-", "-F", format, "-w", out, "--metrics-addr", defaultMetricsAddr, "--live", "[::1]:9311")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			half := len(in) / 2
			if _, err := stdin.Write(in[:half]); err != nil {
				t.Fatal(err)
			}
			var curls []*curl
			if viewers > 0 {
				curls = append(curls, l.startCurl(t, ns, "/v1/stream", "", false), l.startCurl(t, ns, "/v1/stream?format=pcap", "", false))
				d := &daemon{ns: ns, metricsAddr: defaultMetricsAddr, stderr: stderr}
				testkit.Eventually(t, 10*time.Second, "sinkd's /metrics", func() bool { code, _ := d.get(t, "/metrics"); return code == 200 })
				d.waitMetric(t, "sinkd_live_viewers", float64(viewers))
			}
			stdin.Write(in[half:])
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("sinkd: %v\n%s", err, stderr)
			}
			for _, c := range curls {
				c.wait(t)
			}
			if files[i], err = os.ReadFile(out); err != nil {
				t.Fatal(err)
			}
			if viewers == 0 {
				continue
			}
			// The viewers came as sinkd waited for the second half: they
			// get the file's frames from then on.
			file, ng, pc := readPackets(t, out), readPackets(t, curls[0].file), readPackets(t, curls[1].file)
			if len(ng) < len(file)/3 || len(pc) != len(ng) {
				t.Fatalf("%d frames in the file, %d and %d to the viewers", len(file), len(ng), len(pc))
			}
			if format == "pcap" { // a pcap file names no interface
				for j := range ng {
					ng[j].iface = ""
				}
			}
			samePackets(t, format+" file, pcapng viewer", ng, file[len(file)-len(ng):], 0, false)
			samePackets(t, format+" file, pcap viewer", pc, file[len(file)-len(pc):], 0, true)
		}
		if format == "pcapng" {
			files[0], files[1] = withoutClock(t, files[0]), withoutClock(t, files[1])
		}
		if !bytes.Equal(files[0], files[1]) {
			t.Errorf("%s: the file with viewers (%d bytes) differs from the one without (%d bytes)", format, len(files[1]), len(files[0]))
		}
	}
}

// withoutClock returns a little-endian pcapng file with the times of its
// statistics blocks zeroed: they are the clock's when the file closed, which
// two runs never share.
func withoutClock(t *testing.T, b []byte) []byte {
	t.Helper()
	b = bytes.Clone(b)
	le := binary.LittleEndian
	for off := 0; off < len(b); {
		typ, size := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if size < 12 || off+size > len(b) {
			t.Fatalf("pcapng: bad block at %d", off)
		}
		if typ == 5 { // interface statistics: timestamp, then options
			clear(b[off+12 : off+20])
			for o := off + 20; o+4 <= off+size-4; {
				code, l := le.Uint16(b[o:]), int(le.Uint16(b[o+2:]))
				if code == 0 {
					break
				}
				if code == 2 || code == 3 { // isb_starttime, isb_endtime
					clear(b[o+4 : o+4+l])
				}
				o += 4 + (l+3)&^3
			}
		}
		off += size
	}
	return b
}

// TestLiveWorkers: with --workers 2, a viewer gets every worker's frames,
// each worker's in the order its files have them (a flow stays on one
// worker: its frames come in order).
func TestLiveWorkers(t *testing.T) {
	l := startLiveSink(t, true, "--workers", "2")
	v := l.startCurl(t, l.sk, "/v1/stream", "", false)
	l.d.waitMetric(t, "sinkd_live_viewers", 1)
	const flows, per, loops = 64, 40, 2
	sender := l.hv.Cmd(bin("dpcap"), "replay", "--sink", "[2001:db8:1::2]:3010", "--loop", strconv.Itoa(loops), "--pps", "10000",
		testkit.WritePcap(t, flowFrames(t, flows, per)))
	if out, err := sender.CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	written := l.d.waitStable(t, "sinkd_packets_written_total")
	if code, stderr := l.d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	v.wait(t)
	got := readPackets(t, v.file)
	if len(got) != int(written) {
		t.Fatalf("the viewer got %d frames, sinkd wrote %v", len(got), written)
	}
	// Each frame's worker, by its bytes: a flow's frames go to one worker.
	worker := map[string]int{}
	var files [2][]packet
	for w := range files {
		files[w] = readPackets(t, strings.TrimSuffix(l.out, ".pcapng")+fmt.Sprintf("-w%d.pcapng", w))
		for _, p := range files[w] {
			worker[string(p.data)] = w
		}
		if len(files[w]) == 0 {
			t.Fatalf("worker %d wrote nothing", w)
		}
	}
	for w := range files {
		var mine []packet
		for _, p := range got {
			if worker[string(p.data)] == w {
				mine = append(mine, p)
			}
		}
		samePackets(t, fmt.Sprintf("worker %d's frames", w), mine, files[w], 0, false)
	}
}
