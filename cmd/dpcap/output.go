package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
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
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		writeYAML(w, v, 0)
		return nil
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
	return tw.Flush()
}

// writeYAML renders decoded JSON as block YAML.
func writeYAML(w io.Writer, v any, indent int) {
	pad := strings.Repeat("  ", indent)
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch c := v[k].(type) {
			case map[string]any, []any:
				if isEmpty(c) {
					fmt.Fprintf(w, "%s%s: %s\n", pad, k, emptyOf(c))
					continue
				}
				fmt.Fprintf(w, "%s%s:\n", pad, k)
				writeYAML(w, c, indent+1)
			default:
				fmt.Fprintf(w, "%s%s: %s\n", pad, k, scalar(c))
			}
		}
	case []any:
		for _, e := range v {
			switch c := e.(type) {
			case map[string]any:
				var b strings.Builder
				writeYAML(&b, c, indent+1)
				fmt.Fprintf(w, "%s- %s", pad, strings.TrimPrefix(b.String(), pad+"  "))
			default:
				fmt.Fprintf(w, "%s- %s\n", pad, scalar(c))
			}
		}
	}
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

func emptyOf(v any) string {
	if _, ok := v.(map[string]any); ok {
		return "{}"
	}
	return "[]"
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		b, _ := json.Marshal(v) // a JSON string is a valid YAML scalar
		return string(b)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}
