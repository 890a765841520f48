//go:build !minimal

package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a terminal written from two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestShowLineClearsBeforeTheSummary: once stop returns, the counter's
// line is cleared and nothing more comes from it: the summary written
// next stays on the terminal.
func TestShowLineClearsBeforeTheSummary(t *testing.T) {
	for i := range 5 {
		var w lockedBuffer
		stop := showLine(&w, func() string { return "Got 1" })
		for !strings.Contains(w.String(), "Got 1") {
			time.Sleep(time.Millisecond)
		}
		stop()
		fmt.Fprint(&w, "3 frames received")
		time.Sleep(5 * time.Millisecond) // what a late clear would need
		if got := w.String(); !strings.HasSuffix(got, "\r\x1b[K3 frames received") {
			t.Fatalf("round %d: the terminal got %q", i, got)
		}
	}
}
