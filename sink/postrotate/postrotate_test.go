package postrotate

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/pcapout"
)

// hook writes a script that marks its file as running in dir, waits
// while gate exists, and marks it done.
func hook(t *testing.T, dir, gate string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.sh")
	script := "#!/bin/sh\nb=$(basename \"$1\")\ntouch " + dir + "/run.$b\nwhile [ -e " + gate + " ]; do sleep 0.02; done\ntouch " + dir + "/done.$b\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func count(t *testing.T, dir, prefix string) int {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			n++
		}
	}
	return n
}

// TestBoundedJobsAndQueue closes more files than the bound and the queue
// hold: at most Jobs commands run at once, the queue runs as they finish,
// and the files past the queue are skipped and counted.
func TestBoundedJobsAndQueue(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	os.WriteFile(gate, nil, 0o600)
	r := New(Config{Command: hook(t, dir, gate), Jobs: 2, Queue: 3, Logger: slog.New(slog.DiscardHandler)})
	start := time.Now()
	for i := range 7 {
		r.Handle(pcapout.ClosedFile{Name: "f" + strconv.Itoa(i)})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Handle blocked for %v", d)
	}
	testkit.Eventually(t, 10*time.Second, "two commands", func() bool { return count(t, dir, "run.") == 2 })
	time.Sleep(200 * time.Millisecond)
	if n := count(t, dir, "run."); n != 2 {
		t.Fatalf("%d commands run at once, want 2", n)
	}
	if s := r.Stats(); s.Running != 2 || s.Queued != 3 || s.Skipped != 2 {
		t.Fatalf("stats %+v, want 2 running, 3 queued, 2 skipped", s)
	}
	os.Remove(gate)
	if running, notRun := r.Stop(10 * time.Second); running != 0 || notRun != 0 {
		t.Fatalf("Stop left %d running, %d not run", running, notRun)
	}
	if n := count(t, dir, "done."); n != 5 {
		t.Errorf("%d commands finished, want 5", n)
	}
	if s := r.Stats(); s.Started != 5 || s.Failed != 0 || s.Skipped != 2 {
		t.Errorf("stats %+v", s)
	}
}

// TestStopWaitsBoundedThenLeaves checks a command that never ends does
// not hold Stop past its wait; it is left running, and the queued file
// is reported as not run.
func TestStopWaitsBoundedThenLeaves(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "gate")
	os.WriteFile(gate, nil, 0o600)
	r := New(Config{Command: hook(t, dir, gate), Jobs: 1, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { os.Remove(gate) }) // lets the command left running end
	r.Handle(pcapout.ClosedFile{Name: "slow"})
	r.Handle(pcapout.ClosedFile{Name: "queued"})
	testkit.Eventually(t, 10*time.Second, "the command", func() bool { return count(t, dir, "run.") == 1 })
	start := time.Now()
	running, notRun := r.Stop(300 * time.Millisecond)
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("Stop took %v, want about 300ms", d)
	}
	if running != 1 || notRun != 1 {
		t.Fatalf("Stop: %d left running, %d not run; want 1 and 1", running, notRun)
	}
	time.Sleep(100 * time.Millisecond)
	if count(t, dir, "run.queued") != 0 {
		t.Error("a queued command started after Stop")
	}
	r.Handle(pcapout.ClosedFile{Name: "late"})
	if s := r.Stats(); s.Skipped != 2 {
		t.Errorf("skipped %d, want 2 (the queued file and one closed after Stop)", s.Skipped)
	}
}

// TestFailuresCounted checks a command that fails or cannot start is
// counted.
func TestFailuresCounted(t *testing.T) {
	r := New(Config{Command: "/bin/false", Logger: slog.New(slog.DiscardHandler)})
	r.Handle(pcapout.ClosedFile{Name: "a"})
	r.Stop(5 * time.Second)
	missing := New(Config{Command: "/no/such/command", Logger: slog.New(slog.DiscardHandler)})
	missing.Handle(pcapout.ClosedFile{Name: "b"})
	missing.Stop(time.Second)
	if s, m := r.Stats(), missing.Stats(); s.Failed != 1 || s.Started != 1 || m.Failed != 1 || m.Started != 0 {
		t.Errorf("stats %+v and %+v", s, m)
	}
}
