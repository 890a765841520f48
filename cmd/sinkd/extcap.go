package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dpcap/dpcap/decap"
)

// sinkd is also a Wireshark extcap: installed in Wireshark's extcap
// folder, it appears as the interface "dpcap" in Wireshark and tshark,
// which start it with --capture to receive the decapsulated frames live
// through a fifo.

const extcapInterface = "dpcap"

// isExtcap reports whether Wireshark is calling.
func isExtcap(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "--extcap-") || a == "--capture" {
			return true
		}
	}
	return false
}

// runExtcap answers Wireshark's questions, or captures.
func runExtcap(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sinkd extcap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listIfaces := fs.Bool("extcap-interfaces", false, "")
	fs.String("extcap-version", "", "")
	iface := fs.String("extcap-interface", "", "")
	dlts := fs.Bool("extcap-dlts", false, "")
	config := fs.Bool("extcap-config", false, "")
	capture := fs.Bool("capture", false, "")
	fifo := fs.String("fifo", "", "")
	filter := fs.String("extcap-capture-filter", "", "")
	port := fs.Int("port", decap.DefaultNICPort, "")
	listen := fs.String("listen", "", "")
	allow := fs.String("allow", "", "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	switch {
	case *listIfaces:
		fmt.Fprintln(stdout, "extcap {version=1.0}{help=https://github.com/dpcap/dpcap}")
		fmt.Fprintf(stdout, "interface {value=%s}{display=dpcap sink: frames the NIC sampled, decapsulated}\n", extcapInterface)
		return 0
	case *iface != extcapInterface:
		fmt.Fprintf(stderr, "sinkd: unknown extcap interface %q\n", *iface)
		return 2
	case *dlts:
		fmt.Fprintf(stdout, "dlt {number=1}{name=EN10MB}{display=Ethernet (inner frames)}\n")
		return 0
	case *config:
		fmt.Fprintf(stdout, "arg {number=0}{call=--port}{display=UDP port}{type=integer}{range=1,65535}{default=%d}{tooltip=The port the NIC sends its copies to}\n", decap.DefaultNICPort)
		fmt.Fprintln(stdout, "arg {number=1}{call=--listen}{display=Listen address}{type=string}{tooltip=One local address; empty for all}")
		fmt.Fprintln(stdout, "arg {number=2}{call=--allow}{display=Allowed sources}{type=string}{tooltip=Comma-separated prefixes; empty for any}")
		return 0
	case *capture:
		if *fifo == "" {
			fmt.Fprintln(stderr, "sinkd: --capture needs --fifo")
			return 2
		}
		args = []string{"-w", *fifo, "--port", strconv.Itoa(*port), "--metrics-addr", ""}
		if *listen != "" {
			args = append(args, "--listen", *listen)
		}
		if *allow != "" {
			args = append(args, "--allow", *allow)
		}
		if *filter != "" {
			args = append(args, strings.Fields(*filter)...)
		}
		return run(args, stderr)
	}
	fmt.Fprintln(stderr, "sinkd: extcap: give --extcap-interfaces, --extcap-dlts, --extcap-config or --capture")
	return 2
}
