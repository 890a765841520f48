//go:build !minimal

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/archive"
	"github.com/dpcap/dpcap/archive/fetch"
	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/internal/termtext"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
	"golang.org/x/sys/unix"
)

func init() { commands["fetch"] = runFetch }

const fetchUsage = `Usage: dpcap fetch LOCATION... [--port NAME]... [--capture ID] [--from T] [--to T] -w FILE

Gets packets back from the capture files of one or many sinks: LOCATION is
s3://BUCKET/PREFIX (where sinkd --upload puts them) or a local directory of
rotated files. Keeps the packets of the named ports (pcapng interface names,
the port map's names) whose time is in [--from, --to), and merges them in
timestamp order into one capture: pcapng, with each input interface kept
once and renumbered (-F pcap: one link type, no names).

Flags:
  -w FILE          where to write; "-" for standard output
                   (dpcap fetch ... -w - | wireshark -k -i -); a reader of
                   -w -, a fifo or /dev/stdout that goes away stops the
                   fetch at once (exit 0). A regular
                   file is written under a temporary name in its directory
                   and renamed when complete (through a symbolic link, the
                   file it names), mode 0640 less the umask, as sinkd's
                   captures; a fifo, a character device or /dev/stdout
                   (/dev/fd/N) is written into; anything else is refused
  --port NAME      a port to keep; repeat or separate with commas
                   (default: every port)
  --capture ID     keep the copies of one capture (the id dpcap start and
                   status show): of its ports, from its start on, across
                   sinks; files whose metadata lists other captures only
                   are not read, pcap files only with one source each
                   (sinkd --split-by) and the id in their metadata
  --from T, --to T the window: RFC 3339 (2026-11-23T10:02:00Z), a local
                   date and time (2026-11-23T10:02, "2026-11-23 10:02"), a
                   time of today (10:02, 10:02:30), a duration before now
                   (-15m, -2h) or "now"
  -F pcap|pcapng   output format (default pcapng)
  --endpoint URL   the S3-compatible store (default: AWS, or
                   AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)
  --region NAME    (default: AWS_REGION or the profile's, else us-east-1)
  --path-style     bucket in the path, as most S3-compatible stores need
  --max-span D     how long a file may run before the window and still
                   reach into it (default 24h)
  -q               no progress line

Credentials come from the standard AWS chain (environment, shared config,
web identity). Progress goes to standard error when it is a terminal; a
summary follows at the end. Exit status 1 when nothing matched (no file
is made; the ports seen in the window are named); 130 when interrupted
(SIGINT). Either way nothing is written at FILE's name: whatever was there
stays as it was.
`

// fetchFlags are dpcap fetch's options.
type fetchFlags struct {
	locations []location
	ports     []string
	capture   string
	from, to  time.Time
	out       string
	pcap      bool
	quiet     bool
	client    archive.ClientOptions
	maxSpan   time.Duration
}

// location is a location as given, parsed once: a bucket's, or a directory.
type location struct {
	arg string
	s3  *archive.Location // nil: arg is a directory
}

