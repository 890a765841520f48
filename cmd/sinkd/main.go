// Command sinkd receives the NIC's encapsulated copies of sampled frames and
// writes the inner frames to pcap files, rotating them like tcpdump.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/afpacket"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/capture/steer"
	"github.com/dpcap/dpcap/capture/udp"
	"github.com/dpcap/dpcap/capture/udpstat"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/internal/pipewatch"
	"github.com/dpcap/dpcap/internal/privdrop"
	"github.com/dpcap/dpcap/internal/units"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/sink/metrics"
	"github.com/dpcap/dpcap/sink/postrotate"
)

var usage = `Usage: sinkd [flags] -w FILE [EXPRESSION]
       sinkd -i IFACE [flags] -w FILE [EXPRESSION]
       sinkd -r IN.pcap [flags] -w FILE [EXPRESSION]

sinkd receives the encapsulated copies a SmartNIC (or 'dpcap replay') sends
to a UDP port, strips the envelope and writes the inner Ethernet frames to a
nanosecond pcap file with kernel receive timestamps.

With -i it captures on an interface instead (AF_PACKET): for envelopes whose
length fields the NIC left unset, which the kernel drops before any socket
sees them, for envelopes addressed to another IP, and for the other
envelope kinds (--ports). With -r it converts a capture file (pcap or
pcapng, any link type tcpdump writes, "-" for stdin), replacing
'editcap -C 62', keeping the original timestamps.

EXPRESSION is a tcpdump filter (pcap-filter(7)) applied to the inner frames,
e.g. 'tcp port 443' or 'vlan and ip6'; rejected frames are counted.

Output (tcpdump conventions):
  -w FILE          write to FILE; "-" streams to standard output (a
                   reader that goes away ends the capture at once, with
                   the summary, exit 0)
  -F FORMAT        pcap (default) or pcapng, which a .pcapng name also
                   selects: one interface per source (a port of the map,
                   else sender and tag), with statistics when each file
                   closes
  --split-by source  one set of files per source (FILE-NAME.ext); "port"
                   is the same
  --port-map FILE  name the ports copies come from, by tag or by their
                   inner addresses, from the JSON map dpcap publishes
                   (docs/PORTMAP.md), read again when it changes; a tag
                   it does not list names no port (counted)
  --max-sources N  at most N sources get an interface (or files) of their
                   own (default 256); copies of later ones share the
                   interface "overflow", counted
  -s SNAPLEN       keep at most SNAPLEN bytes of each frame (default ` + strconv.Itoa(capture.MaxSnapLen) + `)
  -c COUNT         exit after writing COUNT packets
  -C SIZE          rotate before a file exceeds SIZE millions of bytes
                   (k, m, g suffixes: KiB, MiB, GiB); names: FILE, FILE1, ...
  -G SECONDS       rotate every SECONDS, even when idle; FILE may hold
                   strftime conversions (%Y%m%d-%H%M%S)
  -W N             with -C: a ring of N files; with -G: stop after N files
  --keep N         capture on, keeping only the newest N files (the one
                   being written included, an earlier run's under the
                   same name pattern and what -z gzip made of them
                   counted): a ring for -G, or for -C with growing
                   numbers; excludes -W
  -z CMD           run "CMD FILE" on each closed file (e.g. gzip)
  --hook-jobs N    run at most N -z commands at once (default 4); files
                   closing meanwhile wait in a queue (1024 at most; past
                   it a file gets no command, counted and logged)
  --hook-wait DUR  at exit, wait this long for -z commands (default 10s),
                   then leave those still running to finish on their own
  -Z USER          after opening the input and the first file as root, run
                   as USER with no capabilities (the output directory must
                   be writable by USER for rotation); the upload spool is
                   USER's and is opened as USER
  SIGHUP rotates now and reads --port-map again (which sinkd also does
  within a second of the file changing); SIGINT/SIGTERM flush, close and
  print a summary.

Input:
  -r FILE          read envelopes from a capture file
  -i IFACE         capture envelopes on an interface (needs CAP_NET_RAW)
  --port N         UDP port of the NIC's envelopes (default ` + strconv.Itoa(decap.DefaultNICPort) + `)
  --ports LIST     with -r and -i, envelope kinds by UDP port (default
                   ` + decap.FormatPorts(decap.DefaultPorts()) + `;
                   KIND=0 turns one off); ` + strings.Join(decap.KindNames(decap.GRE), ", ") + `
                   need no port
  --listen ADDR    listen on ADDR only (default: all IPv6 and IPv4 addresses)
  --allow CIDRS    take envelopes only from these sources (comma-separated
                   prefixes); by default anyone who reaches the port can
                   put packets into the capture. A zone (fe80::1%eth1,
                   fe80::%eth1/64) also requires the arrival interface.
                   IPv4 senders match IPv4 prefixes (::ffff:192.0.2.7 is
                   taken as 192.0.2.7)
  --buffer-size N  socket receive buffer, or -i's ring, in bytes with
                   k/m/g suffixes (default 64m; forcing a socket's needs
                   CAP_NET_ADMIN); with --workers, each worker's
  --workers N      receive on N sockets (UDP: one SO_REUSEPORT group; -i:
                   one PACKET_FANOUT group), each with a thread and a set
                   of files of its own, FILE-wK.ext (K = 0..N-1; merge
                   them with mergecap). A kernel BPF program sends each
                   envelope to a worker by the inner frame's addresses and
                   ports, so a flow's copies (both directions) stay on one
                   worker, in order. Default 1: one socket, FILE as given.
                   Excludes -r, -w - and -c; -W and --keep count each
                   worker's files
` + uploadUsage + `
Wireshark: installed in Wireshark's extcap folder (make install-extcap),
sinkd is the interface "dpcap" in Wireshark and tshark: a live view of the
decapsulated frames ('tshark -i dpcap').

Monitoring:
  --metrics-addr ADDR  serve /metrics, /healthz, /readyz (default
                       127.0.0.1:9310, none with -r; "" disables)
  When the kernel discards UDP datagrams (Udp6InErrors and the like, also
  exported) while the socket receives nothing, sinkd logs once that the
  envelopes need 'sinkd -i IFACE'.

Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on a usage or
start-up error.
`

