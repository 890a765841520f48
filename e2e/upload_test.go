package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/capfile"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/s3test"
)

// TestUploadAndFetch runs two sinks that upload to one bucket of a real
// MinIO, one of them SIGKILLed with a file waiting while the store is
// down, and gets one port's packets of a window back with dpcap fetch,
// from the bucket and from the sinks' directories, checked against the
// frames sent.
func TestUploadAndFetch(t *testing.T) {
	hv, sk := newNS(t), newNS(t)
	link(t, hv, sk, 1600)
	store := s3test.Start(t, s3test.Options{
		// No Pdeathsig: the tests end threads (netns.do), and one of them
		// may have started the server; Cleanup ends it.
		Command: func(name string, args ...string) *exec.Cmd {
			cmd := sk.cmd(name, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{}
			return cmd
		},
		Dial: sk.dial,
	})
	client := store.Client(t)
	store.MakeBucket(t, client, "captures")
	for _, kv := range store.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
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

	frames := vmFrames(t)
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

	fetch := func(name string, args ...string) (string, []capfile.Packet) {
		t.Helper()
		out := filepath.Join(dir, name)
		cmd := sk.cmd(bin("dpcap"), append(append([]string{"fetch"}, args...), "-w", out)...)
		msg, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dpcap fetch %s: %v\n%s", strings.Join(args, " "), err, msg)
		}
		t.Logf("dpcap fetch %s:\n%s", strings.Join(args, " "), msg)
		pkts, _, err := capfile.ReadFile(out)
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

// checkFetched checks that pkts are copies of want, n times over, in
// time order, each copy's frames in the order sent.
func checkFetched(t *testing.T, pkts []capfile.Packet, want [][]byte, n int) {
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
