package dpdk

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/control"
)

// TestRegistered makes the dpdk backend as dpcap serve does: without
// ports it is a usage error, and a build without the dpdk tag says how to
// get DPDK.
func TestRegistered(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	mk := control.BackendFlags(fs)
	if err := fs.Parse([]string{"--eal", "--no-huge"}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := mk("dpdk", control.Options{Logger: logger})
	if err == nil || !strings.Contains(err.Error(), "needs ports") || !errors.Is(err, control.ErrUsage) {
		t.Fatalf("without ports: %v", err)
	}
	if open != nil {
		return // the EAL itself is exercised in e2e (TestDPDKBackendOnPortsThatCannotSample)
	}
	_, err = mk("dpdk", control.Options{Ports: map[string]string{"pf0": "x"}, Logger: logger})
	if err == nil || !strings.Contains(err.Error(), "-tags dpdk") || errors.Is(err, control.ErrUsage) {
		t.Fatalf("without the dpdk tag: %v", err)
	}
}
