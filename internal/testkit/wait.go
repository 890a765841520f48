package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds and fails the test, naming what it
// waited for, if it still does not after within. Tests wait for conditions,
// never for fixed sleeps, so that they hold on a loaded machine.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}
