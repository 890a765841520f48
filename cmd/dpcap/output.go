package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dpcap/dpcap/control"
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
	if !st.Active {
		fmt.Fprintf(w, "capture: NOT ACTIVE (%s backend)\n", st.Backend)
		if st.Problem != "" {
			fmt.Fprintf(w, "problem: %s (dpcap stop clears it)\n", st.Problem)
		}
		return nil
	}
	r := st.Request
	fmt.Fprintf(w, "capture: ACTIVE (%s backend) since %s\n", st.Backend, st.Started.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "sink:    [%s]:%d, UDP source port %d\n", r.SinkNodeIP, r.DstPort, r.SrcPort)
	if r.Filter != "" {
		fmt.Fprintf(w, "filter:  %s\n", r.Filter)
	}
	fmt.Fprintf(w, "port map for sinkd --port-map: %s\n", st.PortMapFile)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tTAG\tSAMPLES\tFAILED\tDROPPED")
	for _, p := range st.Ports {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", p.Name, p.Tag, p.Samples, p.Failed, p.Dropped)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range st.Ports {
		if p.Problem != "" {
			fmt.Fprintf(w, "problem: port %s: %s\n", p.Name, p.Problem)
		}
		if p.Reattached > 0 {
			times := fmt.Sprintf("%d times", p.Reattached)
			if p.Reattached == 1 {
				times = "once"
			}
			fmt.Fprintf(w, "note:    port %s: its interface was deleted and made again, capture followed it %s\n", p.Name, times)
		}
	}
	return nil
}