// maxWorkers bounds --workers: one socket, thread and set of files each.
const maxWorkers = 64

// mapCheckInterval is how often --port-map's file is looked at for a new
// map.
const mapCheckInterval = time.Second

// udpWatchInterval is how often the kernel's UDP error counters are
// compared with what sinkd receives.
const udpWatchInterval = time.Second

type options struct {
	out         string
	format      pcapout.Format
	split       bool
	portMap     *portmap.Map
	mapFile     *portmap.File // where portMap came from, read again when it changes
	maxSources  int
	mapNotes    []string // names the port map's loading cleaned
	filter      string
	allow       []sink.AllowRule
	runAs       string
	snapLen     int
	count       uint64
	fileSize    int64
	interval    time.Duration
	fileCount   int
	postRotate  string
	keep        int
	hookJobs    int
	hookWait    time.Duration
	readFile    string
	iface       string
	port        uint16
	ports       map[decap.Kind]uint16
	listen      netip.Addr
	bufferSize  int
	metricsAddr string
	workers     int
	upload      uploadFlags
}

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func parseFlags(args []string) (options, error) {
	o := options{workers: 1, snapLen: capture.MaxSnapLen, port: decap.DefaultNICPort, hookJobs: postrotate.DefaultJobs, hookWait: 10 * time.Second, bufferSize: 64 << 20, metricsAddr: "127.0.0.1:9310", ports: decap.DefaultPorts()}
	fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.out, "w", "", "")
	fs.IntVar(&o.snapLen, "s", o.snapLen, "")
	fs.Uint64Var(&o.count, "c", 0, "")
	fs.Func("C", "", func(v string) (err error) {
		// tcpdump's -C counts in millions of bytes.
		o.fileSize, err = units.ParseBytes(v, 1_000_000, math.MaxInt64/2, false)
		return err
	})
	fs.Func("G", "", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("invalid rotation interval %q: want a positive number of seconds", v)
		}
		o.interval = time.Duration(n) * time.Second
		return nil
	})
	fs.IntVar(&o.fileCount, "W", 0, "")
	fs.StringVar(&o.postRotate, "z", "", "")
	fs.IntVar(&o.keep, "keep", 0, "")
	fs.IntVar(&o.hookJobs, "hook-jobs", o.hookJobs, "")
	fs.DurationVar(&o.hookWait, "hook-wait", o.hookWait, "")
	fs.StringVar(&o.runAs, "Z", "", "")
	fs.Func("port", "", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid port %q: want 1-65535", v)
		}
		o.port = uint16(n)
		return nil
	})
	fs.Func("listen", "", func(v string) (err error) {
		if o.listen, err = netip.ParseAddr(v); err != nil {
			return fmt.Errorf("invalid listen address %q", v)
		}
		return nil
	})
	fs.Func("buffer-size", "", func(v string) error {
		n, err := units.ParseBytes(v, 1, math.MaxInt32, true)
		o.bufferSize = int(n)
		return err
	})
	fs.StringVar(&o.metricsAddr, "metrics-addr", o.metricsAddr, "")
	fs.Func("workers", "", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWorkers {
			return fmt.Errorf("invalid --workers %q: want 1-%d", v, maxWorkers)
		}
		o.workers = n
		return nil
	})
	fs.StringVar(&o.readFile, "r", "", "")
	fs.StringVar(&o.iface, "i", "", "")
	var portList, format, splitBy, portMap string
	fs.StringVar(&portList, "ports", "", "")
	fs.Func("allow", "", func(v string) error {
		rules, err := sink.ParseAllow(v)
		o.allow = append(o.allow, rules...)
		return err
	})
	fs.StringVar(&format, "F", "", "")
	fs.StringVar(&splitBy, "split-by", "", "")
	fs.StringVar(&portMap, "port-map", "", "")
	fs.Func("max-sources", "", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1<<20 {
			return fmt.Errorf("invalid --max-sources %q: want 1-%d", v, 1<<20)
		}
		o.maxSources = n
		return nil
	})
	o.upload.register(fs)
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["port"] {
		o.ports[decap.KindNIC] = o.port
	}
	if portList != "" {
		if err := decap.ParsePorts(portList, o.ports); err != nil {
			return o, usageError{err}
		}
	}
	switch {
	case format != "":
		f, err := pcapout.ParseFormat(format)
		if err != nil {
			return o, usageError{err}
		}
		o.format = f
	case strings.HasSuffix(o.out, ".pcapng"):
		o.format = pcapout.FormatPcapng
	}
	switch splitBy {
	case "":
	case "source", "port":
		o.split = true
	default:
		return o, usageError{fmt.Errorf("invalid --split-by %q: want source (or port)", splitBy)}
	}
	if portMap != "" {
		o.mapFile = &portmap.File{Path: portMap}
		m, notes, _, err := o.mapFile.Reload(true)
		if err != nil {
			return o, usageError{err}
		}
		o.portMap, o.mapNotes = &m, notes
	}
	o.filter = strings.Join(fs.Args(), " ")
	if o.readFile != "" && !set["metrics-addr"] {
		o.metricsAddr = "" // a conversion is over before anyone scrapes
	}
	switch {
	case o.out == "":
		return o, usageError{errors.New("no output: give -w FILE, or -w - for standard output")}
	case o.snapLen <= 0 || o.snapLen > capture.MaxSnapLen:
		return o, usageError{fmt.Errorf("invalid snaplen %d: want 1-%d", o.snapLen, capture.MaxSnapLen)}
	case o.fileCount < 0:
		return o, usageError{fmt.Errorf("invalid file count %d", o.fileCount)}
	case o.fileCount > 0 && o.fileSize == 0 && o.interval == 0:
		return o, usageError{errors.New("-W needs -C or -G")}
	case o.keep < 0:
		return o, usageError{fmt.Errorf("invalid --keep %d", o.keep)}
	case o.keep > 0 && o.fileCount > 0:
		return o, usageError{errors.New("--keep and -W exclude each other: -G 300 --keep 288 keeps a day of 5-minute files")}
	case o.hookJobs <= 0 || o.hookWait < 0:
		return o, usageError{errors.New("--hook-jobs must be positive and --hook-wait not negative")}
	case o.out == "-" && (o.fileSize > 0 || o.interval > 0 || o.postRotate != "" || o.split || o.keep > 0):
		return o, usageError{errors.New("-C, -G, -z, --keep and --split-by need a file name, not -w -")}
	case o.readFile != "" && o.iface != "":
		return o, usageError{errors.New("-r and -i exclude each other")}
	case o.readFile != "" && o.interval > 0:
		return o, usageError{errors.New("-G rotates on the clock, which a file conversion does not follow; use -C")}
	case o.readFile != "" && o.readFile != "-" && o.readFile == o.out:
		// "-" is standard input for -r and standard output for -w.
		return o, usageError{errors.New("-r and -w name the same file")}
	case portList != "" && o.readFile == "" && o.iface == "":
		return o, usageError{errors.New("--ports applies to -r and -i; the UDP socket takes the NIC's envelopes on --port")}
	case o.readFile != "" && sink.Zoned(o.allow):
		return o, usageError{errors.New("--allow zones name arrival interfaces, which a capture file does not record")}
	case set["listen"] && (o.readFile != "" || o.iface != ""):
		return o, usageError{errors.New("--listen applies to the UDP socket, not to -r or -i")}
	case o.workers > 1 && o.readFile != "":
		return o, usageError{errors.New("--workers applies to the UDP socket and -i; -r converts one file")}
	case o.workers > 1 && o.out == "-":
		return o, usageError{errors.New("--workers N writes a set of files per worker: give -w FILE, not -w -")}
	case o.workers > 1 && o.count > 0:
		return o, usageError{errors.New("-c counts one capture: it excludes --workers N > 1")}
	}
	if err := o.upload.check(o.out, set); err != nil {
		return o, usageError{err}
	}
	return o, nil
}