// parseFetch parses dpcap fetch's arguments; locations and flags may come
// in any order.
func parseFetch(args []string, now time.Time) (fetchFlags, error) {
	f := fetchFlags{maxSpan: 24 * time.Hour}
	fs := newFlags("dpcap fetch")
	fs.StringVar(&f.out, "w", "", "")
	fs.Func("port", "", portNames(&f.ports))
	fs.Func("capture", "", func(v string) error {
		if !portmap.ValidCapture(v) || v == "" {
			return fmt.Errorf("invalid capture id %q", v)
		}
		f.capture = v
		return nil
	})
	when := func(dst *time.Time) func(string) error {
		return func(v string) (err error) {
			*dst, err = parseWhen(v, now)
			return err
		}
	}
	fs.Func("from", "", when(&f.from))
	fs.Func("to", "", when(&f.to))
	fs.Func("F", "", func(v string) error {
		format, err := pcapout.ParseFormat(v)
		f.pcap = format == pcapout.FormatPcap
		return err
	})
	fs.Func("endpoint", "", func(v string) error {
		f.client.Endpoint = v
		return archive.CheckEndpoint(v)
	})
	fs.StringVar(&f.client.Region, "region", "", "")
	fs.BoolVar(&f.client.PathStyle, "path-style", false, "")
	fs.DurationVar(&f.maxSpan, "max-span", f.maxSpan, "")
	fs.BoolVar(&f.quiet, "q", false, "")
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return f, err
		}
		if args = fs.Args(); len(args) > 0 {
			f.locations = append(f.locations, location{arg: args[0]})
			args = args[1:]
		}
	}
	switch {
	case len(f.locations) == 0:
		return f, errors.New("no location: give s3://BUCKET/PREFIX or a directory")
	case f.out == "":
		return f, errors.New("no output: give -w FILE (or -w - for standard output)")
	}
	if start, ok := control.IDTime(f.capture); ok && start.After(f.from) {
		f.from = start // nothing of it is older
	}
	switch {
	case !f.from.IsZero() && !f.to.IsZero() && !f.from.Before(f.to):
		return f, fmt.Errorf("empty window: --from %s is not before --to %s", f.from.Format(time.RFC3339Nano), f.to.Format(time.RFC3339Nano))
	case f.maxSpan < 0:
		return f, fmt.Errorf("invalid --max-span %v", f.maxSpan)
	}
	for i, l := range f.locations {
		if archive.IsURL(l.arg) {
			loc, err := archive.ParseURL(l.arg)
			if err != nil {
				return f, err
			}
			f.locations[i].s3 = &loc
		}
	}
	return f, nil
}

// portNames parses --port: names, repeated or separated by commas.
func portNames(dst *[]string) func(string) error {
	return func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p == "" {
				return fmt.Errorf("empty port name in %q", v)
			}
			*dst = append(*dst, p)
		}
		return nil
	}
}

func runFetch(args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, fetchUsage)
			return nil
		}
	}
	f, err := parseFetch(args, time.Now())
	if err != nil {
		return usageErr{err}
	}
	ctx, stop := interruptible()
	defer stop()
	var sources []fetch.Source
	for _, l := range f.locations {
		if l.s3 == nil {
			if st, err := os.Stat(l.arg); err != nil || !st.IsDir() {
				return usageErr{fmt.Errorf("%s is neither s3://BUCKET/PREFIX nor a directory", l.arg)}
			}
			sources = append(sources, &fetch.Dir{Path: l.arg})
			continue
		}
		client, err := archive.NewClient(ctx, f.client)
		if err != nil {
			return err
		}
		sources = append(sources, &fetch.S3{Client: client, Loc: *l.s3, MaxSpan: f.maxSpan})
	}
	ctx, out, err := openCapOut(ctx, f.out, stdout)
	if err != nil {
		return err
	}
	defer out.unwatch()
	file := out.file
	prog := &fetch.Progress{}
	stopLine := func() {}
	if !f.quiet && isTerminal(stderr) {
		stopLine = showLine(stderr, func() string { return progressLine(prog) })
	}
	sum, err := fetch.Run(ctx, fetch.Config{
		Sources: sources, Query: fetch.Query{Ports: f.ports, Capture: f.capture, From: f.from, To: f.to},
		Output: out.Writer, Pcap: f.pcap, Progress: prog,
	})
	stopLine()
	if ctx.Err() != nil {
		// Whatever the merge made of the interruption, the output is cut.
		err = context.Cause(ctx)
	}
	if err == nil && sum.PacketsKept == 0 {
		err = noMatch(f.ports, sum.Seen)
	}
	written := f.out
	if f.out == "-" {
		written = "standard output"
	}
	if file != nil {
		if err == nil {
			err = file.Commit()
		} else {
			file.Abort()
		}
		if written = file.Name(); err != nil && file.Regular() {
			written = ""
		}
	}
	printFetchSummary(stderr, sum, written)
	if out.readerGone(ctx, err) {
		fmt.Fprintln(stderr, "stopped: the reader of the output went away")
		return nil
	}
	var intr interrupted
	if errors.As(err, &intr) && written != "" {
		return fmt.Errorf("%w: %s is cut short", err, written)
	}
	if err != nil && written == "" {
		return fmt.Errorf("%w; nothing written to %s", err, f.out)
	}
	return err
}

