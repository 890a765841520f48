//go:build !minimal

package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestShowLineClearsBeforeTheSummary: once stop returns, the counter's
// line is cleared and nothing more comes from it: the summary written
// next stays on the terminal. (The terminal needs no lock: after stop,
// only this goroutine writes.)
func TestShowLineClearsBeforeTheSummary(t *testing.T) {
	for i := range 3 {
		var w bytes.Buffer
		drawn := make(chan struct{}, 1)
		stop := showLine(&w, func() string {
			select {
			case drawn <- struct{}{}:
			default:
			}
			return "Got 1"
		})
		<-drawn
		stop()
		fmt.Fprint(&w, "3 frames received")
		time.Sleep(5 * time.Millisecond) // what a late clear would need
		if got := w.String(); !strings.HasSuffix(got, "\r\x1b[K3 frames received") {
			t.Fatalf("round %d: the terminal got %q", i, got)
		}
	}
}
