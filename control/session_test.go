package control

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/portmap"
)

// logBuffer is a log the daemon's timer writes while a test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// stopLines returns the "capture stopped" lines, without their time and id.
func (l *logBuffer) stopLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, `msg="capture stopped"`) {
			out = append(out, regexp.MustCompile(`time=\S+ | id=\S+`).ReplaceAllString(line, ""))
		}
	}
	return out
}

func sessionServer(t *testing.T, b Backend, dir string, ceiling time.Duration, log io.Writer) *Server {
	t.Helper()
	s, err := NewServer(context.Background(), b, Config{StateDir: dir, Envelope: Envelope{Underlay: netip.MustParseAddr("2001:db8::10")},
		MaxDuration: ceiling, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func bounded(d string) StartRequest {
	r := req
	r.For = d
	return r
}

// TestDeadlineStopsTheCapture: with no client left, the daemon's timer
// stops the capture at its deadline as dpcap stop does: the backend
// cleared, the state and the port map removed, the same log line but for
// who stopped it.
func TestDeadlineStopsTheCapture(t *testing.T) {
	dir := t.TempDir()
	b := &recorder{}
	var log logBuffer
	s := sessionServer(t, b, dir, time.Hour, &log)
	st, _, err := s.Start(context.Background(), bounded("300ms"))
	if err != nil || st.ID == "" || st.Deadline.IsZero() || st.TimeLeft == "" {
		t.Fatalf("start: %+v %v", st, err)
	}
	if left := time.Until(st.Deadline); left <= 0 || left > 300*time.Millisecond {
		t.Fatalf("deadline %v is %v away, want within 300ms", st.Deadline, left)
	}
	testkit.Eventually(t, 10*time.Second, "the deadline to stop the capture", func() bool { return !s.Status().Active })
	if time.Now().Before(st.Deadline) {
		t.Fatalf("stopped before the deadline %v", st.Deadline)
	}
	if b.clears != 1 || b.applied != nil {
		t.Fatalf("after the deadline: %d clears, applied %v", b.clears, b.applied)
	}
	for _, f := range []string{captureFile, portMapFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Fatalf("%s left after the deadline: %v", f, err)
		}
	}
	if res, _ := s.Stop(); res.Stopped {
		t.Fatalf("stop after the deadline stopped something: %+v", res)
	}
	// dpcap stop writes the same line, by whom aside.
	if _, _, err := s.Start(context.Background(), bounded("1h")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	lines := log.stopLines()
	if len(lines) != 2 {
		t.Fatalf("stop lines: %q", lines)
	}
	want := `level=INFO msg="capture stopped" by=deadline ports=vm-1,vm-2,pf0`
	if lines[0] != want || lines[1] != strings.Replace(want, "by=deadline", `by="dpcap stop"`, 1) {
		t.Fatalf("stop lines:\n%s\nwant:\n%s\nand the same by dpcap stop", strings.Join(lines, "\n"), want)
	}
}

// TestDeadlinePassedWhileDown: a daemon started after its capture's
// deadline stops it before anything else: the backend is cleared (a
// dataplane's capture outlives the daemon), never applied again.
func TestDeadlinePassedWhileDown(t *testing.T) {
	dir := t.TempDir()
	first := sessionServer(t, &recorder{}, dir, time.Hour, io.Discard)
	st, _, err := first.Start(context.Background(), bounded("100ms"))
	if err != nil {
		t.Fatal(err)
	}
	first.Shutdown() // killed: the state stays
	testkit.Eventually(t, 10*time.Second, "the deadline to pass", func() bool { return time.Now().After(st.Deadline) })
	b := &recorder{}
	var log logBuffer
	s := sessionServer(t, b, dir, time.Hour, &log)
	if got := s.Status(); got.Active || got.Problem != "" {
		t.Fatalf("status at start-up after the deadline: %+v", got)
	}
	if b.clears != 1 || b.program != nil {
		t.Fatalf("at start-up: %d clears, applied %v: want cleared, never applied", b.clears, b.program)
	}
	if _, err := os.Stat(filepath.Join(dir, captureFile)); !os.IsNotExist(err) {
		t.Fatalf("saved capture left: %v", err)
	}
	if lines := log.stopLines(); len(lines) != 1 || !strings.Contains(lines[0], "by=deadline") {
		t.Fatalf("stop lines: %q", lines)
	}
	// Before the deadline, a restart applies it again with its id and deadline.
	st, _, err = s.Start(context.Background(), bounded("1h"))
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	again := sessionServer(t, &recorder{}, dir, time.Hour, io.Discard)
	if got := again.Status(); !got.Active || got.ID != st.ID || !got.Deadline.Equal(st.Deadline) {
		t.Fatalf("restored: %+v, want id %s deadline %v", got, st.ID, st.Deadline)
	}
}

// TestCeilingRefusesAndChangesNothing: a start asking for more than
// --max-duration, or for no bound, is refused in one line naming the
// ceiling; the active capture, its state and its port map stay as they
// were. A start asking for nothing is bounded by the ceiling.
func TestCeilingRefusesAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	b := &recorder{}
	s := sessionServer(t, b, dir, time.Minute, io.Discard)
	before := time.Now()
	st, _, err := s.Start(context.Background(), req)
	if err != nil || st.Deadline.Before(before.Add(time.Minute)) || st.Deadline.After(time.Now().Add(time.Minute)) || st.MaxDuration != "1m0s" {
		t.Fatalf("start without a bound: deadline %v, ceiling %q, %v", st.Deadline, st.MaxDuration, err)
	}
	files := func() string {
		var all []byte
		for _, f := range []string{captureFile, portMapFile, tagsFile} {
			c, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, c...)
		}
		return string(all)
	}
	saved := files()
	other := StartRequest{SinkNodeIP: "2001:db8:f::2", DstPort: 3011, VFs: []string{"vm-3"}, Replace: true}
	for _, tt := range []struct {
		name string
		r    func(StartRequest) StartRequest
		want string
	}{
		{"longer --for", func(r StartRequest) StartRequest { r.For = "2m"; return r }, "a capture of 2m0s refused: dpcap serve's --max-duration is 1m0s; nothing was changed"},
		{"no bound", func(r StartRequest) StartRequest { r.For = "0s"; return r }, "--for 0 (no bound) refused: dpcap serve's --max-duration is 1m0s; nothing was changed"},
		{"later --until", func(r StartRequest) StartRequest { r.Until = time.Now().Add(time.Hour); return r }, "dpcap serve's --max-duration is 1m0s"},
	} {
		_, code, err := s.Start(context.Background(), tt.r(other))
		if code != http.StatusUnprocessableEntity || err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %d %v, want 422 %q", tt.name, code, err, tt.want)
		}
	}
	if got := s.Status(); !got.Active || got.ID != st.ID || b.clears != 0 || strings.Join(b.applied, ",") != "vm-1,vm-2,pf0" {
		t.Fatalf("after the refusals: %+v, %d clears, applied %v", got, b.clears, b.applied)
	}
	if files() != saved {
		t.Fatal("a refused start changed the state directory")
	}
	m, err := portmap.Load(filepath.Join(dir, portMapFile))
	if err != nil || len(m.Ports) != 3 {
		t.Fatalf("port map after the refusals: %+v %v", m, err)
	}
	// A ceiling lowered since bounds a restored capture from the restart on.
	s.Shutdown()
	s = sessionServer(t, &recorder{}, dir, time.Second, io.Discard)
	if got := s.Status(); !got.Active || !got.Deadline.Before(st.Deadline) {
		t.Fatalf("restored under a lower ceiling: %+v", got)
	}
	testkit.Eventually(t, 10*time.Second, "the lowered ceiling to stop the capture", func() bool { return !s.Status().Active })
}

