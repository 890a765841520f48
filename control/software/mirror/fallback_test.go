//go:build linux

package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// fallbackEnv makes the test binary a helper that mirrors a port in the
// network namespace it was started in and prints what came of it.
const fallbackEnv = "DPCAP_MIRROR_FALLBACK_HELPER"

// fallbackResult is what the helper prints.
type fallbackResult struct {
	Method string // the mirror's, when it started
	Err    string
	Log    string
}

// TestAutoFallsBackOnlyWhenTheKernelCannot starts mirrors in network
// namespaces of their own: in a user namespace (root there, not for BPF:
// EPERM) auto falls back to AF_PACKET and says why through the logger it
// was given, while bpf fails; as root auto runs in the kernel, and a fault
// in the mirror's own program (a filter it cannot translate) fails the
// port instead of hiding behind AF_PACKET.
func TestAutoFallsBackOnlyWhenTheKernelCannot(t *testing.T) {
	if os.Getenv(fallbackEnv) != "" {
		t.Skip("the helper's own run")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: network namespaces of their own need root")
	}
	for _, tt := range []struct {
		name, unshare, method, filter string
		wantMethod, wantErr, wantLog  string
	}{
		{"user namespace, auto", "-Urn", MethodAuto, "", MethodPacket, "", "operation not permitted"},
		{"user namespace, bpf", "-Urn", MethodBPF, "", "", "port vm-1: kernel mirror: create the counters map: creating map: map create: operation not permitted", ""},
		{"root, auto", "-n", MethodAuto, "", MethodBPF, "", ""},
		{"root, auto, a program fault", "-n", MethodAuto, "ancillary", "", "port vm-1: kernel mirror: filter: instruction 0: ancillary load at -4096", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("unshare", tt.unshare, os.Args[0], "-test.run=^TestFallbackHelper$", "-test.v")
			cmd.Env = append(os.Environ(), fallbackEnv+"="+tt.method+","+tt.filter)
			out, err := cmd.CombinedOutput()
			_, js, ok := strings.Cut(string(out), "RESULT ")
			var r fallbackResult
			if !ok || json.Unmarshal([]byte(strings.SplitN(js, "\n", 2)[0]), &r) != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			if r.Method != tt.wantMethod || !strings.Contains(r.Err, tt.wantErr) || (tt.wantErr == "") != (r.Err == "") || !strings.Contains(r.Log, tt.wantLog) {
				t.Errorf("method %q, err %q, log %q; want method %q, err %q, log with %q", r.Method, r.Err, r.Log, tt.wantMethod, tt.wantErr, tt.wantLog)
			}
			if tt.wantMethod == MethodPacket && !strings.Contains(r.Log, "kernel mirror unavailable; mirroring through AF_PACKET") {
				t.Errorf("the fallback was not logged through the mirror's logger: %q", r.Log)
			}
		})
	}
}

// TestFallbackHelper is the helper: in its namespace, the sink behind one
// end of a veth pair (its neighbour entry permanent), and the port one
// end of another (on the first pair's other end it would receive its own
// copies, and copy them again).
func TestFallbackHelper(t *testing.T) {
	spec := os.Getenv(fallbackEnv)
	if spec == "" {
		t.Skip("run by TestAutoFallsBackOnlyWhenTheKernelCannot")
	}
	method, filterName, _ := strings.Cut(spec, ",")
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "mir0", "type", "veth", "peer", "name", "mir1"},
		{"link", "set", "mir0", "up"},
		{"link", "set", "mir1", "up"},
		{"link", "add", "mirport", "type", "veth", "peer", "name", "mirpeer"},
		{"link", "set", "mirport", "up"},
		{"link", "set", "mirpeer", "up"},
		{"-6", "addr", "add", "2001:db8:77::1/64", "dev", "mir0", "nodad"},
		{"-6", "neigh", "add", "2001:db8:77::2", "lladdr", "02:00:00:00:77:02", "dev", "mir0", "nud", "permanent"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	var log bytes.Buffer
	cfg := Config{Sink: netip.MustParseAddrPort("[2001:db8:77::2]:3010"), Method: method, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	if filterName == "ancillary" {
		// SKF_AD_OFF + SKF_AD_PROTOCOL: what only a live Linux handle's
		// compiler emits, and the kernel mirror's translation refuses.
		cfg.Filter, _ = bpf.Assemble([]bpf.Instruction{bpf.LoadAbsolute{Off: 0xfffff000, Size: 2}, bpf.RetConstant{Val: 65535}})
	}
	port := "mirport"
	if filterName == "feedback" {
		port = "mir1" // where the copies to the sink arrive
	}
	var r fallbackResult
	m, err := Start(context.Background(), Port{Name: "vm-1", Interface: port, Tag: 1}, cfg)
	if err == nil && filterName == "feedback" {
		stopsUnderLoad(t, m)
	}
	if err != nil {
		r.Err = err.Error()
	} else {
		r.Method = m.Method()
		m.Stop()
	}
	r.Log = log.String()
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
}

// TestKernelCannot: what the kernel does not allow falls back; the
// verifier's refusal of the mirror's own program (a real one, loaded as
// root) and any other failure do not.
func TestKernelCannot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: loading BPF programs needs root")
	}
	// R9 is read before it is written: the verifier refuses the program.
	_, verifierErr := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Reg(asm.R0, asm.R9), asm.Return()}})
	if verifierErr == nil {
		t.Fatal("the verifier took a program reading an uninitialized register")
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("load the program: %w", verifierErr), false},
		{fmt.Errorf("attach (tcx): %w", ebpf.ErrNotSupported), true},
		{fmt.Errorf("create the counters map: %w", unix.EPERM), true},
		{unaddressable{errors.New("the kernel mirror sends to IPv6 sinks only")}, true},
		{fmt.Errorf("fd00::2: %w", errNoNeighbour), true},
		{fmt.Errorf("interface tap0: %w", unix.ENODEV), false},
		{fmt.Errorf("filter: %w", errors.New("instruction 3 jumps past the end")), false},
	} {
		if got := kernelCannot(tt.err); got != tt.want {
			t.Errorf("kernelCannot(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// stopsUnderLoad makes m copy its own copies (a frame to the sink starts
// it: it arrives on the port) and stops it while they go round: Stop sends
// what the port received before it, not what keeps coming.
func stopsUnderLoad(t *testing.T, m Mirror) {
	_ = exec.Command("ping", "-6", "-c", "1", "-W", "1", "2001:db8:77::2").Run()
	for deadline := time.Now().Add(20 * time.Second); m.Stats().Mirrored < 1000; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no feedback: %+v", m.Stats())
		}
	}
	stopped := make(chan struct{})
	go func() { m.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		fmt.Printf("RESULT {\"Err\":\"Stop did not return within 10s while the port kept receiving\"}\n")
		os.Exit(1)
	}
}

// TestPacketMirrorStopsUnderLoad: a packet mirror whose port keeps
// receiving (its own copies, in a namespace of its own) stops all the same.
func TestPacketMirrorStopsUnderLoad(t *testing.T) {
	if os.Getenv(fallbackEnv) != "" {
		t.Skip("the helper's own run")
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: a network namespace of its own needs root")
	}
	cmd := exec.Command("unshare", "-n", os.Args[0], "-test.run=^TestFallbackHelper$", "-test.v")
	cmd.Env = append(os.Environ(), fallbackEnv+"="+MethodPacket+",feedback")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), `RESULT {"Method":"af_packet"`) {
		t.Fatalf("helper:\n%s", out)
	}
}
