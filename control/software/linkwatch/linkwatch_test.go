//go:build linux

package linkwatch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFollowsARecreatedInterface watches a namespace of its own while an
// interface is made, deleted and made again: each step is seen, and the
// new interface has a new index.
func TestFollowsARecreatedInterface(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: a network namespace of its own needs root")
	}
	var (
		w      *Watcher
		nsPath string
		ready  = make(chan error)
		done   = make(chan struct{})
	)
	defer close(done)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- err
			return
		}
		nsPath = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		var err error
		w, err = Open()
		ready <- err
		<-done
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	events := make(chan Event, 64)
	go func() {
		for {
			evs, err := w.Next()
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("next: %v", err)
				return
			}
			for _, e := range evs {
				events <- e
			}
		}
	}()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("nsenter", append([]string{"--net=" + nsPath, "ip"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	await := func(deleted bool) Event {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Name == "tap-test" && e.Deleted == deleted {
					return e
				}
			case <-timeout:
				t.Fatalf("no event for tap-test (deleted %v)", deleted)
			}
		}
	}
	ip("link", "add", "tap-test", "type", "veth", "peer", "name", "tap-peer")
	first := await(false)
	ip("link", "del", "tap-test")
	if e := await(true); e.Index != first.Index {
		t.Errorf("deleted index %d, want %d", e.Index, first.Index)
	}
	ip("link", "add", "tap-test", "type", "veth", "peer", "name", "tap-peer")
	if e := await(false); e.Index == first.Index || e.Index == 0 {
		t.Errorf("recreated with index %d (first %d)", e.Index, first.Index)
	}
}
