//go:build !minimal

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dpcap/dpcap/internal/termtext"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink/live/client"
)

func init() { commands["watch"] = runWatch }

const watchUsage = `Usage: dpcap watch SINK [--port NAME]... [-w FILE|-] [-s SNAPLEN] [-c COUNT]
                   [--format pcap|pcapng] [--token-file F] [--ca F] [EXPRESSION]

Streams the frames a sink (sinkd --live) writes, live, from the moment it
connects: SINK is https://HOST:PORT (http:// for a sink on loopback).
EXPRESSION is a tcpdump expression the sink applies, so only matching
frames cross the network, e.g.

  dpcap watch https://sink-1:9311 --port vm-1 'tcp port 443' -w - | wireshark -k -i -

Flags:
  --port NAME      a port of the sink's port map, or a source as its files
                   name it; repeat or separate with commas (default: every
                   port the token may see)
  -w FILE          where to write; "-" for standard output, which is also
                   the default when standard output is not a terminal. A
                   regular file is written under a temporary name in its
                   directory and renamed when the watch ends (through a
                   symbolic link, the file it names), mode 0640 less the
                   umask; a fifo or a character device is written into; a
                   reader of -w - or a fifo that goes away ends the watch
  -s SNAPLEN       bytes kept of each frame, 1-262144 (default: all)
  -c COUNT         end after COUNT frames
  --format F       pcapng (default: an interface per port, the sink's
                   losses for this viewer in its statistics) or pcap
  --token-file F   the bearer token, alone in file F (default:
                   $DPCAP_LIVE_TOKEN, else the file $DPCAP_LIVE_TOKEN_FILE);
                   never on the command line, where every user sees it
  --ca F           the CA certificates (PEM) to trust for the sink's
                   certificate (default: $DPCAP_LIVE_CA, else the system's)
  -q               no packet counter

When the sink goes away or restarts, the watch says so on standard error
and reconnects, waiting 0.5 s, then twice as long each time up to 10 s;
the output stays one capture (pcapng: a new section; pcap: the header
once). While writing to a file with standard error on a terminal, a
counter shows the frames received. At the end (Ctrl-C, SIGTERM, -c, or
the reader of the output gone) a summary: frames received, frames the
sink lost for this viewer (its queue was full: a slow network or reader),
reconnections. Exit status 0 when frames came, 1 when none came or the
sink refused (401: no or unknown token; 403: a port outside the token's
scope), 2 for a usage error, also one the sink found (400: a bad
expression, port or snap length).
`

// watchFlags are dpcap watch's options.
type watchFlags struct {
	sink      string
	req       client.Request
	out       string
	auth      client.Auth
	quiet     bool
	stdoutTTY bool // standard output is a terminal: no default -w -
}

// parseWatch parses dpcap watch's arguments: the sink first, the
// expression's words after it, flags anywhere ("--" ends them).
func parseWatch(args []string, stdoutTTY bool) (watchFlags, error) {
	f := watchFlags{stdoutTTY: stdoutTTY}
	fs := newFlags("dpcap watch")
	viewerFlags(fs, &f)
	fs.Func("port", "", portNames(&f.req.Ports))
	words, err := parseWords(fs, args)
	if err != nil {
		return f, err
	}
	if len(words) == 0 {
		return f, errors.New("no sink: give its URL, e.g. https://sink-1:9311")
	}
	f.sink, f.req.Filter = words[0], strings.Join(words[1:], " ")
	return f, f.defaultOut()
}

