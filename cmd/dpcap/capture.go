//go:build !minimal

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/hosts"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/termtext"
	"github.com/dpcap/dpcap/sink/live/client"
)

func init() { commands["capture"] = runCapture }

const captureUsage = `Usage: dpcap capture --vf NAMES [--pf 0] [--for D|--until T]
                     --sink-node-ip IP --udp-dst-port N [--sink URL]
                     [-c COUNT] [-w FILE|-] [EXPRESSION]
       dpcap capture start|stop|status [flags]

One command from "capture vm-1 for two minutes" to the packets: it starts
the capture through dpcap serve (all ports or none: nothing is started if
one is refused), reads the ports' frames live from the sink, writes them,
and stops the capture at its deadline, after -c COUNT frames, or at
Ctrl-C or SIGTERM, as dpcap stop does. The deadline is dpcap serve's too:
if this command dies, the daemon still stops the capture then.
EXPRESSION is a tcpdump expression the sink applies (not the NIC: every
frame of the ports is copied to the sink), e.g.

  dpcap capture --vf vm-1 --for 2m --sink https://sink-1:9311 \
      --sink-node-ip 2001:db8::5 --udp-dst-port 3010 'tcp port 443' -w - |
      wireshark -k -i -

Where the sink is:
  elsewhere         --sink https://HOST:PORT is the live endpoint of the
                    sinkd --sink-node-ip and --udp-dst-port name (sinkd
                    --live, with --port-map reading dpcap serve's map), as
                    dpcap watch reads it: the command asks it for exactly
                    the started ports
  this host         without --sink, the command runs a sinkd of its own on
                    --sink-node-ip (an address of this host) and
                    --udp-dst-port, with the capture's port map and --live
                    on a loopback port, and reads it the same way; it ends
                    with the command. sinkd must be beside dpcap or on
                    $PATH
Either way the stream is asked for before the capture starts, so the
output has every frame the sink got for the ports from the first.

At the end, a summary per port: the frames the sink received for it while
the command watched (isb_ifrecv), the frames written, and those lost: at
the NIC or in the kernel (dpcap status's failed and dropped), at the sink
for this viewer (its queue was full), and filtered out by EXPRESSION.
Exit status 0 when frames were written, 1 when none were (or the start was
refused), 2 for a usage error.

'dpcap capture start', 'capture stop' and 'capture status' are dpcap
start, stop and status, with their flags (dpservice-cli's spelling:
--sink-node-ip --udp-dst-port --udp-src-port --vf --pf).

Flags:
  --vf NAMES          VF ports, comma-separated
  --pf 0              capture PF0 (the uplink) too
  --for D             stop the capture after D (90s, 2m); without --for or
  --until T           --until, dpcap serve's --max-duration bounds it
  --sink-node-ip IP   the sink's IPv6 address, where the NIC sends the copies
  --udp-dst-port N    the sink's UDP port (sinkd --port)
  --udp-src-port N    the envelopes' source port
  --sink URL          the sink's live endpoint: https://HOST:PORT, or
                      http:// on loopback (default: a sinkd of its own)
  -c COUNT            stop after COUNT frames
  -w FILE             where to write; "-" for standard output (the default
                      when it is not a terminal), as dpcap watch's -w
  -s SNAPLEN          bytes kept of each frame, 1-262144 (default: all)
  --format F          pcapng (default: an interface per port) or pcap
  --token-file F      --sink's bearer token, alone in file F (default:
                      $DPCAP_LIVE_TOKEN, else the file $DPCAP_LIVE_TOKEN_FILE)
  --ca F              the CA certificates (PEM) to trust for --sink's
                      (default: $DPCAP_LIVE_CA, else the system's) and
                      --host's (default: $DPCAP_CA, else the system's)
  --host URL, --hosts FILE, --cert F, --key F, --timeout D
                      start and stop the capture on the dpcap serves of
                      other hosts, where its ports are, as dpcap start does
                      (see its --help); the summary's NIC counts are theirs
  -q                  no packet counter
  --socket PATH       dpcap serve's socket (default /run/dpcap/dpcap.sock)
`

// captureFlags are dpcap capture's options.
type captureFlags struct {
	start  control.StartRequest
	view   watchFlags
	socket string
	hosts  *hosts.Set // nil: the local socket's dpcap serve
}

