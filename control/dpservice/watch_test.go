package dpservice

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"github.com/dpcap/dpcap/control/dpservice/dpservicetest"
	"github.com/dpcap/dpcap/flowprog"
)

// TestWatchAppliesAgainAfterRestart runs the watcher against the test
// server while status is read concurrently (go test -race): a restart is
// noticed, the capture applied again once the interface is back, and the
// port map republished.
func TestWatchAppliesAgainAfterRestart(t *testing.T) {
	svc := dpservicetest.New(dpservicetest.Options{Offload: true})
	if err := svc.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	conn, err := grpc.NewClient(svc.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := dpdkpb.NewDPDKironcoreClient(conn)
	orchestrate := func() {
		for {
			if _, err := api.Initialize(context.Background(), &dpdkpb.InitializeRequest{}, grpc.WaitForReady(true)); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := api.CreateInterface(context.Background(), &dpdkpb.CreateInterfaceRequest{InterfaceId: []byte("vm-1"),
			Ipv4Config: &dpdkpb.IpConfig{PrimaryAddress: []byte("10.0.0.1")}}); err != nil {
			t.Error(err)
		}
	}
	orchestrate()

	b, err := New(svc.Addr(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var published atomic.Int32
	go b.Watch(ctx, func() { published.Add(1) })
	go func() { // status readers
		for ctx.Err() == nil {
			_ = b.Report()
			time.Sleep(time.Millisecond)
		}
	}()
	p, err := flowprog.Build(flowprog.Config{Sink: netip.MustParseAddr("2001:db8::9"), DstPort: 3010, VFs: []string{"vm-1"}, PF0: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := svc.Restart(); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, b.Report())
			}
		}
	}
	wait("the restart", func() bool { return strings.Contains(b.Report().Event, "restarted") })
	orchestrate()
	wait("the capture applied again", func() bool { return slices.Equal(svc.Captured(), []string{"pf0", "vm-1"}) })
	wait("the port map republished", func() bool { return published.Load() > 0 })
	if r := b.Report(); r.Problem != "" || !strings.Contains(r.Event, "applied again") {
		t.Fatalf("report %+v", r)
	}
}

// TestCheckEndsWithTheCallersContext: Check asks dp-service within the
// caller's context (the client's request), not a context of its own: a
// caller that gives up is not held for dp-service's slow answer.
func TestCheckEndsWithTheCallersContext(t *testing.T) {
	svc := dpservicetest.New(dpservicetest.Options{Offload: true})
	if err := svc.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	proxy, err := dpservicetest.NewProxy("127.0.0.1:0", svc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	proxy.Delay("ListInterfaces", 3*time.Second)
	b, err := New(proxy.Addr(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := flowprog.Build(flowprog.Config{Sink: netip.MustParseAddr("2001:db8::9"), DstPort: 3010, PF0: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = b.Check(ctx, p)
	if took := time.Since(began); err == nil || took > 2*time.Second {
		t.Fatalf("Check with a 200ms context: %v after %v", err, took)
	}
	if !strings.Contains(err.Error(), "did not answer ListInterfaces") {
		t.Fatalf("Check: %v", err)
	}
}
