package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"github.com/dpcap/dpcap/control/dpservice/dpservicetest"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/portmap"
)

// dpsvcFixture is a dp-service stand-in (package dpservicetest) and a
// dpcap serve --backend dpservice driving it.
type dpsvcFixture struct {
	svc           *dpservicetest.Server
	proxy         *dpservicetest.Proxy // between serve and svc, where set
	api           dpdkpb.DPDKironcoreClient
	socket, state string
	serve         *exec.Cmd
	serveLog      *syncBuffer
	sink, dstPort string
}

func newDPService(t *testing.T, opts dpservicetest.Options) *dpsvcFixture {
	t.Helper()
	f := &dpsvcFixture{svc: dpservicetest.New(opts), sink: "2001:db8:f::9", dstPort: "3010"}
	if err := f.svc.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.svc.Close)
	conn, err := grpc.NewClient(f.svc.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.api = dpdkpb.NewDPDKironcoreClient(conn)
	tmp := t.TempDir()
	f.socket, f.state = filepath.Join(tmp, "dpcap.sock"), filepath.Join(tmp, "state")
	f.startServe(t)
	return f
}

func (f *dpsvcFixture) startServe(t *testing.T) {
	t.Helper()
	f.serveLog = &syncBuffer{}
	addr := f.svc.Addr()
	if f.proxy != nil {
		addr = f.proxy.Addr()
	}
	f.serve = exec.Command(bin("dpcap"), "serve", "--backend", "dpservice", "--dpservice", addr,
		"--underlay-ip", "fc00:1::1", "--socket", f.socket, "--state-dir", f.state)
	f.serve.Stderr = f.serveLog
	if err := f.serve.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := f.serve
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testkit.Eventually(t, 10*time.Second, "dpcap serve to answer", func() bool { _, code := dpcap(t, "status", "--socket", f.socket); return code == 0 })
}

func (f *dpsvcFixture) stopServe(t *testing.T) {
	f.serve.Process.Signal(syscall.SIGTERM)
	f.serve.Wait()
}

// behindProxy restarts dpcap serve to reach dp-service through a proxy
// that can hold back its answers.
func (f *dpsvcFixture) behindProxy(t *testing.T) *dpservicetest.Proxy {
	t.Helper()
	p, err := dpservicetest.NewProxy("127.0.0.1:0", f.svc.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	f.stopServe(t)
	f.proxy = p
	f.startServe(t)
	return p
}

// orchestrate does what dp-service's orchestrator does after a start:
// Initialize, then the VMs' interfaces.
func (f *dpsvcFixture) orchestrate(t *testing.T, ids ...string) {
	t.Helper()
	ctx := context.Background()
	// The first call after a restart may meet the old connection closing.
	testkit.Eventually(t, 10*time.Second, "Initialize to succeed", func() bool {
		_, err := f.api.Initialize(ctx, &dpdkpb.InitializeRequest{}, grpc.WaitForReady(true))
		return err == nil
	})
	for i, id := range ids {
		r, err := f.api.CreateInterface(ctx, &dpdkpb.CreateInterfaceRequest{InterfaceId: []byte(id), Vni: 100,
			Ipv4Config: &dpdkpb.IpConfig{PrimaryAddress: fmt.Appendf(nil, "10.0.0.%d", i+1)},
			Ipv6Config: &dpdkpb.IpConfig{PrimaryAddress: fmt.Appendf(nil, "fd00::%d", i+1)}})
		if err != nil || r.Status.GetCode() != 0 {
			t.Fatalf("CreateInterface %s: %v %v", id, err, r.GetStatus())
		}
	}
}

func (f *dpsvcFixture) start(t *testing.T, ports ...string) (string, int) {
	t.Helper()
	return dpcap(t, append([]string{"start", "--socket", f.socket, "--sink-node-ip", f.sink, "--udp-dst-port", f.dstPort}, ports...)...)
}

func (f *dpsvcFixture) status(t *testing.T) control.Status { return status(t, f.socket) }

func (f *dpsvcFixture) waitDataplane(t *testing.T, what string, cond func(d *control.DataplaneStatus) bool) control.Status {
	t.Helper()
	var st control.Status
	testkit.Eventually(t, 10*time.Second, what, func() bool {
		st = f.status(t)
		return st.Dataplane != nil && cond(st.Dataplane)
	})
	return st
}

func oneLine(t *testing.T, what, out string, code, wantCode int, wants ...string) {
	t.Helper()
	if code != wantCode || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("%s: exit %d (want %d), want one line:\n%s", what, code, wantCode, out)
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: %q lacks %q", what, out, w)
		}
	}
}

