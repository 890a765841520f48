package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

// recorder is a Backend that records calls and fails when told to. The
// real backend is exercised end to end in e2e; this one reaches the
// server's error paths.
type recorder struct {
	applied []string
	program *flowprog.Program
	failOn  string
	clears  int
	// clearErr fails the next Clear, which then stops nothing.
	clearErr error
	// notUndone makes failOn's failure one that leaves the ports before
	// it captured.
	notUndone bool
}

func (r *recorder) Name() string { return "recorder" }

// Check knows the ports of req and vm-3.
func (r *recorder) Check(_ context.Context, p *flowprog.Program) error {
	for _, port := range p.Config.Ports() {
		if !slices.Contains([]string{"vm-1", "vm-2", "vm-3", "pf0"}, port) {
			return fmt.Errorf("%w %q", ErrUnknownPort, port)
		}
	}
	return nil
}

func (r *recorder) Apply(_ context.Context, p *flowprog.Program) error {
	for _, port := range p.Config.Ports() {
		if port == r.failOn && r.notUndone {
			return NotUndone(fmt.Errorf("port %s refused, and undoing %v failed", port, r.applied))
		}
		if port == r.failOn {
			r.applied = nil
			return errors.New("port " + port + " refused")
		}
		r.applied = append(r.applied, port)
	}
	r.applied, r.program = p.Config.Ports(), p
	return nil
}

func (r *recorder) Clear() error {
	r.clears++
	if err := r.clearErr; err != nil {
		r.clearErr = nil
		return err
	}
	r.applied = nil
	return nil
}

func (r *recorder) Counters() map[string]PortStatus { return nil }

