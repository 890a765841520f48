// Command sinkd receives the NIC's encapsulated copies of sampled frames and
// writes the inner frames to pcap files, rotating them like tcpdump.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/internal/units"
	"github.com/dpcap/dpcap/metrics"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/udpsource"
	"github.com/gopacket/gopacket/layers"
)

const usage = `Usage: sinkd [flags] -w FILE

sinkd receives the encapsulated copies a SmartNIC (or 'dpcap replay') sends
to a UDP port, strips the envelope and writes the inner Ethernet frames to a
nanosecond pcap file with kernel receive timestamps.

Output (tcpdump conventions):
  -w FILE          write to FILE; "-" streams to standard output
  -s SNAPLEN       keep at most SNAPLEN bytes of each frame (default 262144)
  -c COUNT         exit after writing COUNT packets
  -C SIZE          rotate before a file exceeds SIZE millions of bytes
                   (k, m, g suffixes: KiB, MiB, GiB); names: FILE, FILE1, ...
  -G SECONDS       rotate every SECONDS, even when idle; FILE may hold
                   strftime conversions (%Y%m%d-%H%M%S)
  -W N             with -C: a ring of N files; with -G: stop after N files
  -z CMD           run "CMD FILE" on each closed file (e.g. gzip)
  SIGHUP rotates now; SIGINT/SIGTERM flush, close and print a summary.

Input:
  --port N         UDP port of the envelopes (default 3010)
  --listen ADDR    listen on ADDR only (default: all IPv6 and IPv4 addresses)
  --buffer-size N  socket receive buffer in bytes, k/m/g suffixes
                   (default 64m; forcing it needs CAP_NET_ADMIN)

Monitoring:
  --metrics-addr ADDR  serve /metrics, /healthz, /readyz (default
                       127.0.0.1:9310; "" disables)

Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on a usage or
start-up error.
`

type options struct {
	out         string
	snapLen     int
	count       uint64
	fileSize    int64
	interval    time.Duration
	fileCount   int
	postRotate  string
	port        uint16
	listen      netip.Addr
	bufferSize  int
	metricsAddr string
}

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func parseFlags(args []string) (options, error) {
	o := options{snapLen: 262144, port: 3010, bufferSize: 64 << 20, metricsAddr: "127.0.0.1:9310"}
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
	if err := fs.Parse(args); err != nil {
		return o, usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return o, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case o.out == "":
		return o, usageError{errors.New("no output: give -w FILE, or -w - for standard output")}
	case o.snapLen <= 0 || o.snapLen > 262144:
		return o, usageError{fmt.Errorf("invalid snaplen %d: want 1-262144", o.snapLen)}
	case o.fileCount < 0:
		return o, usageError{fmt.Errorf("invalid file count %d", o.fileCount)}
	case o.fileCount > 0 && o.fileSize == 0 && o.interval == 0:
		return o, usageError{errors.New("-W needs -C or -G")}
	case o.out == "-" && (o.fileSize > 0 || o.interval > 0 || o.postRotate != ""):
		return o, usageError{errors.New("-C, -G and -z need a file name, not -w -")}
	}
	return o, nil
}

func main() {
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
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	src, err := udpsource.Listen(udpsource.Config{
		Addr: o.listen, Port: o.port, BufferSize: o.bufferSize,
		SnapLen: min(o.snapLen, 65535), BatchSize: sink.DefaultBatchSize, Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	defer src.Close()
	out, err := pcapout.Open(pcapout.Options{
		Path: o.out, SnapLen: o.snapLen, LinkType: layers.LinkTypeEthernet,
		FileSize: o.fileSize, Interval: o.interval, FileCount: o.fileCount,
		PostRotate: o.postRotate, Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", err)
		return 2
	}
	eng := sink.New(sink.Config{Source: src, Output: out, Count: o.count, Stream: o.out == "-", Logger: logger})
	if o.metricsAddr != "" {
		srv, err := metrics.Listen(o.metricsAddr, metrics.NewCollector(eng.Stats, src.ReceiveBuffer(), logger), eng.Running, logger)
		if err != nil {
			out.Close()
			fmt.Fprintf(stderr, "sinkd: %v\n", err)
			return 2
		}
		defer srv.Close()
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			if s == syscall.SIGHUP {
				eng.Rotate()
				continue
			}
			eng.Stop()
		}
	}()

	logger.Info("listening", "addr", src.LocalAddr().String(), "file", out.Name(),
		"receive_buffer_bytes", src.ReceiveBuffer())
	runErr := eng.Run()
	st := eng.Stats()
	if eng.FileLimitReached() {
		fmt.Fprintf(stderr, "Maximum file limit reached: %d\n", o.fileCount)
	}
	printSummary(stderr, st)
	if runErr != nil {
		fmt.Fprintf(stderr, "sinkd: %v\n", runErr)
		return 1
	}
	return 0
}

// printSummary prints tcpdump's style of end-of-capture counts.
func printSummary(w io.Writer, s sink.Stats) {
	fmt.Fprintf(w, "%d packets captured\n", s.Written)
	fmt.Fprintf(w, "%d packets received\n", s.Received)
	if s.KernelDropsErr == nil {
		fmt.Fprintf(w, "%d packets dropped by kernel\n", s.KernelDrops)
	} else {
		fmt.Fprintf(w, "packets dropped by kernel: unknown (%v)\n", s.KernelDropsErr)
	}
	fmt.Fprintf(w, "%d packets malformed\n", s.MalformedTotal())
	if s.WriteDropped > 0 || s.WriteErrors > 0 {
		fmt.Fprintf(w, "%d packets dropped on write errors (%d failed writes)\n", s.WriteDropped, s.WriteErrors)
	}
	if s.Truncated > 0 {
		fmt.Fprintf(w, "%d packets truncated to the snap length\n", s.Truncated)
	}
}