// TestNoCeiling: with --max-duration 0, a start asking for no bound runs
// until stopped; one asking for nothing too.
func TestNoCeiling(t *testing.T) {
	s := sessionServer(t, &recorder{}, t.TempDir(), 0, io.Discard)
	for _, r := range []StartRequest{bounded("0s"), req} {
		r.Replace = true
		st, _, err := s.Start(context.Background(), r)
		if err != nil || !st.Deadline.IsZero() || st.TimeLeft != "" || st.MaxDuration != "" {
			t.Fatalf("start %+v: %+v %v", r, st, err)
		}
	}
	if _, code, err := s.Start(context.Background(), StartRequest{SinkNodeIP: "2001:db8:f::1", DstPort: 1, VFs: []string{"vm-1"}, For: "1s", Until: time.Now().Add(time.Hour), Replace: true}); code != http.StatusBadRequest || err == nil {
		t.Fatalf("--for and --until: %d %v", code, err)
	}
}

// TestCaptureIDInThePortMap: every start gets an id of its own, later ids
// sorting after earlier ones; the port map published names it on every
// port, and a restart keeps it.
func TestCaptureIDInThePortMap(t *testing.T) {
	dir := t.TempDir()
	s := sessionServer(t, &recorder{}, dir, time.Hour, io.Discard)
	var ids []string
	for range 3 {
		r := req
		r.Replace = true
		st, _, err := s.Start(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := IDTime(st.ID); !ok || len(ids) > 0 && st.ID <= ids[len(ids)-1] {
			t.Fatalf("id %q after %q", st.ID, ids)
		}
		for _, id := range ids {
			if id == st.ID {
				t.Fatalf("id %s given twice", id)
			}
		}
		ids = append(ids, st.ID)
		m, err := portmap.Load(filepath.Join(dir, portMapFile))
		if err != nil || len(m.Ports) != 3 {
			t.Fatalf("port map: %+v %v", m, err)
		}
		for _, p := range append(m.Ports, st.PortMap.Ports...) {
			if p.Capture != st.ID {
				t.Fatalf("port %s names capture %q, want %s", p.Name, p.Capture, st.ID)
			}
		}
	}
	s.Shutdown()
	again := sessionServer(t, &recorder{}, dir, time.Hour, io.Discard)
	m, err := portmap.Load(filepath.Join(dir, portMapFile))
	if err != nil || again.Status().ID != ids[2] || m.Ports[0].Capture != ids[2] {
		t.Fatalf("after a restart: status id %q, map %+v %v, want %s", again.Status().ID, m, err, ids[2])
	}
}
