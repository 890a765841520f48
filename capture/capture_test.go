package capture

import (
	"testing"
	"time"
)

func TestDeadline(t *testing.T) {
	var d Deadline
	if d.Passed() {
		t.Fatal("a zero deadline has passed")
	}
	d.Set(time.Now().Add(time.Hour))
	if d.Passed() {
		t.Fatal("a deadline an hour away has passed")
	}
	d.Set(time.Unix(1, 0))
	if !d.Passed() {
		t.Fatal("a deadline in 1970 has not passed")
	}
	d.Set(time.Time{})
	if d.Passed() {
		t.Fatal("a cleared deadline has passed")
	}
}
