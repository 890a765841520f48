package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/sink/live/client"
)

// dpcap is also a Wireshark extcap for remote sinks: installed in
// Wireshark's extcap folder, it lists the interface "dpcap-live" (a sink
// and port chosen in the interface's options) and, when the environment
// names a sink ($DPCAP_LIVE_URL), each port of that sink as an interface
// "dpcap-live-PORT"; Wireshark starts it with --capture to stream the
// port's frames (sinkd --live) into a fifo. Only Wireshark's protocol goes
// to standard output, and only errors to standard error, which Wireshark
// shows as the capture's error: reconnections go to the log file the
// options may name.

const (
	extcapLive   = "dpcap-live"
	extcapPrefix = extcapLive + "-"
	// portsTimeout bounds asking a sink its ports while Wireshark waits.
	portsTimeout = 5 * time.Second
)

// isExtcap reports whether Wireshark is calling: its first argument is
// one of extcap's.
func isExtcap(args []string) bool {
	return len(args) > 0 && (strings.HasPrefix(args[0], "--extcap-") || args[0] == "--capture")
}

// extcapFlags are what Wireshark passes: extcap's own and the options
// --extcap-config declared.
type extcapFlags struct {
	interfaces, dlts, config, capture bool
	iface, reload, fifo, filter       string
	url, port, logFile                string
	snaplen                           int
	auth                              client.Auth
}

func parseExtcap(args []string) (extcapFlags, error) {
	var f extcapFlags
	fs := flag.NewFlagSet("dpcap extcap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.interfaces, "extcap-interfaces", false, "")
	fs.String("extcap-version", "", "")
	fs.StringVar(&f.iface, "extcap-interface", "", "")
	fs.BoolVar(&f.dlts, "extcap-dlts", false, "")
	fs.BoolVar(&f.config, "extcap-config", false, "")
	fs.StringVar(&f.reload, "extcap-reload-option", "", "")
	fs.BoolVar(&f.capture, "capture", false, "")
	fs.StringVar(&f.fifo, "fifo", "", "")
	fs.StringVar(&f.filter, "extcap-capture-filter", "", "")
	fs.String("extcap-control-in", "", "")
	fs.String("extcap-control-out", "", "")
	fs.StringVar(&f.url, "url", os.Getenv(client.EnvURL), "")
	fs.StringVar(&f.auth.TokenFile, "token-file", "", "")
	fs.StringVar(&f.auth.CA, "ca", "", "")
	fs.IntVar(&f.snaplen, "snaplen", 0, "")
	fs.StringVar(&f.port, "port", "", "")
	fs.StringVar(&f.logFile, "log-file", "", "")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.port == "" && strings.HasPrefix(f.iface, extcapPrefix) {
		f.port = strings.TrimPrefix(f.iface, extcapPrefix)
	}
	return f, nil
}

// runExtcap answers Wireshark's questions, or captures.
func runExtcap(args []string, stdout, stderr io.Writer) int {
	f, err := parseExtcap(args)
	if err != nil {
		fmt.Fprintf(stderr, "dpcap: extcap: %v\n", err)
		return 2
	}
	switch {
	case f.interfaces:
		fmt.Fprintln(stdout, "extcap {version=1.0}{help=https://github.com/dpcap/dpcap}")
		fmt.Fprintf(stdout, "interface {value=%s}{display=dpcap live: a port of a remote sink (sinkd --live)}\n", extcapLive)
		// A sink the environment names: its ports, each an interface.
		// One that does not answer lists none, silently: Wireshark asks
		// at every start.
		if f.url != "" {
			ports, _ := sinkPorts(f)
			for _, p := range ports {
				fmt.Fprintf(stdout, "interface {value=%s}{display=dpcap live: %s}\n", extcapPrefix+p.Name, portDisplay(p))
			}
		}
		return 0
	case f.iface != extcapLive && !strings.HasPrefix(f.iface, extcapPrefix):
		fmt.Fprintf(stderr, "dpcap: unknown extcap interface %q\n", f.iface)
		return 2
	case f.dlts:
		fmt.Fprintln(stdout, "dlt {number=1}{name=EN10MB}{display=Ethernet (inner frames)}")
		return 0
	case f.config && f.reload == "port":
		ports, err := sinkPorts(f)
		if err != nil {
			fmt.Fprintf(stderr, "dpcap: %v\n", err)
			return 1
		}
		printPortValues(stdout, ports)
		return 0
	case f.config:
		printExtcapConfig(stdout, f)
		return 0
	case f.capture:
		return extcapCapture(f, stderr)
	case f.filter != "":
		// A filter to check: the sink compiles it when the capture
		// starts and refuses a bad one, which Wireshark then shows.
		return 0
	}
	fmt.Fprintln(stderr, "dpcap: extcap: give --extcap-interfaces, --extcap-dlts, --extcap-config or --capture")
	return 2
}

// sinkPorts asks the sink f names for its ports.
func sinkPorts(f extcapFlags) ([]client.Port, error) {
	if f.url == "" {
		return nil, errors.New("no sink URL")
	}
	sink, err := client.NewSink(f.url, f.auth)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), portsTimeout)
	defer cancel()
	ports, err := sink.Ports(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask %s for its ports: %w", sink, err)
	}
	var kept []client.Port
	for _, p := range ports {
		// Braces end extcap's fields, new lines its sentences.
		if !strings.ContainsAny(p.Name, "{}\r\n") {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// portDisplay is a port as Wireshark shows it.
func portDisplay(p client.Port) string {
	s := p.Name
	if p.Description != "" {
		s += " (" + p.Description + ")"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '{', '}', '\r', '\n':
			return ' '
		}
		return r
	}, s)
}