func newTestServer(t *testing.T, b Backend, dir string) *Server {
	t.Helper()
	s, err := NewServer(context.Background(), b, Config{StateDir: dir, Envelope: Envelope{Underlay: netip.MustParseAddr("2001:db8::10")}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// activeServer returns a server over a recorder, req started, and its
// state directory.
func activeServer(t *testing.T) (*Server, *recorder, string) {
	t.Helper()
	dir := t.TempDir()
	b := &recorder{}
	s := newTestServer(t, b, dir)
	if _, _, err := s.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	return s, b, dir
}

var req = StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 3010, VFs: []string{"vm-1", "vm-2"}, PF0: true}

func TestStartStopAndState(t *testing.T) {
	dir := t.TempDir()
	b := &recorder{}
	s := newTestServer(t, b, dir)
	if _, code, err := s.Start(context.Background(), StartRequest{SinkNodeIP: "10.0.0.1", DstPort: 1, VFs: []string{"a"}}); code != http.StatusBadRequest || err == nil {
		t.Fatalf("IPv4 sink: %d %v", code, err)
	}
	st, _, err := s.Start(context.Background(), req)
	if err != nil || !st.Active || len(st.Ports) != 3 || st.Ports[2].Name != "pf0" || st.Ports[2].Tag != flowprog.PreferredTag("pf0") {
		t.Fatalf("start: %+v %v", st, err)
	}
	if _, code, err := s.Start(context.Background(), req); code != http.StatusConflict || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("second start: %d %v", code, err)
	}
	m, err := portmap.Load(filepath.Join(dir, portMapFile))
	if err != nil || len(m.Ports) != 3 || m.Ports[0].Source != netip.MustParseAddr("2001:db8::10") {
		t.Fatalf("published port map: %+v %v", m, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, captureFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved capture: %v %v", fi, err)
	}
	// A new daemon over the same state applies it again.
	b2 := &recorder{}
	s2 := newTestServer(t, b2, dir)
	if st := s2.Status(); !st.Active || len(b2.applied) != 3 {
		t.Fatalf("restore: %+v, applied %v", st, b2.applied)
	}
	res, err := s2.Stop()
	if err != nil || !res.Stopped || b2.clears != 1 {
		t.Fatalf("stop: %+v %v", res, err)
	}
	if res, _ := s2.Stop(); res.Stopped || res.Message != "capture is not active" {
		t.Fatalf("second stop: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, captureFile)); !os.IsNotExist(err) {
		t.Fatal("state left after stop")
	}
}

func TestFailuresLeaveNothingHalfDone(t *testing.T) {
	dir := t.TempDir()
	b := &recorder{failOn: "vm-2"}
	s := newTestServer(t, b, dir)
	if _, code, err := s.Start(context.Background(), req); code != http.StatusInternalServerError || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("start: %d %v", code, err)
	}
	if st := s.Status(); st.Active || len(b.applied) != 0 {
		t.Fatalf("after a failed start: %+v, applied %v", st, b.applied)
	}
	if _, err := os.Stat(filepath.Join(dir, captureFile)); !os.IsNotExist(err) {
		t.Fatal("a failed start saved state")
	}
	// A saved capture that cannot be applied again is reported, and stop
	// clears it.
	ok := newTestServer(t, &recorder{}, dir)
	if _, _, err := ok.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	broken := newTestServer(t, &recorder{failOn: "pf0"}, dir)
	st := broken.Status()
	if st.Active || !strings.Contains(st.Problem, "could not be applied again: port pf0 refused") {
		t.Fatalf("restore failure: %+v", st)
	}
	if res, err := broken.Stop(); err != nil || !res.Stopped {
		t.Fatalf("stop after a failed restore: %+v %v", res, err)
	}
	if st := broken.Status(); st.Problem != "" {
		t.Fatalf("problem survives stop: %q", st.Problem)
	}
}

// TestTagsStayWithTheirPorts reproduces issue 19's misfiled copies: tags
// followed the order of --vf, so after a replacement in another order a
// sink still holding the first map named vm-2's copies "vm-1". Now a port
// keeps its tag through replacements in any order and with other ports,
// a stop and a restart, and no tag ever names another port: no map
// published earlier names a copy wrongly.
func TestTagsStayWithTheirPorts(t *testing.T) {
	dir := t.TempDir()
	s := newTestServer(t, &recorder{}, dir)
	ctx := context.Background()
	start := func(s *Server, replace bool, vfs ...string) {
		t.Helper()
		if _, _, err := s.Start(ctx, StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 3010, VFs: vfs, Replace: replace}); err != nil {
			t.Fatal(err)
		}
	}
	var maps []portmap.Map // every map published, as sinks may still hold them
	owner := map[uint32]string{}
	check := func(s *Server, what string) {
		t.Helper()
		published, err := portmap.Load(filepath.Join(dir, portMapFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Status().Ports {
			if o, ok := owner[p.Tag]; ok && o != p.Name {
				t.Errorf("%s: tag %d names %s, and before %s", what, p.Tag, p.Name, o)
			}
			owner[p.Tag] = p.Name
			for i, m := range maps {
				if name, ok := m.Lookup(published.Ports[0].Source, p.Tag); ok && name != p.Name {
					t.Errorf("%s: map %d, still at a sink, names %s's copies %q", what, i+1, p.Name, name)
				}
			}
		}
		maps = append(maps, published)
	}
	start(s, false, "vm-1", "vm-2")
	check(s, "vm-1,vm-2")
	for _, vfs := range [][]string{{"vm-2", "vm-1"}, {"vm-3", "vm-1"}, {"vm-2"}, {"vm-3", "vm-2", "vm-1"}} {
		start(s, true, vfs...)
		check(s, strings.Join(vfs, ","))
	}
	if _, err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if kept, err := loadTags(dir); err != nil || len(kept) != 3 {
		t.Fatalf("the tags after a stop: %v %v", kept, err)
	}
	start(s, false, "vm-2", "vm-3")
	check(s, "vm-2,vm-3 after a stop")
	check(newTestServer(t, &recorder{}, dir), "after a restart")
	if len(owner) != 3 {
		t.Errorf("tags given: %v, want one for each of 3 ports", owner)
	}
}

// TestTagsOfAnEarlierVersion: a capture saved by a dpcap that numbered the
// ports in order is restored with kept tags, and its map published again,
// so that the map at the sink can name none of its copies wrongly.
func TestTagsOfAnEarlierVersion(t *testing.T) {
	dir := t.TempDir()
	old := portmap.Map{Version: 2, Ports: []portmap.Port{
		{Name: "vm-1", Source: netip.MustParseAddr("2001:db8::10"), Tag: 1, Kind: portmap.KindVF},
		{Name: "vm-2", Source: netip.MustParseAddr("2001:db8::10"), Tag: 2, Kind: portmap.KindVF}}}
	b, _ := json.Marshal(old)
	sv, _ := json.Marshal(saved{Request: StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 3010, VFs: []string{"vm-2", "vm-1"}}})
	for name, body := range map[string][]byte{portMapFile: b, captureFile: sv} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newTestServer(t, &recorder{}, dir)
	m, err := portmap.Load(filepath.Join(dir, portMapFile))
	if err != nil || !s.Status().Active {
		t.Fatalf("restore: %v %+v", err, s.Status())
	}
	kept, err := loadTags(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Ports {
		if p.Tag < flowprog.FirstTag || kept[p.Name] != p.Tag {
			t.Errorf("%s: tag %d published, %d kept", p.Name, p.Tag, kept[p.Name])
		}
	}
}

// TestBrokenTagTable: a tag table that does not read back stops the
// daemon at start, saying which file; tags are not given again silently.
func TestBrokenTagTable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tagsFile), []byte(`{"tags": {"vm-1": 20, "vm-2": 20}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewServer(context.Background(), &recorder{}, Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "tags.json: tag 20 is held by both vm-1 and vm-2") {
		t.Fatalf("NewServer: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f.json")
	for _, body := range []string{"one", "two"} {
		if err := writeAtomic(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(name); string(b) != body {
			t.Fatalf("content %q, want %q", b, body)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(name)); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// TestReplaceKeepsOrRestoresTheActiveCapture: a replacement that fails a
// check changes nothing; one that fails to apply puts the old capture back;
// when even that fails, the error and status say the capture was lost.
func TestReplaceKeepsOrRestoresTheActiveCapture(t *testing.T) {
	s, b, dir := activeServer(t)
	saved, _ := os.ReadFile(filepath.Join(dir, captureFile))
	stillActive := func(what string) {
		t.Helper()
		if st := s.Status(); !st.Active || len(st.Ports) != 3 || !slices.Equal(b.applied, []string{"vm-1", "vm-2", "pf0"}) {
			t.Fatalf("%s: status %+v, applied %v", what, st, b.applied)
		}
		if now, _ := os.ReadFile(filepath.Join(dir, captureFile)); string(now) != string(saved) {
			t.Fatalf("%s: saved state changed:\n%s", what, now)
		}
	}
	unknown := StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 3010, VFs: []string{"vm-7"}, Replace: true}
	_, code, err := s.Start(context.Background(), unknown)
	if code != http.StatusBadRequest || !errors.Is(err, ErrUnknownPort) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("replace with an unknown port: %d %v", code, err)
	}
	if b.clears != 0 {
		t.Fatalf("the active capture was stopped %d times for a request that could not apply", b.clears)
	}
	stillActive("after an unknown port")

	b.failOn = "vm-3"
	failing := StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 3010, VFs: []string{"vm-3"}, Replace: true}
	_, code, err = s.Start(context.Background(), failing)
	if code != http.StatusInternalServerError || !strings.Contains(err.Error(), "port vm-3 refused (the previous capture on vm-1, vm-2, pf0 was restored)") {
		t.Fatalf("replace failing to apply: %d %v", code, err)
	}
	stillActive("after a failed apply")

	b.failOn = "vm-1" // the old capture cannot come back either
	lost := StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 3010, VFs: []string{"vm-1"}, Replace: true}
	if _, _, err = s.Start(context.Background(), lost); err == nil || !strings.Contains(err.Error(), "was LOST") {
		t.Fatalf("replace losing the old capture: %v", err)
	}
	st := s.Status()
	if st.Active || !strings.Contains(st.Problem, "could not be applied again: port vm-1 refused") || len(b.applied) != 0 {
		t.Fatalf("after losing the capture: %+v, applied %v", st, b.applied)
	}
	if res, err := s.Stop(); err != nil || !res.Stopped {
		t.Fatalf("stop after a lost capture: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, captureFile)); !os.IsNotExist(err) {
		t.Fatal("state left after stop")
	}
}

// TestDryRunIsWhatTheServerApplies checks the one conversion from a request
// to a program: what dpcap start --dry-run prints (StartRequest.Program
// with the flags' envelope) is what the daemon applies, envelope included,
// and a bad request fails the same way in both.
func TestDryRunIsWhatTheServerApplies(t *testing.T) {
	env := Envelope{Underlay: netip.MustParseAddr("2001:db8::10"),
		RouterMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 2}, PFMAC: net.HardwareAddr{0x0c, 0x42, 0xa1, 0, 0, 1}}
	b := &recorder{}
	s, err := NewServer(context.Background(), b, Config{StateDir: t.TempDir(), Envelope: env, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r := req
	r.Filter = "proto=tcp,dport=443"
	if _, _, err := s.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	dry, err := r.Program(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, want := b.program.Testpmd(b.program.DefaultPortIDs()), dry.Testpmd(dry.DefaultPortIDs())
	if got != want || !strings.Contains(got, "ipv6 src is 2001:db8::10") || !strings.Contains(got, "src is 0c:42:a1:00:00:01") {
		t.Errorf("applied:\n%s\ndry run:\n%s", got, want)
	}
	for _, bad := range []struct {
		r   StartRequest
		err string
	}{
		{StartRequest{DstPort: 3010, VFs: []string{"vm-1"}}, "no sink"},
		{StartRequest{SinkNodeIP: "sink", DstPort: 3010, VFs: []string{"vm-1"}}, "invalid sink node IP"},
		{StartRequest{SinkNodeIP: "2001:db8::9", VFs: []string{"vm-1"}}, "no UDP port"},
		{StartRequest{SinkNodeIP: "2001:db8::9", DstPort: 3010, VFs: []string{"vm-1"}, Filter: "proto=sctp"}, "proto"},
	} {
		_, err := bad.r.Program(env, nil)
		_, code, serr := s.Start(context.Background(), bad.r)
		if err == nil || !strings.Contains(err.Error(), bad.err) || serr == nil || serr.Error() != err.Error() || code != http.StatusBadRequest {
			t.Errorf("%+v: dry run %v; daemon %d %v", bad.r, err, code, serr)
		}
	}
}

// TestFailedStopKeepsTheCapture: a stop the backend fails leaves the
// capture active, saved and published (its rules are there still), so
// that dpcap stop can try again and then stops it.
func TestFailedStopKeepsTheCapture(t *testing.T) {
	s, b, dir := activeServer(t)
	b.clearErr = errors.New("rule 3 of vm-2 could not be destroyed")
	if _, err := s.Stop(); err == nil || !strings.Contains(err.Error(), "rule 3 of vm-2 could not be destroyed") {
		t.Fatalf("failed stop: %v", err)
	}
	if st := s.Status(); !st.Active || len(b.applied) != 3 {
		t.Fatalf("after a failed stop: active %v, applied %v", st.Active, b.applied)
	}
	for _, f := range []string{captureFile, portMapFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("after a failed stop: %v", err)
		}
	}
	if res, err := s.Stop(); err != nil || !res.Stopped || b.clears != 2 || b.applied != nil {
		t.Fatalf("stop again: %+v %v, %d clears, applied %v", res, err, b.clears, b.applied)
	}
	if _, err := os.Stat(filepath.Join(dir, captureFile)); !os.IsNotExist(err) {
		t.Fatal("state left after the second stop")
	}
}

// TestStartNotUndoneCanBeStopped: a failed start a backend could not undo
// leaves ports captured though no capture is active: status says so, and
// dpcap stop stops them.
func TestStartNotUndoneCanBeStopped(t *testing.T) {
	b := &recorder{failOn: "vm-2", notUndone: true}
	s := newTestServer(t, b, t.TempDir())
	if _, _, err := s.Start(context.Background(), req); err == nil || strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("start: %v", err)
	}
	if st := s.Status(); st.Active || !strings.Contains(st.Problem, "dpcap stop stops them") {
		t.Fatalf("status: active %v, problem %q", st.Active, st.Problem)
	}
	if res, err := s.Stop(); err != nil || !res.Stopped || b.clears != 1 || b.applied != nil {
		t.Fatalf("stop: %+v %v, %d clears, applied %v", res, err, b.clears, b.applied)
	}
	if st := s.Status(); st.Problem != "" {
		t.Fatalf("after stop: problem %q", st.Problem)
	}
}
