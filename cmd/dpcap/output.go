package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/internal/termtext"
	"github.com/dpcap/dpcap/portmap"
)

func checkFormat(f string) error {
	switch f {
	case "table", "json", "yaml":
		return nil
	}
	return usageErr{fmt.Errorf("invalid output format %q: want table, json or yaml", f)}
}

func printStatus(w io.Writer, st control.Status, format string) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		return writeYAML(w, st)
	}
	d := st.Dataplane
	if !st.Active {
		switch {
		case d != nil && d.Differs != "" && st.Request.SinkNodeIP != "":
			fmt.Fprintf(w, "capture: NOT AS ASKED (%s backend): %s\n", esc(st.Backend), esc(d.Differs))
			fmt.Fprintf(w, "asked:   since %s; port map for sinkd --port-map: %s\n", st.Started.Local().Format(time.RFC3339), esc(st.PortMapFile))
		case d != nil && len(d.Stuck) > 0:
			fmt.Fprintf(w, "capture: NOT STOPPED: %s still captures %s (%s backend)\n", esc(d.Name), list(d.Stuck), esc(st.Backend))
		case d != nil && len(d.Captured) > 0:
			fmt.Fprintf(w, "capture: NOT ACTIVE here, but %s captures %s (%s backend)\n", esc(d.Name), list(d.Captured), esc(st.Backend))
		default:
			fmt.Fprintf(w, "capture: NOT ACTIVE (%s backend)\n", esc(st.Backend))
		}
		if st.Problem != "" {
			fmt.Fprintf(w, "problem: %s (dpcap stop clears it)\n", esc(st.Problem))
		}
		printEnvelope(w, st)
		return printDataplane(w, d)
	}
	r := st.Request
	if st.StopRefused.IsZero() {
		fmt.Fprintf(w, "capture: ACTIVE (%s backend) since %s\n", esc(st.Backend), st.Started.Local().Format(time.RFC3339))
	} else {
		ports := r.VFs
		if d != nil {
			ports = d.Captured
		}
		fmt.Fprintf(w, "capture: NOT STOPPED: %s still captures %s (%s backend); its stop was refused at %s\n",
			esc(cmp.Or(dataplaneName(d), st.Backend)), listOrNone(ports), esc(st.Backend), st.StopRefused.Local().Format(time.RFC3339))
	}
	if st.Problem != "" {
		fmt.Fprintf(w, "problem: %s\n", esc(st.Problem))
	}
	if st.ID != "" {
		fmt.Fprintf(w, "id:      %s\n", esc(st.ID))
	}
	fmt.Fprintf(w, "stops:   %s\n", stops(st))
	fmt.Fprintf(w, "sink:    [%s]:%d, UDP source port %d\n", esc(r.SinkNodeIP), r.DstPort, r.SrcPort)
	if r.Filter != "" {
		fmt.Fprintf(w, "filter:  %s\n", esc(r.Filter))
	}
	printEnvelope(w, st)
	fmt.Fprintf(w, "port map for sinkd --port-map: %s\n", esc(st.PortMapFile))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if d != nil {
		// dp-service counts no copies and tags none: its ports are told
		// apart by what their copies carry.
		fmt.Fprintln(tw, "PORT\tKIND\tCOPIES CARRY")
		for _, p := range st.PortMap.Ports {
			if p.Kind == portmap.KindVF && !slices.Contains(r.VFs, p.Name) {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", esc(p.Name), esc(p.Kind), identity(p))
		}
	} else {
		fmt.Fprintln(tw, "PORT\tTAG\tSAMPLES\tFAILED\tDROPPED\tMIRROR")
		for _, p := range st.Ports {
			mirror := p.Mirror
			if mirror == "" {
				mirror = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", esc(p.Name), p.Tag, p.Samples, p.Failed, p.Dropped, esc(mirror))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range st.Ports {
		if p.Problem != "" {
			fmt.Fprintf(w, "problem: port %s: %s\n", esc(p.Name), esc(p.Problem))
		}
		if p.Reattached > 0 {
			times := fmt.Sprintf("%d times", p.Reattached)
			if p.Reattached == 1 {
				times = "once"
			}
			fmt.Fprintf(w, "note:    port %s: its interface was deleted and made again, capture followed it %s\n", esc(p.Name), times)
		}
	}
	return printDataplane(w, d)
}

// stops says when dpcap serve stops the capture, and why then.
func stops(st control.Status) string {
	if st.Deadline.IsZero() {
		return "never: no bound was asked for, and dpcap serve has no --max-duration"
	}
	s := fmt.Sprintf("%s (in %s)", st.Deadline.Local().Format(time.RFC3339), esc(st.TimeLeft))
	if st.Request.For == "" && st.Request.Until.IsZero() {
		s += fmt.Sprintf(", dpcap serve's --max-duration %s: no --for or --until was given", esc(st.MaxDuration))
	}
	return s
}

// printEnvelope shows the envelope's Ethernet addresses, where the daemon
// builds envelopes for the NIC (the dpdk backend).
func printEnvelope(w io.Writer, st control.Status) {
	if st.PFMAC == "" && st.RouterMAC == "" {
		return
	}
	router := st.RouterMAC
	if router == "" {
		router = "NOT SET (dpcap serve --router-mac; capture is refused without it)"
	}
	fmt.Fprintf(w, "envelope: from PF0 %s to router %s, underlay %s\n", dash(st.PFMAC), esc(router), dash(st.UnderlayIP))
}

// identity says what tells a port's copies apart, from the port map.
func identity(p portmap.Port) string {
	if p.Kind == portmap.KindPF {
		return "underlay frames (inner destination: a VM's underlay route)"
	}
	var a []string
	for _, ip := range []netip.Addr{p.IPv4, p.IPv6} {
		if ip.IsValid() {
			a = append(a, ip.String())
		}
	}
	s := "the VM's frames from " + strings.Join(a, ", ")
	if len(a) == 0 {
		s = "the VM's frames"
	}
	if p.UnderlayRoute.IsValid() {
		s += "; PF0 copies to it: " + p.UnderlayRoute.String()
	}
	return s
}

// printDataplane shows what the dataplane says: its state, what it
// captures, what dpcap did on its own, what is wrong, its interfaces.
func printDataplane(w io.Writer, d *control.DataplaneStatus) error {
	if d == nil {
		return nil
	}
	state := d.State
	if d.UUID != "" {
		state += ", UUID " + d.UUID
	}
	captures := listOrNone(d.Captured)
	if d.Sink != "" {
		captures += fmt.Sprintf(" to %s (UDP source port %d)", esc(d.Sink), d.SrcPort)
	}
	fmt.Fprintf(w, "%s: %s (%s); captures %s\n", esc(d.Name), esc(d.Address), esc(state), captures)
	if d.Event != "" {
		fmt.Fprintf(w, "event:   %s\n", esc(d.Event))
	}
	if d.Problem != "" {
		fmt.Fprintf(w, "problem: %s\n", esc(d.Problem))
	}
	if len(d.Interfaces) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tVNI\tIPV4\tIPV6\tUNDERLAY ROUTE\tDEVICE")
	for _, i := range d.Interfaces {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", esc(i.ID), i.VNI, dash(i.IPv4), dash(i.IPv6), dash(i.UnderlayRoute), dash(i.PCI))
	}
	return tw.Flush()
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no port"
	}
	return list(s)
}

func dataplaneName(d *control.DataplaneStatus) string {
	if d == nil {
		return ""
	}
	return d.Name
}

// list joins names, escaped.
func list(s []string) string {
	out := make([]string, len(s))
	for i, n := range s {
		out[i] = esc(n)
	}
	return strings.Join(out, ", ")
}

// dash is s escaped, or "-" for nothing.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return esc(s)
}

// esc escapes what came from the daemon (names dp-service or a flag gave,
// messages quoting them): a status table never writes a terminal control
// sequence.
func esc(s string) string { return termtext.Escape(s) }