// portArg is the number of --extcap-config's port selector.
const portArg = 4

func printPortValues(w io.Writer, ports []client.Port) {
	for _, p := range ports {
		fmt.Fprintf(w, "value {arg=%d}{value=%s}{display=%s}\n", portArg, p.Name, portDisplay(p))
	}
}

// printExtcapConfig declares the interface's options. The token is a
// file: Wireshark passes options as process arguments, which every user
// of the host can read.
func printExtcapConfig(w io.Writer, f extcapFlags) {
	fmt.Fprintf(w, "arg {number=0}{call=--url}{display=Sink URL}{type=string}{required=true}%s{tooltip=sinkd --live's address: https://HOST:PORT}\n", extcapDefault(f.url))
	fmt.Fprintf(w, "arg {number=1}{call=--token-file}{display=Token file}{type=fileselect}{mustexist=true}%s{tooltip=A file holding the bearer token (default: $DPCAP_LIVE_TOKEN, else $DPCAP_LIVE_TOKEN_FILE)}\n", extcapDefault(os.Getenv(client.EnvTokenFile)))
	fmt.Fprintf(w, "arg {number=2}{call=--ca}{display=CA certificates}{type=fileselect}{mustexist=true}%s{tooltip=PEM certificates to trust for the sink's (default: $DPCAP_LIVE_CA, else the system's)}\n", extcapDefault(os.Getenv(client.EnvCA)))
	fmt.Fprintln(w, "arg {number=3}{call=--snaplen}{display=Snap length}{type=integer}{range=1,262144}{default=262144}{tooltip=Bytes kept of each frame, cut on the sink}")
	if f.iface == extcapLive {
		fmt.Fprintf(w, "arg {number=%d}{call=--port}{display=Port}{type=selector}{reload=true}{placeholder=Load the sink's ports}{tooltip=The port to watch (empty: every port the token may see)}\n", portArg)
		if ports, err := sinkPorts(f); err == nil {
			printPortValues(w, ports)
		}
	}
	fmt.Fprintln(w, "arg {number=5}{call=--log-file}{display=Log file}{type=fileselect}{mustexist=false}{tooltip=Where reconnections to the sink are noted (default: nowhere)}")
}

// extcapDefault is an option's default field; none when v is empty.
func extcapDefault(v string) string {
	if v == "" || strings.ContainsAny(v, "{}\r\n") {
		return ""
	}
	return "{default=" + v + "}"
}

// extcapCapture streams the chosen port into Wireshark's fifo until
// Wireshark stops it (SIGTERM, or the fifo's reader gone).
func extcapCapture(f extcapFlags, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dpcap: %v\n", err)
		return 1
	}
	switch {
	case f.fifo == "":
		fmt.Fprintln(stderr, "dpcap: --capture needs --fifo")
		return 2
	case f.url == "":
		fmt.Fprintln(stderr, "dpcap: no sink URL: set it in the interface's options, or $DPCAP_LIVE_URL")
		return 2
	}
	sink, err := client.NewSink(f.url, f.auth)
	if err != nil {
		return fail(err)
	}
	logf := func(string, ...any) {}
	if f.logFile != "" {
		lf, err := os.OpenFile(f.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fail(err)
		}
		defer lf.Close()
		logf = func(format string, args ...any) {
			fmt.Fprintf(lf, "%s dpcap: %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Wireshark closing the fifo ends the capture: EPIPE, not SIGPIPE.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	fifo, err := os.OpenFile(f.fifo, os.O_WRONLY, 0)
	if err != nil {
		return fail(err)
	}
	defer fifo.Close()
	req := client.Request{Filter: f.filter, SnapLen: f.snaplen}
	if f.port != "" {
		req.Ports = []string{f.port}
	}
	sum, err := sink.Watch(ctx, req, fifo, client.Options{Logf: logf})
	logf("%d frames received, %d lost at the sink for this viewer, %d reconnections", sum.Frames, sum.Lost, sum.Reconnects)
	if err != nil && !errors.Is(err, syscall.EPIPE) {
		return fail(err)
	}
	return 0
}
