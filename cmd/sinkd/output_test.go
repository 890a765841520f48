package main

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink/output"
)

// The toy output: registered in one line, it is in every sinkd of this
// test binary, with no flag of its own.
func init() { output.Register(output.Kind{Name: "toy", Flags: defineToyFlags}) }

// toyFlags ask for the toy whatever the command line.
type toyFlags struct{}

func defineToyFlags(*flag.FlagSet) output.Flags { return &toyFlags{} }

func (*toyFlags) Check(string, map[string]bool) (bool, error) { return true, nil }

func (*toyFlags) New(env output.Env) (output.Consumer, error) {
	toy.mu.Lock()
	defer toy.mu.Unlock()
	toy.closed, toy.opened, toy.sizes, toy.started, toy.stopped, toy.changes = nil, nil, nil, false, false, env.Changes
	return toyOutput{env.Next}, nil
}

// toy is what the toy output of the latest run saw.
var toy struct {
	mu      sync.Mutex
	closed  []pcapout.ClosedFile
	sizes   []int64 // of each closed file, as it was handed to the toy
	opened  []string
	changes bool // an output after the toy changes files
	started bool
	stopped bool
}

type toyOutput struct{ next func(pcapout.ClosedFile) }

func (o toyOutput) Closed(f pcapout.ClosedFile) {
	st, err := os.Stat(f.Name)
	size := int64(-1)
	if err == nil {
		size = st.Size()
	}
	toy.mu.Lock()
	toy.closed = append(toy.closed, f)
	toy.sizes = append(toy.sizes, size)
	toy.mu.Unlock()
	o.next(f)
}

func (toyOutput) Opened(f pcapout.OpenedFile) {
	toy.mu.Lock()
	defer toy.mu.Unlock()
	toy.opened = append(toy.opened, f.Name)
}

func (toyOutput) Start() error {
	toy.mu.Lock()
	defer toy.mu.Unlock()
	toy.started = true
	return nil
}

func (toyOutput) Stop(io.Writer) {
	toy.mu.Lock()
	defer toy.mu.Unlock()
	toy.stopped = true
}

// TestToyOutput adds an output by its registration alone and sees it take
// every file of a real rotating capture (-r with -C), each as it opens and
// as it closes, whole and before -z gzip, which comes after it, changes
// it; the files, read back by capinfos, hold what the toy was told.
func TestToyOutput(t *testing.T) {
	if _, err := exec.LookPath("capinfos"); err != nil {
		t.Skip("no capinfos (apt-get install wireshark-common)")
	}
	dir := t.TempDir()
	var stderr strings.Builder
	if code := run([]string{"-r", "../../testdata/envelopes/nic-ether.pcap", "-w", dir + "/cap.pcap", "-C", "1k", "-z", "gzip", "--hook-wait", "30s"}, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	toy.mu.Lock()
	defer toy.mu.Unlock()
	if !toy.started || !toy.stopped || !toy.changes {
		t.Fatalf("toy started %v, stopped %v, told an output after it changes files %v", toy.started, toy.stopped, toy.changes)
	}
	gz, _ := filepath.Glob(dir + "/cap.pcap*.gz")
	if len(toy.closed) < 3 || len(toy.closed) != len(gz) {
		t.Fatalf("the toy took %d closed files, gzip made %d: %v", len(toy.closed), len(gz), gz)
	}
	t.Logf("the toy took %d files", len(toy.closed))
	var names []string
	var packets uint64
	for i, f := range toy.closed {
		names = append(names, f.Name)
		if toy.sizes[i] != int64(f.Bytes) {
			t.Errorf("%s: %d bytes as the toy took it, %d closed", f.Name, toy.sizes[i], f.Bytes)
		}
		out, err := exec.Command("capinfos", "-c", "-M", f.Name+".gz").CombinedOutput()
		if err != nil {
			t.Fatalf("capinfos %s.gz: %v\n%s", f.Name, err, out)
		}
		m := regexp.MustCompile(`Number of packets:\s+(\d+)`).FindSubmatch(out)
		if m == nil || string(m[1]) != strconv.FormatUint(f.Packets, 10) {
			t.Errorf("%s: capinfos says %s, the toy was told %d packets", f.Name, out, f.Packets)
		}
		packets += f.Packets
	}
	if !slices.Equal(names, toy.opened) {
		t.Errorf("opened %v, closed %v", toy.opened, names)
	}
	if want := strconv.FormatUint(packets, 10) + " packets captured\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("the toy's files hold %d packets; summary:\n%s", packets, stderr.String())
	}
	if !strings.Contains(stderr.String(), strconv.Itoa(len(gz))+" post-rotate commands run (0 failed") {
		t.Errorf("summary:\n%s", stderr.String())
	}
}