// viewerFlags adds a live viewer's flags (dpcap watch's, dpcap
// capture's) to fs: the output, snap length, count, format, token, CA.
func viewerFlags(fs *flag.FlagSet, f *watchFlags) {
	fs.StringVar(&f.out, "w", "", "")
	fs.Func("s", "", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 262144 {
			return fmt.Errorf("invalid snap length %q: want 1-262144", v)
		}
		f.req.SnapLen = n
		return nil
	})
	fs.Func("c", "", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid count %q: want a positive number", v)
		}
		f.req.Count = n
		return nil
	})
	fs.Func("format", "", func(v string) error {
		format, err := pcapout.ParseFormat(v)
		f.req.Pcap = format == pcapout.FormatPcap
		return err
	})
	fs.StringVar(&f.auth.TokenFile, "token-file", "", "")
	fs.StringVar(&f.auth.CA, "ca", "", "")
	fs.BoolVar(&f.quiet, "q", false, "")
}

// parseWords parses args with fs, flags anywhere among the other words,
// which it returns ("--" ends the flags).
func parseWords(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			words = append(words, rest...)
			break
		}
		for len(rest) > 0 && !isFlag(rest[0]) {
			words, rest = append(words, rest[0]), rest[1:]
		}
		args = rest
	}
	return words, nil
}

// defaultOut makes standard output the output when -w is not given and
// standard output is no terminal.
func (f *watchFlags) defaultOut() error {
	if f.out == "" && f.stdoutTTY {
		return errors.New("no output: give -w FILE, or -w - to pipe into wireshark -k -i -")
	}
	if f.out == "" {
		f.out = "-"
	}
	return nil
}

// isFlag reports whether a word is a flag rather than part of the
// expression.
func isFlag(w string) bool { return len(w) > 1 && w[0] == '-' }

func runWatch(args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, watchUsage)
			return nil
		}
	}
	f, err := parseWatch(args, isTerminal(stdout))
	if err != nil {
		return usageErr{err}
	}
	sink, err := client.NewSink(f.sink, f.auth)
	if err != nil {
		return usageErr{err}
	}
	ctx, stop := interruptible()
	defer stop()
	ctx, out, err := openCapOut(ctx, f.out, stdout)
	if err != nil {
		return err
	}
	defer out.unwatch()
	prog := &client.Progress{}
	stopLine := func() {}
	counting := !f.quiet && f.out != "-" && isTerminal(stderr)
	if counting {
		stopLine = showLine(stderr, func() string { return countLine(prog) })
	}
	logf := func(format string, args ...any) {
		if counting {
			fmt.Fprint(stderr, "\r\033[K")
		}
		fmt.Fprintf(stderr, "dpcap watch: %s\n", termtext.Escape(fmt.Sprintf(format, args...)))
	}
	sum, err := sink.Watch(ctx, f.req, out, client.Options{Logf: logf, Progress: prog})
	stopLine()
	gone := out.readerGone(ctx, err)
	if gone {
		err = nil
	}
	written, cerr := out.keep(sum.Frames)
	err = errors.Join(err, cerr)
	if err == nil || sum.Frames > 0 {
		printWatchSummary(stderr, sum, written)
	}
	if gone {
		fmt.Fprintln(stderr, "stopped: the reader of the output went away")
	}
	return watchErr(err, sum.Frames)
}

// countLine is "Got N", as tcpdump -w shows it.
func countLine(p *client.Progress) string {
	line := fmt.Sprintf("Got %d", p.Frames.Load())
	if n := p.Lost.Load(); n > 0 {
		line += fmt.Sprintf(" (%d lost at the sink)", n)
	}
	return line
}

// printWatchSummary says what a watch received, and where it is; out is
// empty when nowhere.
func printWatchSummary(w io.Writer, s client.Summary, out string) {
	fmt.Fprintf(w, "%d frames received", s.Frames)
	if out != "" && s.Frames > 0 {
		fmt.Fprintf(w, ", written to %s", termtext.Escape(out))
	}
	fmt.Fprintf(w, "\n%d frames lost at the sink for this viewer", s.Lost)
	if s.Lost > 0 {
		fmt.Fprint(w, " (its queue was full: the network or the reader was too slow)")
	}
	fmt.Fprintf(w, "\n%d reconnections\n", s.Reconnects)
}