// noMatch says that no packet matched, and which ports the files held
// instead, so that a mistyped --port shows.
func noMatch(ports, seen []string) error {
	if len(ports) == 0 || len(seen) == 0 {
		return errors.New("no packet matched")
	}
	return fmt.Errorf("no packet matched: no packet of --port %s in the window; ports seen there: %s", strings.Join(ports, ","), strings.Join(seen, ", "))
}

// interrupted ends a fetch stopped by a signal; dpcap exits 128 plus the
// signal's number, as shells expect.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + unix.SignalName(i.sig) }

// ExitCode is dpcap's exit status.
func (i interrupted) ExitCode() int { return 128 + int(i.sig) }

// interruptible returns a context that SIGINT and SIGTERM cancel with
// interrupted as its cause.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			cancel(interrupted{s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel(nil)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// showLine redraws one line on the terminal, every 200 ms, until stop is
// called; stop returns once the line is cleared, so that what is written
// next (the summary) is not cleared with it.
func showLine(w io.Writer, line func() string) (stop func()) {
	done, cleared := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(cleared)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(w, "\r\033[K"+line())
			}
		}
	}()
	return func() { close(done); <-cleared }
}

// progressLine says how far a fetch is.
func progressLine(p *fetch.Progress) string {
	return fmt.Sprintf("files %d/%d, %.1f MB read, %d packets read, %d kept",
		p.FilesDone.Load(), p.Files.Load(), float64(p.Bytes.Load())/1e6, p.PacketsRead.Load(), p.PacketsKept.Load())
}

// printFetchSummary says what the fetch did; out is where its packets are,
// empty when nowhere. Names from files and buckets are escaped: they may
// hold terminal escapes.
func printFetchSummary(w io.Writer, s fetch.Summary, out string) {
	fmt.Fprintf(w, "%d packets of %d read from %d files (%d listed in the window, %.1f MB)",
		s.PacketsKept, s.PacketsRead, s.Read, s.Listed, float64(s.Bytes)/1e6)
	if out != "" {
		fmt.Fprintf(w, " written to %s", termtext.Escape(out))
	}
	fmt.Fprintln(w)
	if s.PacketsKept > 0 {
		names := make([]string, len(s.Interfaces))
		for i, n := range s.Interfaces {
			names[i] = termtext.Escape(n)
		}
		fmt.Fprintf(w, "first %s, last %s; interfaces: %s\n", s.First.UTC().Format(time.RFC3339Nano),
			s.Last.UTC().Format(time.RFC3339Nano), strings.Join(names, ", "))
	}
	if s.Skipped > 0 {
		fmt.Fprintf(w, "%d files skipped: not capture files, or not named as sinkd names them\n", s.Skipped)
	}
	for _, u := range s.Unfilterable {
		fmt.Fprintf(w, "skipped %s: a pcap file of several sources cannot be filtered by port (use -F pcapng or --split-by source in sinkd)\n", termtext.Escape(u))
	}
	for _, g := range s.Gone {
		fmt.Fprintf(w, "gone: %s (removed since it was listed)\n", termtext.Escape(g))
	}
	for _, d := range s.Damaged {
		fmt.Fprintf(w, "damaged: %s (its packets up to there are used)\n", termtext.Escape(d))
	}
}
