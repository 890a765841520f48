package udpstat

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writeProc writes snmp and snmp6 files as the kernel lays them out.
func writeProc(t *testing.T, dir string, v4InErrors, v6InErrors, v6Csum uint64) {
	t.Helper()
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		fmt.Sprintf("Udp: 119 0 %d 120 7 0 3 0 0\n", v4InErrors) +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"UdpLite: 0 99 99 0 99 0 99 0 0\n"
	snmp6 := fmt.Sprintf("Ip6InReceives  \t10\nUdp6InDatagrams \t19219\nUdp6InErrors \t%d\nUdp6RcvbufErrors \t5\nUdp6InCsumErrors \t%d\nUdpLite6InErrors \t99\n",
		v6InErrors, v6Csum)
	for name, body := range map[string]string{"snmp": snmp, "snmp6": snmp6} {
		// Replaced whole, so that a reader never sees half a file.
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	writeProc(t, dir, 4, 6051, 2)
	c, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counters{4, 3, 7, 6051, 2, 5}); c != want {
		t.Errorf("counters %v, want %v (names %v)", c, want, Names)
	}
	if _, err := Read(t.TempDir()); err == nil || !strings.Contains(err.Error(), "snmp") {
		t.Errorf("no files: err %v", err)
	}
	if _, err := Read(DefaultProcNet); err != nil {
		t.Errorf("this machine's counters: %v", err)
	}
}

// TestWatchLogsOnceWhenNothingArrives raises the kernel's error counters
// while sinkd receives something (no log), then while it receives nothing
// (one log naming the fix), then again (still one).
func TestWatchLogsOnceWhenNothingArrives(t *testing.T) {
	dir := t.TempDir()
	writeProc(t, dir, 0, 100, 0)
	var received atomic.Uint64
	// A file, which the watcher's goroutine and the test may share.
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	logged := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, dir, 20*time.Millisecond, received.Load, slog.New(slog.NewTextHandler(logs, nil)))
		close(done)
	}()
	step := func() { time.Sleep(60 * time.Millisecond) }
	step()             // the watcher has taken its first reading
	for i := range 5 { // errors rise, but so does what sinkd receives
		received.Add(10)
		writeProc(t, dir, 0, uint64(200+100*i), 0)
		step()
	}
	if logged() != "" {
		t.Fatalf("logged while receiving:\n%s", logged())
	}
	for i := 0; ; i++ { // errors rise faster than the watcher looks
		writeProc(t, dir, 0, uint64(1000*(i+1)), uint64(i))
		select {
		case <-done: // it stops watching once it has said it
		case <-time.After(5 * time.Millisecond):
			if i < 400 {
				continue
			}
			t.Fatal("no warning after 2 s of errors")
		}
		break
	}
	cancel()
	out := logged()
	if strings.Count(out, "sinkd -i IFACE") != 1 || !strings.Contains(out, "Udp6InErrors=") {
		t.Errorf("want one warning naming the counter and the fix:\n%s", out)
	}
}
