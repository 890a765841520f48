package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpcap/dpcap/capture/udpstat"
	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/internal/pipewatch"
	"github.com/dpcap/dpcap/internal/privdrop"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/sink/metrics"
	"github.com/dpcap/dpcap/sink/output"
)

// mapCheckInterval is how often --port-map's file is looked at for a new
// map.
const mapCheckInterval = time.Second

// udpWatchInterval is how often the kernel's UDP error counters are
// compared with what sinkd receives.
const udpWatchInterval = time.Second

// startError is a capture that could not start: exit status 2.
type startError struct{ err error }

func (e startError) Error() string { return e.err.Error() }

// run runs sinkd with args, logging and summing up to stderr, and returns
// its exit status.
func run(args []string, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			io.WriteString(os.Stdout, usage())
			return 0
		}
	}
	c, err := parseFlags(args)
	if err == nil {
		err = runCapture(c, stderr)
	}
	var ue usageError
	var se startError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "sinkd: %v (see sinkd --help)\n", err)
		return 2
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "sinkd: %v\n", err)
	return 1
}

// runCapture acquires what c needs, each resource releasing itself once,
// runs the capture and prints the summary to stderr. What fails before
// the capture runs is a usageError or a startError.
func runCapture(c config, stderr io.Writer) error {
	mapFile, portMap, mapNotes, err := loadPortMap(c.mapPath)
	if err != nil {
		return usageError{err}
	}
	flts, err := compileFilters(c)
	if err != nil {
		return startError{err}
	}
	if err := checkFileLimit(c); err != nil {
		return startError{err}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	for _, n := range mapNotes {
		logger.Warn("port map: " + n)
	}
	// A reader of -w - that goes away ('sinkd -w - | head') ends the
	// capture with a summary, as with a fifo, instead of killing sinkd:
	// writes get EPIPE once SIGPIPE is caught. (Caught, not ignored, so
	// that -z commands start with the default action.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	srcs, bufSize, desc, err := openSources(c, logger)
	if err != nil {
		return startError{err}
	}
	for _, src := range srcs {
		defer src.Close()
	}
	var runAs *privdrop.User
	if c.runAs != "" {
		u, err := privdrop.Lookup(c.runAs)
		if err != nil {
			return startError{err}
		}
		runAs = &u
	}
	files, err := openWriters(c, srcs, runAs, logger)
	if err != nil {
		return startError{err}
	}
	// The engines close the files as the capture ends; this closes them
	// when it never starts.
	defer files.Close()
	outs, err := c.outputs.New(output.Env{Out: c.out, Logger: logger, PortMap: portMap})
	if err != nil {
		return startError{err}
	}
	outs.Subscribe(files)
	engs := make(engines, len(srcs))
	for i, src := range srcs {
		engs[i] = sink.New(sink.Config{
			Source: src, Decoder: newDecoder(c), Output: files[i],
			PerSource: c.split || c.format == pcapout.FormatPcapng, MaxSources: c.maxSources, PortMap: portMap,
			Filter: flts[i], Allow: c.allow, Tap: outs.Tap(),
			Count: c.count, Stream: files[i].Stream(), Logger: logger,
		})
	}
	// Metrics and the summary report the sum of the workers' snapshots,
	// each of which accounts for its packets exactly.
	stats := func() sink.Stats { return sink.Total(engs...) }
	// The map's capture ids, a label of their own (bounded).
	captures := metrics.NewCaptureCollector()
	setPortMap := engs.setPortMap
	if portMap != nil {
		x, _ := portmap.NewIdentifier(*portMap)
		captures.Set(x)
		setPortMap = func(x *portmap.Identifier) { engs.setPortMap(x); captures.Set(x) }
	}
	if c.metricsAddr != "" {
		var more []prometheus.Collector
		if !c.input.Offline {
			more = append(more, metrics.NewKernelUDPCollector(udpstat.DefaultProcNet, logger))
		}
		more = append(more, outs.Collectors()...)
		if portMap != nil {
			more = append(more, captures)
		}
		srv, err := metrics.Listen(c.metricsAddr, metrics.NewCollector(stats, bufSize, logger), engs.running, logger, more...)
		if err != nil {
			return startError{err}
		}
		defer srv.Close()
	}

	if runAs != nil {
		if err := outs.Chown(runAs.UID, runAs.GID); err != nil {
			return startError{fmt.Errorf("-Z %s: %w", c.runAs, err)}
		}
		if err := runAs.Drop(); err != nil {
			return startError{err}
		}
		if mapFile != nil && !c.input.Offline {
			if err := mapFile.Readable(); err != nil {
				// Read as root at start; said once, not as a failed
				// reread a second later.
				logger.Warn("port map cannot be read as "+c.runAs+": a new map will not be seen until it can", "file", mapFile.Path, "err", err)
			}
		}
	}
	// Only now, as -Z's user: nothing an output opens (the upload spool,
	// which that user holds) is ever read or followed as root.
	if err := outs.Start(files); err != nil {
		return startError{err}
	}

	if c.out == "-" {
		// A reader that goes away ends the capture at once, not at the
		// next packet's write (EPIPE), which a quiet port may never send.
		ctx, stop, err := pipewatch.Watch(context.Background(), os.Stdout)
		if err != nil {
			return startError{fmt.Errorf("-w -: %w", err)}
		}
		defer stop()
		go func() {
			<-ctx.Done()
			if context.Cause(ctx) == pipewatch.ErrReaderGone {
				engs.readerGone()
			}
		}()
	}
	reread := make(chan struct{}, 1)
	defer handleSignals(engs, reread)()
	if mapFile != nil && !c.input.Offline {
		// The capture on the hypervisor changes while sinkd runs; its new
		// map is copied over the old one.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go sink.FollowPortMap(ctx, mapFile, mapCheckInterval, reread, setPortMap, logger)
	}

	if !c.input.Offline {
		logCapturing(logger, c, desc, files.Name(), bufSize, len(engs))
	}
	if c.input.Flag == "" {
		// The silent sink: envelopes the kernel discards never reach the
		// socket, so only the namespace's counters can tell.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go udpstat.Watch(ctx, udpstat.DefaultProcNet, udpWatchInterval, func() uint64 { return stats().Received }, logger)
	}
	runErr := engs.run()
	st := stats()
	outs.Stop(stderr)
	if engs.fileLimitReached() {
		fmt.Fprintf(stderr, "Maximum file limit reached: %d\n", c.fileCount)
	}
	printSummary(stderr, st, !c.input.Offline)
	return runErr
}

// loadPortMap reads --port-map's file, when given, and returns it with
// the map and the names its loading cleaned.
func loadPortMap(path string) (*portmap.File, *portmap.Map, []string, error) {
	if path == "" {
		return nil, nil, nil, nil
	}
	f := &portmap.File{Path: path}
	m, notes, _, err := f.Reload(true)
	if err != nil {
		return nil, nil, nil, err
	}
	return f, &m, notes, nil
}

// compileFilters compiles the filter expression once per worker, before
// any socket is opened: a bad expression is a start-up error, whatever
// else is wrong.
func compileFilters(c config) ([]sink.Filter, error) {
	flts := make([]sink.Filter, c.workers)
	if c.filter == "" {
		return flts, nil
	}
	for i := range flts {
		f, err := filter.Compile(c.filter, c.snapLen)
		if err != nil {
			return nil, err
		}
		flts[i] = f
	}
	return flts, nil
}

// handleSignals makes SIGHUP rotate the files and ask for the port map to
// be read again (on reread), and SIGINT and SIGTERM stop the capture. It
// returns the function that stops it.
func handleSignals(engs engines, reread chan<- struct{}) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			if s == syscall.SIGHUP {
				engs.rotate()
				select {
				case reread <- struct{}{}:
				default: // a reread is already due
				}
				continue
			}
			engs.stop()
		}
	}()
	return func() { signal.Stop(sigs) }
}

// logCapturing says where a live capture reads and writes.
func logCapturing(logger *slog.Logger, c config, desc, file string, bufSize, workers int) {
	attrs := []any{"from", desc, "file", file, "buffer_bytes", bufSize, "workers", workers}
	if len(c.allow) > 0 {
		allow := make([]string, len(c.allow))
		for i, r := range c.allow {
			allow[i] = r.String()
		}
		attrs = append(attrs, "allow", strings.Join(allow, ","))
	}
	logger.Info("capturing", attrs...)
}
