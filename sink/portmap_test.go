package sink

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/portmap"
)

// logLines is a slog.Handler that sends each record, as "message
// key=value …", to a channel: the log of a goroutine under test.
type logLines chan string

func (l logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l logLines) WithGroup(string) slog.Handler            { return l }
func (l logLines) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	l <- line
	return nil
}

// drain returns the lines logged so far.
func (l logLines) drain() []string {
	var lines []string
	for {
		select {
		case line := <-l:
			lines = append(lines, line)
		default:
			return lines
		}
	}
}

// TestFollowPortMap: a map copied over the file is taken within an
// interval; one that is refused, or a missing file, leaves the map in use,
// reported once.
func TestFollowPortMap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portmap.json")
	// put replaces the file as rsync and mv do, or writes into it as cp does.
	put := func(body string, inPlace bool) {
		t.Helper()
		name := path
		if !inPlace {
			name = filepath.Join(dir, "new.json")
		}
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if !inPlace {
			if err := os.Rename(name, path); err != nil {
				t.Fatal(err)
			}
		}
	}
	mapOf := func(name string) string {
		return `{"version": 2, "ports": [{"name": "` + name + `", "source": "2001:db8::10", "tag": 100}]}`
	}
	put(mapOf("vm-1"), true)
	f := &portmap.File{Path: path}
	if _, _, _, err := f.Reload(true); err != nil { // as sinkd reads it at start
		t.Fatal(err)
	}
	applied, logs := make(chan *portmap.Identifier, 10), make(logLines, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		FollowPortMap(ctx, f, 10*time.Millisecond, nil, func(x *portmap.Identifier) { applied <- x }, slog.New(logs))
	}()
	defer func() { cancel(); <-done }()
	// name is what tag 100 names under the next map applied.
	name := func() string {
		t.Helper()
		select {
		case x := <-applied:
			m, _ := x.Identify(netip.MustParseAddr("2001:db8::10"), 100, &decap.Frame{})
			return portmap.JoinNames(x.Names(m))
		case <-time.After(5 * time.Second):
			return "(no map applied)"
		}
	}
	put(mapOf("vm-two"), false)
	if got := name(); got != "vm-two" {
		t.Fatalf("after a map replaced the file, tag 100 names %q", got)
	}
	put(mapOf("vm-three"), true)
	if got := name(); got != "vm-three" {
		t.Fatalf("after a map was written into the file, tag 100 names %q", got)
	}
	logs.drain()
	put(`{"version": 2, "ports": [{"name": "vm-1", "tag": 2000000}]}`, true)
	time.Sleep(100 * time.Millisecond) // ten looks
	if lines := logs.drain(); len(applied) != 0 || len(lines) != 1 || !strings.Contains(lines[0], "port map not read again") ||
		!strings.Contains(lines[0], "tag 2000000 is not in 1-1048575") {
		t.Fatalf("a refused map: %d applied; log %q", len(applied), lines)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if lines := logs.drain(); len(applied) != 0 || len(lines) != 1 || !strings.Contains(lines[0], "no such file") {
		t.Fatalf("a missing map: %d applied; log %q", len(applied), lines)
	}
	put(mapOf("vm-four"), true)
	if got := name(); got != "vm-four" {
		t.Fatalf("after the map came back, tag 100 names %q", got)
	}
}

// TestFollowPortMapHalfWritten: a map seen half-written in place (cp
// truncates, then writes) is not reported as refused when the rest follows
// before the next look; the whole map is taken. One that stays half-written
// for a look is reported, once.
func TestFollowPortMapHalfWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portmap.json")
	full := `{"version": 2, "ports": [{"name": "vm-1", "source": "2001:db8::10", "tag": 100}]}`
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &portmap.File{Path: path}
	if _, _, _, err := f.Reload(true); err != nil {
		t.Fatal(err)
	}
	var applied []*portmap.Identifier
	logs := make(logLines, 100)
	w := mapFollower{f: f, apply: func(x *portmap.Identifier) { applied = append(applied, x) }, logger: slog.New(logs)}
	refusals := func() int {
		lines := logs.drain()
		return len(slices.DeleteFunc(lines, func(l string) bool { return !strings.Contains(l, "not read again") }))
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil { // in place, as cp
			t.Fatal(err)
		}
	}

	write(full[:30])
	w.look(false) // reads it half-written
	write(strings.Replace(full, "vm-1", "vm-2", 1))
	w.look(false)
	if n := refusals(); n != 0 || len(applied) != 1 {
		t.Fatalf("a map read half-written, then whole: %d refusals logged, %d maps applied; want 0, 1", n, len(applied))
	}
	m, _ := applied[0].Identify(netip.MustParseAddr("2001:db8::10"), 100, &decap.Frame{})
	if got := portmap.JoinNames(applied[0].Names(m)); got != "vm-2" {
		t.Errorf("tag 100 names %q, want vm-2", got)
	}

	write(full[:30])
	w.look(false)
	w.look(false) // it stayed so
	w.look(false)
	if n := refusals(); n != 1 || len(applied) != 1 {
		t.Errorf("a map that stays half-written: %d refusals logged, %d maps applied; want 1, 1", n, len(applied))
	}
	w.look(true) // a reread asked for says why at once
	if n := refusals(); n != 1 {
		t.Errorf("a reread of a refused map: %d refusals logged, want 1", n)
	}
}

// TestFollowPortMapReread: a reread request (SIGHUP) reads the file at
// once, changed or not.
func TestFollowPortMapReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portmap.json")
	if err := os.WriteFile(path, []byte(`{"version": 2, "ports": [{"name": "vm-1", "tag": 100}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &portmap.File{Path: path}
	if _, _, _, err := f.Reload(true); err != nil {
		t.Fatal(err)
	}
	applied, logs := make(chan *portmap.Identifier, 1), make(logLines, 10)
	reread := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go FollowPortMap(ctx, f, time.Hour, reread, func(x *portmap.Identifier) { applied <- x }, slog.New(logs))
	reread <- struct{}{}
	select {
	case <-applied:
	case <-time.After(5 * time.Second):
		t.Fatal("a reread request applied no map")
	}
	select {
	case line := <-logs:
		if !strings.HasPrefix(line, "port map read again") {
			t.Errorf("logged %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Error("the map read again was not logged")
	}
}
