package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/s3test"
	"github.com/dpcap/dpcap/internal/testkit"
)

// TestUploadAndFetch runs two sinks that upload to one bucket of a real
// MinIO, one of them SIGKILLed with a file waiting while the store is
// down, and gets one port's packets of a window back with dpcap fetch,
// from the bucket and from the sinks' directories, checked against the
// frames sent.
func TestUploadAndFetch(t *testing.T) {
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	store, client := storeIn(t, sk)
	m := flowprog.TagTable{"vm-1": 1, "vm-2": 2}.PortMap(netip.MustParseAddr("2001:db8:1::1"), []string{"vm-1", "vm-2"})
	b, _ := json.Marshal(m)
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "ports.json")
	if err := os.WriteFile(mapFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	const bucket = "s3://captures/e2e"
	sinkArgs := func(id, port, metrics string) []string {
		return []string{"--port", port, "--metrics-addr", metrics, "--port-map", mapFile,
			"-w", filepath.Join(dir, id, "cap.pcapng"), "-C", "100m",
			"--upload", bucket, "--upload-endpoint", store.Endpoint(), "--upload-path-style",
			"--upload-sink-id", id, "--upload-retry-max", "1s"}
	}
	for _, id := range []string{"sink-a", "sink-b"} {
		if err := os.Mkdir(filepath.Join(dir, id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := startSinkd(t, sk, sinkArgs("sink-a", "3010", "127.0.0.1:9310")...)
	bArgs := sinkArgs("sink-b", "3011", "127.0.0.1:9311")
	bd := startSinkd(t, sk, bArgs...)

	frames := testkit.VMFrames(t)
	received := 0.0
	// phase sends vm-1's 74 frames and vm-2's first 30 to both sinks, then
	// rotates both, so each phase has files of its own.
	phase := func() {
		for _, port := range []string{"3010", "3011"} {
			replay(t, hv, "[2001:db8:1::2]:"+port, vmTraffic, "--tag", "1")
			replay(t, hv, "[2001:db8:1::2]:"+port, vmTraffic, "--tag", "2", "--count", "30")
		}
		received += 104
		a.waitMetric(t, "sinkd_packets_received_total", received)
		bd.waitMetric(t, "sinkd_packets_received_total", received)
		a.cmd.Process.Signal(syscall.SIGHUP)
		bd.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(300 * time.Millisecond)
	}
	phase() // A: before the window
	from := time.Now()
	phase() // B: the window
	to := time.Now()
	time.Sleep(200 * time.Millisecond)

	// C: the store is down; sink-b's file of this phase waits in its
	// spool when sink-b is SIGKILLed, and is uploaded after its restart.
	store.Stop()
	phase()
	bd.waitMetric(t, "sinkd_upload_pending_files", 1)
	bd.cmd.Process.Kill()
	<-bd.done
	if err := store.Restart(); err != nil {
		t.Fatal(err)
	}
	a.waitMetric(t, "sinkd_upload_pending_files", 0)
	bd = startSinkd(t, sk, bArgs...)
	bd.waitMetric(t, "sinkd_upload_pending_files", 0)
	for _, d := range []*daemon{a, bd} {
		if code, stderr := d.stop(t, syscall.SIGTERM); code != 0 || !strings.Contains(stderr, "files uploaded") || strings.Contains(stderr, "wait in") {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
	}
	keys := listKeys(t, client, "captures")
	for _, id := range []string{"sink-a", "sink-b"} {
		if n := strings.Count(strings.Join(keys, "\n"), "/"+id+"/"); n < 3 {
			t.Errorf("%d objects of %s, want one per phase at least:\n%s", n, id, strings.Join(keys, "\n"))
		}
	}

	fetch := func(name string, args ...string) (string, []pcapfile.Packet) {
		t.Helper()
		out := filepath.Join(dir, name)
		cmd := sk.Cmd(bin("dpcap"), append(append([]string{"fetch"}, args...), "-w", out)...)
		msg, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpcap fetch %s: %v\n%s", strings.Join(args, " "), err, msg)
		}
		t.Logf("dpcap fetch %s:\n%s", strings.Join(args, " "), msg)
		pkts, _, err := pcapfile.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(msg), pkts
	}
	window := []string{"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)}
	s3args := []string{bucket, "--endpoint", store.Endpoint(), "--path-style"}

	// vm-1 in the window, from the bucket: phase B's 74 frames of each
	// sink, each sink's in the order sent, all merged by time.
	msg, pkts := fetch("vm-1.pcapng", append(append(s3args, "--port", "vm-1"), window...)...)
	checkFetched(t, pkts, frames, 2)
	checkWithTools(t, filepath.Join(dir, "vm-1.pcapng"), 148)
	if !strings.Contains(msg, "148 packets of") {
		t.Errorf("summary:\n%s", msg)
	}
	// vm-2 in the window, from the sinks' own directories.
	_, pkts = fetch("vm-2.pcapng", append([]string{filepath.Join(dir, "sink-a"), filepath.Join(dir, "sink-b"), "--port", "vm-2"}, window...)...)
	checkFetched(t, pkts, frames[:30], 2)
	// vm-1 at any time, from the bucket: every phase of both sinks, phase
	// C of sink-b included (sent while the store was down, SIGKILLed).
	_, pkts = fetch("all.pcapng", append(s3args, "--port", "vm-1")...)
	checkFetched(t, pkts, frames, 6)
}

// storeIn starts MinIO in ns with a bucket "captures", and puts its
// credentials in the environment of the test's commands.
func storeIn(t *testing.T, ns *testkit.NetNS) (*s3test.Server, *s3.Client) {
	t.Helper()
	store := s3test.Start(t, s3test.Options{
		// No Pdeathsig: the tests end threads (netns.do), and one of them
		// may have started the server; Cleanup ends it.
		Command: func(name string, args ...string) *exec.Cmd {
			cmd := ns.Cmd(name, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{}
			return cmd
		},
		Dial: ns.Dial,
	})
	client := store.Client(t)
	store.MakeBucket(t, client, "captures")
	for _, kv := range store.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return store, client
}

// checkFetched checks that pkts are copies of want, n times over, in
// time order, each copy's frames in the order sent.
func checkFetched(t *testing.T, pkts []pcapfile.Packet, want [][]byte, n int) {
	t.Helper()
	if len(pkts) != n*len(want) {
		t.Fatalf("fetched %d frames, want %d x %d", len(pkts), n, len(want))
	}
	next := map[int]int{} // per output interface (sink): the next frame of want
	for i, p := range pkts {
		if i > 0 && p.Info.Timestamp.Before(pkts[i-1].Info.Timestamp) {
			t.Fatalf("frame %d is older than frame %d", i, i-1)
		}
		j := next[p.Info.InterfaceIndex] % len(want)
		if !bytes.Equal(p.Data, want[j]) {
			t.Fatalf("frame %d (interface %d) is not frame %d as sent", i, p.Info.InterfaceIndex, j)
		}
		next[p.Info.InterfaceIndex]++
	}
}

func listKeys(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// TestFetchStdoutReaderGoneOnAStalledInput pipes dpcap fetch -w - into
// 'head -c 100' while the bucket's answer stalls partway through the
// object (a proxy in front of a real MinIO passes its first 6000 bytes,
// then nothing): after head leaves, fetch writes nothing more, and used to
// wait on the input for as long as it stalled (issue 19). It stops within
// a second, with its summary and exit 0.
func TestFetchStdoutReaderGoneOnAStalledInput(t *testing.T) {
	store := s3test.Start(t, s3test.Options{})
	client := store.Client(t)
	store.MakeBucket(t, client, "captures")
	// 400 frames of 100 bytes: 52 KB of pcapng, far more than passes.
	var obj bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&obj, pcapgo.NgInterface{Name: "vm-1", LinkType: layers.LinkTypeEthernet, SnapLength: 65535}, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i := range 400 {
		frame := randomFrame(rand.New(rand.NewPCG(uint64(i), 0)), 100)
		ci := gopacket.CaptureInfo{Timestamp: first.Add(time.Duration(i) * time.Millisecond), CaptureLength: 100, Length: 100}
		if err := w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	loc, _ := archive.ParseURL("s3://captures/e2e")
	key := loc.Key("sink-a", first, first.Add(400*time.Millisecond), "cap.pcapng")
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("captures"), Key: &key, Body: bytes.NewReader(obj.Bytes())}); err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(store.Endpoint())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // pass what comes at once
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && strings.HasSuffix(r.Request.URL.Path, key) {
			r.Body = &stalling{ReadCloser: r.Body, left: 6000, stop: r.Request.Context().Done()}
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close) // after fetch is ended: Close waits for the stalled answer

	// /dev/stdout is written into as -w - is, and its reader watched alike.
	for out, name := range map[string]string{"-": "standard output", "/dev/stdout": "/dev/stdout"} {
		var stderr syncBuffer
		cmd := exec.Command(bin("dpcap"), "fetch", "s3://captures/e2e", "--endpoint", front.URL, "--path-style", "-w", out)
		cmd.Env, cmd.Stderr = append(os.Environ(), store.Env()...), &stderr
		p := startIntoHead(t, cmd)
		code, after := p.exitAfterHead(t, &stderr)
		t.Logf("dpcap fetch -w %s exited %v after its reader:\n%s", out, after, stderr.String())
		if code != 0 || after > time.Second {
			t.Errorf("-w %s: exit %d %v after the reader went away; want 0 within a second:\n%s", out, code, after, stderr.String())
		}
		for _, want := range []string{"written to " + name, "stopped: the reader of the output went away"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("-w %s: stderr lacks %q:\n%s", out, want, stderr.String())
			}
		}
	}
}

// stalling passes the first left bytes of a body, then blocks until stop.
type stalling struct {
	io.ReadCloser
	left int
	stop <-chan struct{}
}

func (s *stalling) Read(p []byte) (int, error) {
	if s.left == 0 {
		<-s.stop
		return 0, io.ErrUnexpectedEOF
	}
	n, err := s.ReadCloser.Read(p[:min(len(p), s.left)])
	s.left -= n
	return n, err
}
