package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/portmap"
)

// TestStatusTableEscapes: every string of a status, as dp-service or a
// flag may give it, is printed escaped: the table holds no control
// character but its newlines.
func TestStatusTableEscapes(t *testing.T) {
	const evil = "vm-\x1b]0;owned\a\x1b[2J\x9b\u202e"
	const shown = `vm-\x1b]0;owned\a\x1b[2J\x9b\u202e`
	d := &control.DataplaneStatus{Name: "dp-service", Address: "h:1337", State: "ready" + evil, UUID: evil,
		Captured: []string{evil}, Stuck: []string{evil}, Event: "event " + evil, Problem: "problem " + evil,
		Interfaces: []control.DataplaneInterface{{ID: evil, PCI: evil}}}
	for _, st := range []control.Status{
		{Backend: "dpservice", Problem: evil, Dataplane: d},
		{Backend: "dpservice", Dataplane: &control.DataplaneStatus{Name: "dp-service", Captured: []string{evil}}},
		{Active: true, Backend: "dpservice", Started: time.Now(), Dataplane: d, PortMapFile: evil,
			Request: control.StartRequest{SinkNodeIP: evil, VFs: []string{evil}, Filter: evil},
			PortMap: portmap.Map{Ports: []portmap.Port{{Name: evil, Kind: portmap.KindVF}}}},
		{Active: true, Backend: "software", Started: time.Now(), RouterMAC: evil, PFMAC: evil,
			Ports: []control.PortStatus{{Name: evil, Problem: evil, Mirror: evil, Reattached: 1}}},
	} {
		var b bytes.Buffer
		if err := printStatus(&b, st, "table"); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for i, r := range out {
			if r != '\n' && (r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u202e' || out[i] == 0x9b) {
				t.Fatalf("status printed %q raw:\n%s", r, out)
			}
		}
		if !strings.Contains(out, shown) {
			t.Fatalf("status does not show the name escaped (%s):\n%s", shown, out)
		}
	}
}

// TestErrorsEscaped: an error quoting a name dp-service gave is printed
// escaped, on one line.
func TestErrorsEscaped(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// No daemon answers there: the error quotes the socket's name.
	code := run([]string{"status", "--socket", "/nonexistent/\x1b[2J\n"}, &stdout, &stderr)
	if code != 1 || strings.ContainsAny(stderr.String(), "\x1b") || strings.Count(stderr.String(), "\n") != 1 ||
		!strings.Contains(stderr.String(), `\x1b[2J\n`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestStatusShowsTheDeadline: the table says when the capture stops and
// why then (the ceiling, when no bound was asked for), or that it never
// does; -o yaml and json show the same fields.
func TestStatusShowsTheDeadline(t *testing.T) {
	deadline := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	base := control.Status{Active: true, Backend: "software", ID: "20261207-213045.123-3fa9c2", Started: deadline.Add(-time.Hour)}
	for _, tt := range []struct {
		name string
		st   func(control.Status) control.Status
		want string
	}{
		{"--for", func(s control.Status) control.Status {
			s.Request.For, s.Deadline, s.TimeLeft, s.MaxDuration = "2m", deadline, "1m58s", "1h0m0s"
			return s
		}, "stops:   " + deadline.Local().Format(time.RFC3339) + " (in 1m58s)\n"},
		{"ceiling", func(s control.Status) control.Status {
			s.Deadline, s.TimeLeft, s.MaxDuration = deadline, "59m59s", "1h0m0s"
			return s
		}, "(in 59m59s), dpcap serve's --max-duration 1h0m0s: no --for or --until was given\n"},
		{"never", func(s control.Status) control.Status { return s }, "stops:   never: no bound was asked for, and dpcap serve has no --max-duration\n"},
	} {
		st := tt.st(base)
		var b bytes.Buffer
		if err := printStatus(&b, st, "table"); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, "id:      20261207-213045.123-3fa9c2\n") || !strings.Contains(out, tt.want) {
			t.Errorf("%s: the table lacks the id or %q:\n%s", tt.name, tt.want, out)
		}
		for _, format := range []string{"json", "yaml"} {
			b.Reset()
			if err := printStatus(&b, st, format); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if !strings.Contains(out, "20261207-213045.123-3fa9c2") || st.TimeLeft != "" && (!strings.Contains(out, st.TimeLeft) || !strings.Contains(out, "2026-12-07T22:00:00Z")) {
				t.Errorf("%s: -o %s lacks the id, deadline or time left:\n%s", tt.name, format, out)
			}
		}
	}
}
