package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/flowprog"
)

// The one line that adds a backend to dpcap serve (a real one's is a blank
// import in backends.go: its package's init calls control.Register).
func init() { control.Register(toyRegistration) }

var toyRegistration = control.Registration{
	Name:     "toy",
	Synopsis: "--toy-serves NAMES [flags]",
	Summary:  "a test's backend, capturing nothing",
	Usage:    "  --toy-serves NAMES  the toy backend's ports, comma-separated\n",
	Flags: func(fs *flag.FlagSet) control.NewBackend {
		serves := fs.String("toy-serves", "", "")
		return func(o control.Options) (control.Backend, error) {
			t := &toy{serves: strings.Split(*serves, ",")}
			toys <- t
			return t, nil
		}
	},
}

// toys hands the test each toy backend made.
var toys = make(chan *toy, 1)

// toy is a backend that serves the ports it is told and records what it
// is asked.
type toy struct {
	serves []string

	mu             sync.Mutex
	applied        []string
	clears, closes int
}

func (t *toy) Name() string { return "toy" }

func (t *toy) Check(_ context.Context, p *flowprog.Program) error {
	for _, port := range p.Config.Ports() {
		if !slices.Contains(t.serves, port) {
			return fmt.Errorf("%w %q: the toy serves %s", control.ErrUnknownPort, port, strings.Join(t.serves, ", "))
		}
	}
	return nil
}

func (t *toy) Apply(_ context.Context, p *flowprog.Program) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = p.Config.Ports()
	return nil
}

func (t *toy) Clear() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = nil
	t.clears++
	return nil
}

func (t *toy) Counters() map[string]control.PortStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]control.PortStatus{}
	for _, p := range t.applied {
		out[p] = control.PortStatus{Samples: 7}
	}
	return out
}

// Close makes the toy a control.Closer: the server releases it at exit.
func (t *toy) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closes++
	return nil
}

// TestToyBackend adds a backend in one line and drives it as dpcap serve
// drives a real one: its flags and name are in serve's help, serve makes
// it from its flag, and dpcap start, status and stop reach it through the
// daemon's API.
func TestToyBackend(t *testing.T) {
	dpcap := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	_, help, _ := dpcap("serve", "--help")
	for _, want := range []string{"dpcap serve --backend toy --toy-serves NAMES", "toy: a test's backend", "--toy-serves NAMES  the toy"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, help)
		}
	}
	if code, _, stderr := dpcap("serve", "--backend", "toys"); code != 2 || !strings.Contains(stderr, `invalid backend "toys": want `) || !strings.Contains(stderr, "toy") {
		t.Errorf("unknown backend: exit %d, %q", code, stderr)
	}

	dir := t.TempDir()
	socket := filepath.Join(dir, "api.sock")
	served := make(chan int, 1)
	var serveErr bytes.Buffer
	go func() {
		served <- run([]string{"serve", "--backend", "toy", "--toy-serves", "vm-1,vm-2", "--socket", socket, "--state-dir", filepath.Join(dir, "state")}, &bytes.Buffer{}, &serveErr)
	}()
	var b *toy
	select {
	case b = <-toys:
	case code := <-served:
		t.Fatalf("serve exited %d: %s", code, serveErr.String())
	}
	// Ready means answering: the socket's file is there before it listens.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if code, _, _ := dpcap("status", "--socket", socket); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not answer: %s", serveErr.String())
		}
	}

	start := []string{"start", "--socket", socket, "--sink-node-ip", "2001:db8::1", "--udp-dst-port", "3010", "-o", "json"}
	if code, out, stderr := dpcap(append(start, "--vf", "vm-1")...); code != 0 || !strings.Contains(out, `"backend": "toy"`) {
		t.Fatalf("start: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := dpcap(append(start, "--vf", "vm-9", "--replace")...); code != 2 || !strings.Contains(stderr, `unknown port "vm-9": the toy serves vm-1, vm-2`) {
		t.Errorf("start on a port the toy does not serve: exit %d, %q", code, stderr)
	}
	code, out, stderr := dpcap("status", "--socket", socket, "-o", "json")
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("status: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if !st.Active || st.Backend != "toy" || len(st.Ports) != 1 || st.Ports[0].Name != "vm-1" || st.Ports[0].Samples != 7 {
		t.Errorf("status: %+v", st)
	}
	if code, out, _ := dpcap("stop", "--socket", socket); code != 0 || out != "capture stopped\n" {
		t.Errorf("stop: exit %d, %q", code, out)
	}
	b.mu.Lock()
	if b.applied != nil || b.clears != 1 {
		t.Errorf("after stop the toy has %v applied, %d clears", b.applied, b.clears)
	}
	b.mu.Unlock()

	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-served:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, serveErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not end on SIGINT")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closes != 1 {
		t.Errorf("the toy was closed %d times at exit, want 1", b.closes)
	}
}