// parseCapture parses dpcap capture's arguments: flags anywhere, the
// expression's words among them ("--" ends the flags).
func parseCapture(args []string, stdoutTTY bool) (captureFlags, error) {
	f := captureFlags{view: watchFlags{stdoutTTY: stdoutTTY}}
	fs := newFlags("dpcap capture")
	requestFlags(fs, &f.start)
	viewerFlags(fs, &f.view)
	fs.StringVar(&f.view.sink, "sink", "", "")
	fs.StringVar(&f.socket, "socket", defaultSocket, "")
	hf := addHostFlags(fs)
	words, err := parseWords(fs, args)
	if err != nil {
		return f, err
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "ca" {
			hf.ca = f.view.auth.CA
		}
	})
	if f.hosts, err = hf.set(fs); err != nil {
		return f, err
	}
	f.view.req.Filter = strings.Join(words, " ")
	f.view.req.Ports = slices.Clone(f.start.VFs)
	if f.start.PF0 {
		f.view.req.Ports = append(f.view.req.Ports, flowprog.PF0)
	}
	switch {
	case len(f.view.req.Ports) == 0:
		return f, errors.New("no port: give --vf NAMES or --pf 0")
	case f.view.sink == "" && (f.view.auth.TokenFile != "" || (f.view.auth.CA != "" && f.hosts == nil)):
		return f, errors.New("--token-file and --ca are for --sink: the sinkd this command runs without it needs neither")
	}
	if err := oneDeadline(f.start); err != nil {
		return f, err
	}
	if _, err := f.start.Program(control.Envelope{}, nil); err != nil {
		return f, err
	}
	return f, f.view.defaultOut()
}

// drainQuiet is how long the stream must bring nothing after the capture
// stopped for the copies still on their way to count as come; drainMax
// bounds the wait.
const (
	drainQuiet = time.Second
	drainMax   = 5 * time.Second
)

func runCapture(args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, captureUsage)
			return nil
		}
	}
	f, err := parseCapture(args, isTerminal(stdout))
	if err != nil {
		return usageErr{err}
	}
	sigCtx, stopSignals := interruptible()
	defer stopSignals()
	var local *localSink
	if f.view.sink == "" {
		if local, err = startLocalSink(sigCtx, f.start); err != nil {
			return err
		}
		defer local.stop()
		f.view.sink = local.url
	}
	sink, err := client.NewSink(f.view.sink, f.view.auth)
	if err != nil {
		return usageErr{err}
	}
	// The stream outlives a signal by the drain: the copies on their way.
	outCtx, out, err := openCapOut(context.Background(), f.view.out, stdout)
	if err != nil {
		return err
	}
	defer out.unwatch()
	watchCtx, endWatch := context.WithCancel(outCtx)
	defer endWatch()

	prog := &client.Progress{}
	counting := !f.view.quiet && f.view.out != "-" && isTerminal(stderr)
	logf := func(format string, args ...any) {
		if counting {
			fmt.Fprint(stderr, "\r\033[K")
		}
		fmt.Fprintf(stderr, "dpcap capture: %s\n", termtext.Escape(fmt.Sprintf(format, args...)))
	}
	connected := make(chan struct{})
	var once sync.Once
	type result struct {
		sum client.Summary
		err error
	}
	watched := make(chan result, 1)
	go func() {
		sum, err := sink.Watch(watchCtx, f.view.req, out, client.Options{Logf: logf, Progress: prog,
			Connected: func() { once.Do(func() { close(connected) }) }})
		watched <- result{sum, err}
	}()
	var res result
	select {
	case <-connected:
	case res = <-watched:
		out.keep(0)
		if res.err == nil {
			res.err = errors.New("the sink ended the stream before the capture started")
		}
		return watchErr(res.err, 0)
	case <-sigCtx.Done():
		endWatch()
		<-watched
		out.keep(0)
		return context.Cause(sigCtx)
	}

	var daemon captureDaemons = &socketDaemon{c: control.NewClient(f.socket)}
	if f.hosts != nil {
		daemon = &hostDaemons{all: f.hosts}
	}
	st, err := daemon.start(sigCtx, f.start)
	if err != nil {
		endWatch()
		<-watched
		out.keep(0)
		return err
	}
	logf("capture %s of %s started%s", st.ID, strings.Join(f.view.req.Ports, ", "), until(st.Deadline))
	if local != nil {
		// The daemon's tags, should they differ from the program's.
		if err := local.publish(st.PortMap); err != nil {
			logf("the port map of the local sinkd: %v", err)
		}
	}
	stopLine := func() {}
	if counting {
		stopLine = showLine(stderr, func() string { return countLine(prog) })
	}
	last := st
	var deadline <-chan time.Time
	if !st.Deadline.IsZero() {
		deadline = time.After(time.Until(st.Deadline))
	}
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	why, ended := "", false
	for why == "" {
		select {
		case <-deadline:
			why = "its deadline"
		case <-sigCtx.Done():
			why = context.Cause(sigCtx).Error()
		case res = <-watched:
			why, ended = "the end of the sink's stream", true
			if f.view.req.Count > 0 && res.sum.Frames >= f.view.req.Count {
				why = fmt.Sprintf("-c %d", f.view.req.Count)
			}
		case <-poll.C:
			daemon.refresh(&last)
		}
	}
	stopped, serr := daemon.stop(&last)
	if !ended {
		drain(prog)
		endWatch()
		res = <-watched
	}
	stopLine()
	logf("%s: %s", why, stopped)
	gone := out.readerGone(outCtx, res.err)
	if gone {
		res.err = nil
	}
	written, cerr := out.keep(res.sum.Frames)
	printCaptureSummary(stderr, res.sum, last, f.view.req, written)
	if gone {
		fmt.Fprintln(stderr, "stopped: the reader of the output went away")
	}
	return watchErr(errors.Join(res.err, cerr, serr), res.sum.Frames)
}