// TestDPServiceBackend drives dpcap serve --backend dpservice against a
// server that answers as dp-service does (defects included) through every
// path: not initialized, unknown ids, 17 ports, start, status and port
// map, a dp-service restart and the capture applied again, a daemon
// restart adopting the capture, the stop dp-service refuses, the partial
// start it cannot roll back, and dp-service unreachable.
func TestDPServiceBackend(t *testing.T) {
	f := newDPService(t, dpservicetest.Options{Offload: true})

	// Before its orchestrator initializes it, dp-service answers ABORTED.
	f.waitDataplane(t, "status to say not initialized", func(d *control.DataplaneStatus) bool { return d.State == "not initialized" })
	out, code := f.start(t, "--vf", "vm-1")
	oneLine(t, "start before initialization", out, code, 1, "is not initialized yet")

	f.orchestrate(t, "vm-1", "vm-2")
	f.waitDataplane(t, "the interfaces in status", func(d *control.DataplaneStatus) bool { return d.State == "ready" && len(d.Interfaces) == 2 })
	if out, _ := dpcap(t, "status", "--socket", f.socket); !strings.Contains(out, "vm-2") || !strings.Contains(out, "10.0.0.2") || !strings.Contains(out, "NOT ACTIVE") {
		t.Fatalf("status lists no interfaces:\n%s", out)
	}

	// Ids dp-service does not have are refused before CaptureStart.
	out, code = f.start(t, "--vf", "vm-1,vm-9,vm-8")
	oneLine(t, "unknown ids", out, code, 2, "unknown port vm-9, vm-8", "has interfaces vm-1, vm-2")
	var many []string
	for i := range 17 {
		many = append(many, fmt.Sprintf("vm-%d", i+1))
	}
	out, code = f.start(t, "--vf", strings.Join(many[:16], ","), "--pf", "0")
	oneLine(t, "17 ports", out, code, 2, "17 ports: at most 16")
	if n := f.svc.Calls("CaptureStart"); n != 0 {
		t.Fatalf("refused starts reached dp-service: %d CaptureStart calls", n)
	}

	// Start: dp-service captures exactly what was asked; the port map
	// names each port by what its copies carry.
	out, code = f.start(t, "--vf", "vm-1,vm-2", "--pf", "0")
	if code != 0 || !strings.Contains(out, "ACTIVE (dpservice backend)") || !strings.Contains(out, "captures pf0, vm-1, vm-2") {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	if got := f.svc.Captured(); !slices.Equal(got, []string{"pf0", "vm-1", "vm-2"}) {
		t.Fatalf("dp-service captures %v", got)
	}
	m, err := portmap.Load(filepath.Join(f.state, "portmap.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Ports) != 3 || m.Ports[0].Name != "vm-1" || m.Ports[0].IPv4.String() != "10.0.0.1" || m.Ports[0].IPv6.String() != "fd00::1" ||
		m.Ports[0].UnderlayRoute.String() != "fc00:1::1/128" || m.Ports[0].Tag != 0 || m.Ports[0].Source.String() != "fc00:1::1" ||
		m.Ports[2].Name != "pf0" || m.Ports[2].Kind != portmap.KindPF {
		t.Fatalf("port map: %+v", m)
	}
	checkPublishedMapNamesCopies(t, filepath.Join(f.state, "portmap.json"))
	for _, format := range []string{"yaml", "json"} {
		if out, code := dpcap(t, "status", "-o", format, "--socket", f.socket); code != 0 || !strings.Contains(out, "underlay_route") {
			t.Fatalf("status -o %s: exit %d\n%s", format, code, out)
		}
	}

	// dp-service restarts: a new UUID, not initialized, no interfaces.
	oldUUID := f.status(t).Dataplane.UUID
	if err := f.svc.Restart(); err != nil {
		t.Fatal(err)
	}
	f.waitDataplane(t, "the restart noticed", func(d *control.DataplaneStatus) bool {
		return strings.Contains(d.Event, "restarted") && strings.Contains(d.Event, oldUUID)
	})
	f.orchestrate(t, "vm-1") // vm-2 comes later: dpcap waits for it
	f.waitDataplane(t, "dpcap to wait for vm-2", func(d *control.DataplaneStatus) bool { return strings.Contains(d.Problem, "once dp-service has vm-2") })
	if _, err := f.api.CreateInterface(context.Background(), &dpdkpb.CreateInterfaceRequest{InterfaceId: []byte("vm-2"),
		Ipv4Config: &dpdkpb.IpConfig{PrimaryAddress: []byte("10.0.0.2")}}); err != nil {
		t.Fatal(err)
	}
	st := f.waitDataplane(t, "the capture applied again", func(d *control.DataplaneStatus) bool {
		return strings.Contains(d.Event, "applied again") && len(d.Captured) == 3
	})
	if !st.Active || st.Dataplane.Problem != "" || !slices.Equal(f.svc.Captured(), []string{"pf0", "vm-1", "vm-2"}) {
		t.Fatalf("after the restart: %+v; dp-service captures %v", st, f.svc.Captured())
	}
	if !strings.Contains(f.serveLog.String(), "dp-service restarted") || !strings.Contains(f.serveLog.String(), "capture applied again") {
		t.Fatalf("the log does not say so:\n%s", f.serveLog)
	}

	// dpcap serve restarts: dp-service's capture is left running and adopted.
	starts := f.svc.Calls("CaptureStart")
	f.stopServe(t)
	f.startServe(t)
	f.waitDataplane(t, "the capture adopted", func(d *control.DataplaneStatus) bool { return len(d.Captured) == 3 && d.Problem == "" })
	if n := f.svc.Calls("CaptureStart"); n != starts {
		t.Fatalf("an adopted capture was started again (%d calls)", n-starts)
	}

	// dp-service's stop fails whenever ports are captured: dpcap says so,
	// names them, and never reports "stopped". The capture goes on, so its
	// port map and state stay.
	mapBefore, err := os.ReadFile(filepath.Join(f.state, "portmap.json"))
	if err != nil {
		t.Fatal(err)
	}
	out, code = dpcap(t, "stop", "--socket", f.socket)
	if b, err := os.ReadFile(filepath.Join(f.state, "portmap.json")); err != nil || string(b) != string(mapBefore) {
		t.Fatalf("the refused stop removed or changed the port map: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.state, "capture.json")); err != nil {
		t.Fatalf("the refused stop removed the saved capture: %v", err)
	}
	oneLine(t, "stop", out, code, 1, "did not stop capture", "210 ALREADY_ACTIVE", "still captures pf0, vm-1, vm-2", "ends when dp-service restarts",
		"its port map stays published at "+filepath.Join(f.state, "portmap.json"))
	out, _ = dpcap(t, "status", "--socket", f.socket)
	if !strings.Contains(out, "NOT STOPPED: dp-service still captures pf0, vm-1, vm-2") || !strings.Contains(out, "its stop was refused at") ||
		!strings.Contains(out, "port map for sinkd --port-map: "+filepath.Join(f.state, "portmap.json")) {
		t.Fatalf("status after the refused stop:\n%s", out)
	}
	// A restarted dpcap serve keeps it so, applies nothing, and asks for
	// the stop again.
	starts, stops := f.svc.Calls("CaptureStart"), f.svc.Calls("CaptureStop")
	f.stopServe(t)
	f.startServe(t)
	st = f.waitDataplane(t, "the stop asked again", func(d *control.DataplaneStatus) bool { return len(d.Stuck) == 3 })
	if st.StopRefused.IsZero() || !st.Active || f.svc.Calls("CaptureStart") != starts || f.svc.Calls("CaptureStop") != stops+1 ||
		strings.Contains(st.Dataplane.Problem, "not started by this dpcap serve") {
		t.Fatalf("after a restart of dpcap serve: %+v %+v", st, st.Dataplane)
	}
	out, code = dpcap(t, "stop", "--socket", f.socket) // tried again, not "not active"
	oneLine(t, "second stop", out, code, 1, "still captures pf0, vm-1, vm-2")
	if err := f.svc.Restart(); err != nil { // what ends it
		t.Fatal(err)
	}
	f.orchestrate(t, "vm-1", "vm-2")
	f.waitDataplane(t, "the stuck ports gone", func(d *control.DataplaneStatus) bool { return d.State == "ready" && len(d.Stuck) == 0 })
	testkit.Eventually(t, 10*time.Second, "the stop finished", func() bool { return !f.status(t).Active })
	for _, name := range []string{"portmap.json", "capture.json"} {
		if _, err := os.Stat(filepath.Join(f.state, name)); err == nil {
			t.Errorf("%s left after the capture ended", name)
		}
	}
	if out, code := dpcap(t, "stop", "--socket", f.socket); code != 0 || !strings.Contains(out, "not active") {
		t.Fatalf("stop after the restart: exit %d %s", code, out)
	}
	time.Sleep(2 * time.Second) // watch rounds in which nothing may come back
	if st := f.status(t); st.Active || f.svc.Calls("CaptureStart") != 0 {
		t.Fatalf("a stopped capture came back: %+v", st)
	}

	// A multi-port start failing on its second port: dp-service answers
	// 212 and leaves the first captured.
	f.svc.FailCaptureOn("vm-2")
	out, code = f.start(t, "--vf", "vm-1,vm-2")
	oneLine(t, "partial start", out, code, 1, "212 ROLLBACK", "still captures vm-1", "ends when dp-service restarts")
	if got := f.svc.Captured(); !slices.Equal(got, []string{"vm-1"}) {
		t.Fatalf("dp-service captures %v", got)
	}
	if st := f.status(t); st.Active || !slices.Equal(st.Dataplane.Stuck, []string{"vm-1"}) {
		t.Fatalf("status after the partial start: %+v", st.Dataplane)
	}

	// dp-service unreachable: status says so; dpcap retries.
	f.svc.Close()
	f.waitDataplane(t, "unreachable in status", func(d *control.DataplaneStatus) bool {
		return d.State == "unreachable" && strings.Contains(d.Problem, "unreachable")
	})
	out, code = f.start(t, "--vf", "vm-1")
	oneLine(t, "start while unreachable", out, code, 1, "is unreachable")
	if err := f.svc.Restart(); err != nil {
		t.Fatal(err)
	}
	f.orchestrate(t, "vm-1")
	f.waitDataplane(t, "reachable again", func(d *control.DataplaneStatus) bool { return d.State == "ready" && len(d.Interfaces) == 1 })
}

// TestDPServiceRefusals: dp-service without offload (211) and a capture
// started elsewhere (210), each one clear line, nothing left active.
func TestDPServiceRefusals(t *testing.T) {
	f := newDPService(t, dpservicetest.Options{})
	f.orchestrate(t, "vm-1")
	f.waitDataplane(t, "ready", func(d *control.DataplaneStatus) bool { return len(d.Interfaces) == 1 })
	out, code := f.start(t, "--vf", "vm-1")
	oneLine(t, "start without offload", out, code, 1, "dp-service runs without offload; hardware capture needs it", "211 NOT_ACTIVE")
	if out, _ := dpcap(t, "status", "--socket", f.socket); !strings.Contains(out, "NOT ACTIVE (dpservice backend)") {
		t.Fatalf("status:\n%s", out)
	}
	out, code = f.start(t, "--vf", "vm-1", "--filter", "proto=tcp")
	oneLine(t, "a filter", out, code, 1, "dp-service captures whole ports")

	g := newDPService(t, dpservicetest.Options{Offload: true})
	g.orchestrate(t, "vm-1", "vm-2")
	g.waitDataplane(t, "ready", func(d *control.DataplaneStatus) bool { return len(d.Interfaces) == 2 })
	r, err := g.api.CaptureStart(context.Background(), &dpdkpb.CaptureStartRequest{CaptureConfig: &dpdkpb.CaptureConfig{
		SinkNodeIp: &dpdkpb.IpAddress{Ipver: dpdkpb.IpVersion_IPV6, Address: []byte("2001:db8::77")}, UdpDstPort: 4000,
		Interfaces: []*dpdkpb.CapturedInterface{{InterfaceType: dpdkpb.CaptureInterfaceType_SINGLE_VF, Spec: &dpdkpb.CapturedInterface_VfName{VfName: []byte("vm-2")}}}}})
	if err != nil || r.Status.GetCode() != 0 {
		t.Fatal(err, r)
	}
	out, code = g.start(t, "--vf", "vm-1")
	oneLine(t, "start while started elsewhere", out, code, 1, "already active in dp-service (started elsewhere?)", "dp-service captures vm-2")
	if st := g.status(t); st.Active {
		t.Fatalf("active after a refused start: %+v", st)
	}
	var d control.Status
	out, _ = dpcap(t, "status", "-o", "json", "--socket", g.socket)
	if err := json.Unmarshal([]byte(out), &d); err != nil || !slices.Equal(d.Dataplane.Captured, []string{"vm-2"}) {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(g.state, "portmap.json")); err == nil {
		t.Fatal("a refused start published a port map")
	}
	// A capture started elsewhere shows, and dpcap stop tries to stop it
	// (which dp-service at this version refuses).
	g.waitDataplane(t, "the foreign capture as a problem", func(d *control.DataplaneStatus) bool {
		return strings.Contains(d.Problem, "not started by this dpcap serve")
	})
	if out, _ := dpcap(t, "status", "--socket", g.socket); !strings.Contains(out, "NOT ACTIVE here, but dp-service captures vm-2") {
		t.Fatalf("status:\n%s", out)
	}
	out, code = dpcap(t, "stop", "--socket", g.socket)
	oneLine(t, "stop of a foreign capture", out, code, 1, "still captures vm-2")
	if out, _ := dpcap(t, "status", "--socket", g.socket); !strings.Contains(out, "NOT STOPPED: dp-service still captures vm-2") {
		t.Fatalf("status:\n%s", out)
	}
}

// checkPublishedMapNamesCopies feeds sinkd -r the untagged envelopes
// dp-service would send for the interfaces the test server made (vm-1:
// 10.0.0.1, fd00::1, route fc00:1::1; vm-2: 10.0.0.2, fd00::2, fc00:1::2)
// with the map dpcap serve published: every frame lands on its port.
func checkPublishedMapNamesCopies(t *testing.T, portMap string) {
	t.Helper()
	tmpl, err := decap.Envelope{DstMAC: router, SrcMAC: pf0MAC, Src: netip.MustParseAddr("fc00:1::1"),
		Dst: netip.MustParseAddr("2001:db8:f::9"), DstPort: 3010}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][][]byte{}
	var envelopes [][]byte
	add := func(name string, f []byte) {
		want[name] = append(want[name], f)
		envelopes = append(envelopes, decap.Encap(nil, &tmpl, f, true))
	}
	for i := range 6 {
		add("vm-1", vmFrame(t, vm1MAC, "10.0.0.1", "fd00::1", i))
		add("vm-2", vmFrame(t, vm2MAC, "10.0.0.2", "fd00::2", i))
		add("pf0 to vm-1", pfFrame(t, "fc00:1::1", "10.0.0.1", "fd00::1", i))
		add("pf0 to vm-2", pfFrame(t, "fc00:1::2", "10.0.0.2", "fd00::2", i))
	}
	out := filepath.Join(t.TempDir(), "cap.pcapng")
	if b, err := exec.Command(bin("sinkd"), "-r", testkit.WritePcap(t, envelopes), "-w", out, "--port-map", portMap).CombinedOutput(); err != nil {
		t.Fatalf("sinkd -r: %v\n%s", err, b)
	}
	got := testkit.FramesByInterface(t, out)
	if len(got) != len(want) {
		t.Errorf("interfaces %v, want %d", slices.Sorted(maps.Keys(got)), len(want))
	}
	for name, frames := range want {
		equalFrames(t, got[name], frames)
	}
}

// TestDPServiceNamesSinksReadAsOne: dp-service has an interface whose id
// a sink reads as vm-1 (sinks drop escapes from names). Asking for both is
// refused in one line (exit 2) before dp-service is asked; with PF0, whose
// map lists every interface, the published map is one sinkd accepts and
// files every copy under its own port.
func TestDPServiceNamesSinksReadAsOne(t *testing.T) {
	f := newDPService(t, dpservicetest.Options{Offload: true})
	f.orchestrate(t, "vm-1", "vm-2", "vm-1\x1b[0m")
	f.waitDataplane(t, "the interfaces", func(d *control.DataplaneStatus) bool { return len(d.Interfaces) == 3 })
	out, code := f.start(t, "--vf", "vm-1,vm-1\x1b[0m")
	oneLine(t, "two ids sinks read as one", out, code, 2, `ports "vm-1" and "vm-1\x1b[0m" given: sinks read both as "vm-1"`)
	if n := f.svc.Calls("CaptureStart"); n != 0 {
		t.Fatalf("the refused start reached dp-service: %d CaptureStart calls", n)
	}
	if out, code := f.start(t, "--vf", "vm-1,vm-2", "--pf", "0"); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	checkPublishedMapNamesCopies(t, filepath.Join(f.state, "portmap.json"))
}

// TestDPServiceStatusEscapes: interface ids with terminal escapes, from
// dp-service and from --vf, reach the terminal escaped: in dpcap status,
// in a start's status and in an error listing dp-service's interfaces.
func TestDPServiceStatusEscapes(t *testing.T) {
	const evil, shown = "vm-\x1b]0;owned\a\x1b[31m2", `vm-\x1b]0;owned\a\x1b[31m2`
	f := newDPService(t, dpservicetest.Options{Offload: true})
	f.orchestrate(t, "vm-1", evil)
	f.waitDataplane(t, "the interfaces", func(d *control.DataplaneStatus) bool { return len(d.Interfaces) == 2 })
	raw := func(what, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, shown) {
			t.Fatalf("%s: want %s escaped, no ESC or BEL:\n%q", what, shown, out)
		}
	}
	out, _ := dpcap(t, "status", "--socket", f.socket)
	raw("status", out)
	out, code := f.start(t, "--vf", "vm-9")
	oneLine(t, "an unknown port", out, code, 2, "has interfaces vm-1")
	raw("an unknown port", out)
	out, code = f.start(t, "--vf", evil)
	if code != 0 {
		t.Fatalf("start: exit %d\n%q", code, out)
	}
	raw("start", out)
	out, _ = dpcap(t, "status", "--socket", f.socket)
	raw("status while active", out)
}

// TestDPServiceLateAnswer: dp-service applies a CaptureStart but answers
// after 8 s, past dpcap's 5 s. dpcap asks CaptureStatus before saying what
// happened: dp-service captures vm-1 as asked, so the capture is taken as
// started and its port map published. When CaptureStatus is late too, the
// error says what is captured is unknown, never "nothing was changed".
func TestDPServiceLateAnswer(t *testing.T) {
	f := newDPService(t, dpservicetest.Options{Offload: true})
	f.orchestrate(t, "vm-1", "vm-2")
	proxy := f.behindProxy(t)
	f.waitDataplane(t, "the interfaces", func(d *control.DataplaneStatus) bool { return len(d.Interfaces) == 2 })

	proxy.Delay("CaptureStart", 8*time.Second)
	out, code := f.start(t, "--vf", "vm-1")
	if code != 0 || !strings.Contains(out, "ACTIVE (dpservice backend)") || !strings.Contains(out, "CaptureStart got no answer") ||
		!strings.Contains(out, "did not answer CaptureStart within 5s") || !strings.Contains(out, "captures vm-1 as asked: taken as started") {
		t.Fatalf("start answered late: exit %d\n%s", code, out)
	}
	if got := f.svc.Captured(); !slices.Equal(got, []string{"vm-1"}) {
		t.Fatalf("dp-service captures %v", got)
	}
	m, err := portmap.Load(filepath.Join(f.state, "portmap.json"))
	if err != nil || len(m.Ports) != 1 || m.Ports[0].Name != "vm-1" || m.Ports[0].IPv4.String() != "10.0.0.1" {
		t.Fatalf("port map: %v %+v", err, m)
	}
	if st := f.status(t); !st.Active || st.Dataplane.Problem != "" {
		t.Fatalf("status: %+v", st)
	}

	// Restart dp-service (its stop does not work) and start again with
	// CaptureStatus late as well: what dp-service did is unknown.
	proxy.Delay("CaptureStart", 0)
	if out, code := dpcap(t, "stop", "--socket", f.socket); code != 1 {
		t.Fatalf("stop: exit %d %s", code, out)
	}
	if err := f.svc.Restart(); err != nil {
		t.Fatal(err)
	}
	f.orchestrate(t, "vm-1", "vm-2")
	f.waitDataplane(t, "the restarted dp-service", func(d *control.DataplaneStatus) bool {
		return d.State == "ready" && len(d.Interfaces) == 2 && len(d.Captured) == 0
	})
	testkit.Eventually(t, 10*time.Second, "the refused stop finished", func() bool { return !f.status(t).Active })
	proxy.Delay("CaptureStart", 8*time.Second)
	proxy.Delay("CaptureStatus", 8*time.Second)
	out, code = f.start(t, "--vf", "vm-2")
	oneLine(t, "start and status answered late", out, code, 1, "did not answer CaptureStart within 5s",
		"whether dp-service captures anything now is unknown")
	if strings.Contains(out, "nothing was changed") {
		t.Fatalf("dpcap says nothing was changed while dp-service captures %v: %s", f.svc.Captured(), out)
	}
	// Once dp-service answers in time, status shows what it captures.
	proxy.Delay("CaptureStatus", 0)
	f.waitDataplane(t, "dp-service's capture in status", func(d *control.DataplaneStatus) bool {
		return slices.Equal(d.Captured, []string{"vm-2"}) && strings.Contains(d.Problem, "not started by this dpcap serve")
	})
}

// TestDPServiceOtherSink: a restarted dpcap serve finds dp-service
// capturing the saved ports to another sink (started elsewhere while it
// was down). Status shows dp-service's sink and ports and says they are
// not what serve asked; the capture is not shown active.
func TestDPServiceOtherSink(t *testing.T) {
	f := newDPService(t, dpservicetest.Options{Offload: true})
	f.orchestrate(t, "vm-1")
	f.waitDataplane(t, "the interface", func(d *control.DataplaneStatus) bool { return len(d.Interfaces) == 1 })
	if out, code := f.start(t, "--vf", "vm-1"); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	f.stopServe(t)
	if err := f.svc.Restart(); err != nil {
		t.Fatal(err)
	}
	f.orchestrate(t, "vm-1")
	r, err := f.api.CaptureStart(context.Background(), &dpdkpb.CaptureStartRequest{CaptureConfig: &dpdkpb.CaptureConfig{
		SinkNodeIp: &dpdkpb.IpAddress{Ipver: dpdkpb.IpVersion_IPV6, Address: []byte("2001:db8::77")}, UdpDstPort: 4000,
		Interfaces: []*dpdkpb.CapturedInterface{{InterfaceType: dpdkpb.CaptureInterfaceType_SINGLE_VF, Spec: &dpdkpb.CapturedInterface_VfName{VfName: []byte("vm-1")}}}}})
	if err != nil || r.Status.GetCode() != 0 {
		t.Fatal(err, r)
	}
	f.startServe(t)
	st := f.waitDataplane(t, "dp-service's capture", func(d *control.DataplaneStatus) bool {
		return d.State == "ready" && slices.Equal(d.Captured, []string{"vm-1"})
	})
	const want = "dp-service captures vm-1 to [2001:db8::77]:4000 (UDP source port 0), not vm-1 to [2001:db8:f::9]:3010 (UDP source port 0) as asked"
	if st.Active || st.Dataplane.Sink != "[2001:db8::77]:4000" || st.Dataplane.Differs != want {
		t.Fatalf("status -o json: active %v, dp-service's sink %q, differs %q", st.Active, st.Dataplane.Sink, st.Dataplane.Differs)
	}
	out, _ := dpcap(t, "status", "--socket", f.socket)
	if strings.Contains(out, "ACTIVE (dpservice") || !strings.Contains(out, "capture: NOT AS ASKED (dpservice backend): "+want) ||
		!strings.Contains(out, "captures vm-1 to [2001:db8::77]:4000") {
		t.Fatalf("status:\n%s", out)
	}
	// dpcap serve's attempt to apply its own was refused, and says so.
	if d := f.status(t).Dataplane; !strings.Contains(d.Problem, "already active in dp-service") {
		t.Fatalf("problem: %q", d.Problem)
	}
}
