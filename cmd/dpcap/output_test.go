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