// until says when a capture stops.
func until(deadline time.Time) string {
	if deadline.IsZero() {
		return ", with no deadline"
	}
	return fmt.Sprintf(", stops at %s (in %v)", deadline.Local().Format(time.RFC3339), time.Until(deadline).Round(time.Second))
}

// stopOurs stops capture id, as dpcap stop does, unless it stopped
// already (its deadline) or another took its place; last gets its final
// counters. It says what it did.
func stopOurs(daemon *control.Client, id string, last *control.Status) (string, error) {
	ctx := context.Background()
	st, err := daemon.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("stop capture %s: %w", id, err)
	}
	if !st.Active || st.ID != id {
		return "capture " + id + " had stopped", nil
	}
	*last = st
	res, err := daemon.Stop(ctx)
	if err != nil {
		return "", fmt.Errorf("stop capture %s: %w", id, err)
	}
	return termtext.Escape(res.Message), nil
}

// drain waits for the copies still on their way once a capture stopped:
// until the stream brought nothing for drainQuiet, at most drainMax.
func drain(p *client.Progress) {
	end := time.Now().Add(drainMax)
	n, quiet := p.Frames.Load(), time.Now()
	for t := time.NewTicker(100 * time.Millisecond); time.Now().Before(end); <-t.C {
		if m := p.Frames.Load(); m != n {
			n, quiet = m, time.Now()
		} else if time.Since(quiet) >= drainQuiet {
			return
		}
	}
}

// watchErr is a viewer's end as the command's: a request the sink found
// bad is a usage error; no frame is a failure.
func watchErr(err error, frames uint64) error {
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusBadRequest:
		return usageErr{err}
	case err != nil:
		return err
	case frames == 0:
		return errors.New("no frame received")
	}
	return nil
}

// printCaptureSummary says, per port, what the sink received, what was
// written and what was lost where; st is the capture's last status (the
// NIC's counters).
func printCaptureSummary(w io.Writer, sum client.Summary, st control.Status, req client.Request, out string) {
	fmt.Fprintf(w, "%d frames written", sum.Frames)
	if out != "" && sum.Frames > 0 {
		fmt.Fprintf(w, " to %s", termtext.Escape(out))
	}
	fmt.Fprintln(w)
	nic := map[string]uint64{}
	for _, p := range st.Ports {
		nic[p.Name] = p.Failed + p.Dropped
	}
	if req.Pcap {
		fmt.Fprintf(w, "%d lost at the sink for this viewer; pcap has no counts per port\n", sum.Lost)
		return
	}
	for _, name := range req.Ports {
		var c client.PortCounts
		if i := slices.IndexFunc(sum.Ports, func(c client.PortCounts) bool { return c.Name == name }); i >= 0 {
			c = sum.Ports[i]
		}
		filtered := uint64(0)
		if req.Filter != "" && c.Received > c.Lost+c.Accepted {
			filtered = c.Received - c.Lost - c.Accepted
		}
		fmt.Fprintf(w, "%s: %d received by the sink, %d written; lost: %d at the NIC or in the kernel, %d at the sink for this viewer; %d filtered out\n",
			termtext.Escape(name), c.Received, c.Frames, nic[name], c.Lost, filtered)
	}
}