func main() {
	if isExtcap(os.Args[1:]) {
		os.Exit(runExtcap(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			io.WriteString(os.Stdout, usage)
			return 0
		}
	}
	o, err := parseFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "sinkd: %v (see sinkd --help)\n", err)
		return 2
	}
	// A filter per worker, compiled before any socket is opened: a bad
	// expression is a usage error, whatever else is wrong.
	flts := make([]sink.Filter, o.workers)
	for i := range flts {
		if o.filter == "" {
			break
		}
		f, err := filter.Compile(o.filter, o.snapLen)
		if err != nil {
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		flts[i] = f
	}
	if err := checkFileLimit(o); err != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	for _, n := range o.mapNotes {
		logger.Warn("port map: " + n)
	}
	// A reader of -w - that goes away ('sinkd -w - | head') ends the
	// capture with a summary, as with a fifo, instead of killing sinkd:
	// writes get EPIPE once SIGPIPE is caught. (Caught, not ignored, so
	// that -z commands start with the default action.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	srcs, bufSize, desc, err := openSources(o, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	for _, src := range srcs {
		defer src.Close()
	}
	var runAs *privdrop.User
	if o.runAs != "" {
		u, err := privdrop.Lookup(o.runAs)
		if err != nil {
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		runAs = &u
	}
	outs, err := openOutputs(o, srcs, runAs, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	out := outputs(outs)
	var hooks *postrotate.Runner
	var hook func(pcapout.ClosedFile)
	if o.postRotate != "" {
		hooks = postrotate.New(postrotate.Config{Command: o.postRotate, Jobs: o.hookJobs, Logger: logger})
		hook = hooks.Handle
	}
	var up shipper
	if o.upload.url != "" {
		// -z gets each file from the upload, once the spool has a copy
		// of its own (docs/UPLOAD.md).
		if up, err = o.upload.start(logger, hook); err != nil {
			out.Close()
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		out.OnClose(up.Handle)
	} else if hooks != nil {
		out.OnClose(hooks.Handle)
	}
	engs := make(engines, len(srcs))
	for i, src := range srcs {
		engs[i] = sink.New(sink.Config{
			Source: src, Decoder: newDecoder(o), Port: o.port, Output: outs[i],
			PerSource: o.split || o.format == pcapout.FormatPcapng, MaxSources: o.maxSources, PortMap: o.portMap,
			Filter: flts[i], Allow: o.allow,
			Count: o.count, Stream: outs[i].Stream(), Logger: logger,
		})
	}
	// Metrics and the summary report the sum of the workers' snapshots,
	// each of which accounts for its packets exactly.
	stats := func() sink.Stats { return sink.Total(engs...) }
	if o.metricsAddr != "" {
		var more []prometheus.Collector
		if o.readFile == "" {
			more = append(more, metrics.NewKernelUDPCollector(udpstat.DefaultProcNet, logger))
		}
		if hooks != nil {
			more = append(more, metrics.NewHookCollector(hooks.Stats))
		}
		if up != nil {
			more = append(more, up.collector())
		}
		srv, err := metrics.Listen(o.metricsAddr, metrics.NewCollector(stats, bufSize, logger), engs.running, logger, more...)
		if err != nil {
			out.Close()
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		defer srv.Close()
	}

	if runAs != nil {
		if up != nil {
			if err := up.giveSpool(runAs.UID, runAs.GID); err != nil {
				out.Close()
				fmt.Fprintf(stderr, "sinkd: -Z %s: %v\n", o.runAs, err)
				return 2
			}
		}
		if err := runAs.Drop(); err != nil {
			out.Close()
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		if o.mapFile != nil && o.readFile == "" {
			if err := o.mapFile.Readable(); err != nil {
				// Read as root at start; said once, not as a failed
				// reread a second later.
				logger.Warn("port map cannot be read as "+o.runAs+": a new map will not be seen until it can", "file", o.mapFile.Path, "err", err)
			}
		}
	}
	if up != nil {
		// Only now, as -Z's user: nothing in the spool, which that user
		// holds, is ever read or followed as root.
		if err := up.open(); err != nil {
			out.Close()
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		out.OnOpen(up.Opened)
	}

	if o.out == "-" {
		// A reader that goes away ends the capture at once, not at the
		// next packet's write (EPIPE), which a quiet port may never send.
		ctx, stop, err := pipewatch.Watch(context.Background(), os.Stdout)
		if err != nil {
			out.Close()
			fmt.Fprintf(stderr, "sinkd: -w -: %v\n", err)
			return 2
		}
		defer stop()
		go func() {
			<-ctx.Done()
			if context.Cause(ctx) == pipewatch.ErrReaderGone {
				engs.readerGone()
			}
		}()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	reread := make(chan struct{}, 1)
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
	if o.mapFile != nil && o.readFile == "" {
		// The capture on the hypervisor changes while sinkd runs; its new
		// map is copied over the old one.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go sink.FollowPortMap(ctx, o.mapFile, mapCheckInterval, reread, engs.setPortMap, logger)
	}

	if o.readFile == "" {
		attrs := []any{"from", desc, "file", out.Name(), "buffer_bytes", bufSize, "workers", len(engs)}
		if len(o.allow) > 0 {
			allow := make([]string, len(o.allow))
			for i, r := range o.allow {
				allow[i] = r.String()
			}
			attrs = append(attrs, "allow", strings.Join(allow, ","))
		}
		logger.Info("capturing", attrs...)
	}
	if o.readFile == "" && o.iface == "" {
		// The silent sink: envelopes the kernel discards never reach the
		// socket, so only the namespace's counters can tell.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go udpstat.Watch(ctx, udpstat.DefaultProcNet, udpWatchInterval, func() uint64 { return stats().Received }, logger)
	}
	runErr := engs.run()
	st := stats()
	if hooks != nil {
		if up != nil {
			up.PassedOn()
		}
		running, notRun := hooks.Stop(o.hookWait)
		hs := hooks.Stats()
		fmt.Fprintf(stderr, "%d post-rotate commands run (%d failed, %d skipped", hs.Started, hs.Failed, hs.Skipped)
		if running > 0 || notRun > 0 {
			fmt.Fprintf(stderr, "; %d left running, %d not run at exit", running, notRun)
		}
		fmt.Fprintln(stderr, ")")
	}
	if up != nil {
		up.close(stderr, o.upload.wait, o.upload.spool)
	}
	if engs.fileLimitReached() {
		fmt.Fprintf(stderr, "Maximum file limit reached: %d\n", o.fileCount)
	}
	printSummary(stderr, st, o.readFile == "")
	if runErr != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", runErr)
		return 1
	}
	return 0
}

// output is what sinkd writes to: a pcapout.Rotator or a Split.
type output interface {
	pcapout.Output
	Name() string
	Stream() bool
}

// checkFileLimit makes sure --split-by's files, one open per source, leave
// file descriptors for everything else (the metrics server's connections
// above all).
func checkFileLimit(o options) error {
	if !o.split {
		return nil
	}
	const reserve = 64
	n := o.maxSources
	if n == 0 {
		n = sink.DefaultMaxSources
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the file descriptor limit: %w", err)
	}
	if need := uint64(n*o.workers) + 1 + reserve; lim.Cur < need {
		return fmt.Errorf("--split-by with --max-sources %d (each worker's) needs %d file descriptors, the limit is %d: raise it (ulimit -n, LimitNOFILE=) or lower --max-sources", n, need, lim.Cur)
	}
	return nil
}

// openOutputs opens each worker's output: FILE with one worker, FILE-wK.ext
// with several.
func openOutputs(o options, srcs []capture.Source, runAs *privdrop.User, logger *slog.Logger) ([]output, error) {
	var outs []output
	for i, src := range srcs {
		wo := o
		if len(srcs) > 1 {
			wo.out = workerPath(o.out, i)
		}
		out, err := openOutput(wo, src, runAs, logger)
		if err != nil {
			outputs(outs).Close()
			return nil, err
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// workerPath names worker k's files: FILE-wK before FILE's extension.
func workerPath(path string, k int) string {
	dir, base := filepath.Split(path)
	ext := ""
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base, ext = base[:i], base[i:]
	}
	return dir + base + "-w" + strconv.Itoa(k) + ext
}

// openOutput opens the capture file, or the set of files per source. Files
// go to runAs when set; the kernel's drops of src go into pcapng
// statistics.
func openOutput(o options, src capture.Source, runAs *privdrop.User, logger *slog.Logger) (output, error) {
	opts := pcapout.Options{
		Path: o.out, Format: o.format, SnapLen: o.snapLen, LinkType: layers.LinkTypeEthernet,
		Application: "dpcap sinkd", FileSize: o.fileSize, Interval: o.interval,
		FileCount: o.fileCount, Keep: o.keep, Logger: logger,
		OSDrops: func() uint64 { n, _ := src.Drops(); return n },
	}
	if runAs != nil {
		opts.Owner = &pcapout.Owner{UID: runAs.UID, GID: runAs.GID}
	}
	if o.split {
		return pcapout.NewSplit(opts)
	}
	return pcapout.Open(opts)
}

// openSources opens the input the flags name, one source per worker. It
// returns the sources, the buffer size of each and a description for the
// log.
func openSources(o options, logger *slog.Logger) ([]capture.Source, int, string, error) {
	switch {
	case o.readFile != "":
		src, err := pcapfile.OpenSource(o.readFile)
		return []capture.Source{src}, 0, o.readFile, err
	case o.iface != "":
		return openInterface(o)
	}
	cfg := udp.Config{
		Addr: o.listen, Port: o.port, BufferSize: o.bufferSize,
		SnapLen: min(o.snapLen, 65535), BatchSize: capture.DefaultBatchSize, Logger: logger,
		ArrivalInterface: sink.Zoned(o.allow),
	}
	if o.workers == 1 {
		src, err := udp.Listen(cfg)
		if err != nil {
			return nil, 0, "", err
		}
		return []capture.Source{src}, src.ReceiveBuffer(), "udp " + src.LocalAddr().String(), nil
	}
	prog, err := steer.Reuseport(o.workers)
	if err != nil {
		return nil, 0, "", err
	}
	group, err := udp.ListenGroup(cfg, o.workers, prog)
	if err != nil {
		return nil, 0, "", err
	}
	srcs := make([]capture.Source, len(group))
	for i, s := range group {
		srcs[i] = s
	}
	desc := fmt.Sprintf("udp %s (%d sockets in a SO_REUSEPORT group, steered by inner flow)", group[0].LocalAddr(), len(group))
	return srcs, group[0].ReceiveBuffer(), desc, nil
}

// openInterface opens -i's capture: one ring, or a PACKET_FANOUT group of
// o.workers steered by the NIC envelopes' inner flow (the other kinds by
// their outer addresses).
func openInterface(o options) ([]capture.Source, int, string, error) {
	cfg := afpacket.Config{Interface: o.iface, Ports: decap.UDPPorts(o.ports), BufferSize: o.bufferSize}
	desc := "interface " + o.iface + " (" + decap.FormatPorts(o.ports) + ")"
	if o.workers == 1 {
		src, err := afpacket.Open(cfg)
		return []capture.Source{src}, o.bufferSize, desc, err
	}
	prog, err := steer.Fanout(o.workers, o.ports[decap.KindNIC], steer.NetOff)
	if err != nil {
		return nil, 0, "", err
	}
	group, err := afpacket.OpenGroup(cfg, o.workers, prog)
	if err != nil {
		return nil, 0, "", err
	}
	srcs := make([]capture.Source, len(group))
	for i, s := range group {
		srcs[i] = s
	}
	return srcs, o.bufferSize, fmt.Sprintf("%s, %d rings in a PACKET_FANOUT group, steered by inner flow", desc, len(group)), nil
}

// newDecoder returns a worker's decoder: nil for socket payloads, which
// have no outer headers.
func newDecoder(o options) sink.Decoder {
	if o.readFile != "" || o.iface != "" {
		return decap.NewDecoder(o.ports)
	}
	return nil
}

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
