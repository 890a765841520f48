package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/decap/reassembly"
	"github.com/dpcap/dpcap/sink"
)

// printSummary prints tcpdump's style of end-of-capture counts, with the
// reasons packets were not written.
func printSummary(w io.Writer, s sink.Stats, live bool) {
	fmt.Fprintf(w, "%d packets captured\n", s.Written)
	fmt.Fprintf(w, "%d packets received\n", s.Received)
	if live {
		if s.KernelDropsErr == nil {
			fmt.Fprintf(w, "%d packets dropped by kernel\n", s.KernelDrops)
		} else {
			fmt.Fprintf(w, "packets dropped by kernel: unknown (%v)\n", s.KernelDropsErr)
		}
	}
	fmt.Fprintf(w, "%d packets malformed%s\n", s.MalformedTotal(), reasons(s, true))
	if n := s.SkippedTotal(); n > 0 {
		fmt.Fprintf(w, "%d packets skipped, not envelopes%s\n", n, reasons(s, false))
	}
	if s.WriteDropped > 0 || s.WriteErrors > 0 {
		fmt.Fprintf(w, "%d packets dropped on write errors (%d failed writes)\n", s.WriteDropped, s.WriteErrors)
	}
	if s.Stopped > 0 {
		fmt.Fprintf(w, "%d packets dropped, still queued when the capture stopped\n", s.Stopped)
	}
	if s.Filtered > 0 {
		fmt.Fprintf(w, "%d packets filtered out\n", s.Filtered)
	}
	if s.Denied > 0 {
		fmt.Fprintf(w, "%d packets from sources --allow does not name\n", s.Denied)
	}
	if s.Truncated > 0 {
		fmt.Fprintf(w, "%d packets truncated to the snap length\n", s.Truncated)
	}
	if s.Overflowed > 0 {
		fmt.Fprintf(w, "%d packets from sources past --max-sources, in the interface \"overflow\"\n", s.Overflowed)
	}
	if f := s.Fragments; f.Completing > 0 {
		fmt.Fprintf(w, "%d fragments reassembled into %d packets\n", f.Absorbed+f.Completing, f.Completing)
	}
	if n := s.Fragments.EvictedTotal(); n > 0 {
		fmt.Fprintf(w, "%d fragments dropped%s\n", n, evictions(s.Fragments))
	}
	if s.UnknownTags > 0 {
		fmt.Fprintf(w, "%d packets with a tag the port map does not list, named after their sender\n", s.UnknownTags)
	}
}

// reasons lists the nonzero malformed (or skipped) counts: " (fragment 7)".
func reasons(s sink.Stats, malformed bool) string {
	var parts []string
	for r := decap.OK + 1; r < decap.NumReasons; r++ {
		if r.Malformed() == malformed && s.Rejected[r] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r, s.Rejected[r]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// evictions lists the nonzero counts of dropped fragments: " (timeout 2)".
func evictions(f reassembly.Stats) string {
	var parts []string
	for e := range reassembly.NumEvictions {
		if f.Evicted[e] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", e, f.Evicted[e]))
		}
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
