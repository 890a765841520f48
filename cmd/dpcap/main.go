// Command dpcap controls hardware-offloaded capture and tests sink paths.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/termtext"
	"github.com/dpcap/dpcap/replay"
)

const usage = `Usage: dpcap COMMAND [flags]

Commands:
  serve    hold the ports and their capture rules; serve the API below
  start    start capture on ports (--dry-run prints the program)
  stop     stop capture on every port
  status   show the capture, its ports, tags and counters
  capture  one command: start a capture for a while, write its packets
           from the sink's live stream, stop it; 'capture start', 'capture
           stop' and 'capture status' are start, stop and status
  fetch    get a port's packets of a time window back from the files of
           one or many sinks (s3:// or local directories), merged in order
  watch    stream a sink's frames live (sinkd --live), into a file or
           Wireshark, reconnecting when the sink restarts
  replay   send a capture file's frames to a sink, wrapped as the NIC wraps
           its copies (Ether | IPv6 | UDP, checksum 0 | frame)

Global flags, before or after the command:
  --socket PATH    dpcap serve's API socket (serve, start, stop, status, capture)
  -o FORMAT        table, json or yaml (start, status)

Run 'dpcap COMMAND --help' for a command's flags.
`

const replayUsage = `Usage: dpcap replay --sink ADDR:PORT [flags] FILE

Sends each Ethernet frame of FILE (pcap or pcapng; "-" for standard input)
to the sink as one UDP datagram, as the NIC's sample-and-encap rule does:
zero UDP checksum over IPv6, flow label 0, hop limit 64. Use it to test the
path to a sink (reachability, MTU, firewall) before turning on hardware
capture.

Flags:
  --sink ADDR:PORT   where sinkd listens, e.g. [2001:db8::1]:3010
  --udp-src-port N   UDP source port (default: any)
  --pps RATE         packets per second (default: as fast as possible)
  --loop N           send the file N times; 0 repeats until interrupted
                     (default 1)
  --count N          stop after N packets
  --tag N            put port tag N (1-1048575) in the IPv6 flow label, as
                     dpcap's per-port templates do

Over IPv4, a sink where nothing listens answers with ICMP port unreachable,
which replay reports, waiting 0.2 s after the last packet for it, and then
exits 1. Over IPv6 it cannot: a host drops zero-checksum datagrams for a
port nobody listens on before it looks the port up, as it would the NIC's
copies.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// globalFlags are the flags several commands share, which may also come
// before the command (dpcap -o json status), as kubectl and dpservice-cli
// take them; each takes a value.
var globalFlags = []string{"socket", "o"}

// commandFirst moves the global flags given before the command after it,
// where the command's own flag set parses them (and refuses one it does
// not take).
func commandFirst(args []string) ([]string, error) {
	var globals []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !slices.Contains(globalFlags, name) {
			if len(globals) == 0 && (name == "h" || name == "help") {
				return args, nil
			}
			return nil, fmt.Errorf("unknown flag %s before the command (global flags: --socket, -o)", args[0])
		}
		n := 1
		if !hasValue {
			if len(args) < 2 {
				return nil, fmt.Errorf("flag needs an argument: %s", args[0])
			}
			n = 2
		}
		globals, args = append(globals, args[:n]...), args[n:]
	}
	if len(args) == 0 {
		if len(globals) > 0 {
			return nil, errors.New("no command after the flags")
		}
		return args, nil
	}
	return append(append([]string{args[0]}, globals...), args[1:]...), nil
}

// seedSpelling makes dpservice-cli's "capture start", "capture stop" and
// "capture status" dpcap's start, stop and status, so that old scripts
// carry over; any other "capture" is dpcap capture.
func seedSpelling(args []string) []string {
	if len(args) < 2 || args[0] != "capture" {
		return args
	}
	rest, err := commandFirst(args[1:])
	if err != nil || len(rest) == 0 || !slices.Contains([]string{"start", "stop", "status"}, rest[0]) {
		return args
	}
	return rest
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if isExtcap(args) {
		return runExtcap(args, stdout, stderr)
	}
	args, err := commandFirst(args)
	if err != nil {
		fmt.Fprintf(stderr, "dpcap: %v (see dpcap --help)\n", err)
		return 2
	}
	args = seedSpelling(args)
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "replay":
		return runReplay(args[1:], stdout, stderr)
	}
	if cmd, ok := commands[args[0]]; ok {
		err := cmd(args[1:], stdout, stderr)
		if err == nil {
			return 0
		}
		// Errors quote names from dp-service, the daemon and flags.
		msg := termtext.Escape(err.Error())
		var ue usageErr
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "dpcap %s: %s (see dpcap %s --help)\n", args[0], msg, args[0])
			return 2
		}
		fmt.Fprintf(stderr, "dpcap %s: %s\n", args[0], msg)
		// A fetch ended by a signal exits as shells expect (130 for SIGINT).
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	if slices.Contains(optional, args[0]) {
		fmt.Fprintf(stderr, "dpcap %s: this dpcap was built without %s (-tags minimal, as make demo builds it); 'make build' builds it\n", args[0], args[0])
		return 1
	}
	fmt.Fprintf(stderr, "dpcap: unknown command %q (see dpcap --help)\n", args[0])
	return 2
}

// commands are dpcap's subcommands but replay and help. A command that a
// build may leave out with what it needs (fetch and its S3 client, under
// -tags minimal) adds itself from its file's init and is named in optional.
var commands = map[string]func([]string, io.Writer, io.Writer) error{
	"serve": runServe, "start": runStart, "stop": runStop, "status": runStatus,
}

// optional are the commands a build may leave out.
var optional = []string{"fetch", "watch", "capture"}

func runReplay(args []string, stdout, stderr io.Writer) int {
	var (
		cfg  replay.Config
		sink string
	)
	fs := flag.NewFlagSet("dpcap replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&sink, "sink", "", "")
	fs.Func("udp-src-port", "", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid port %q: want 1-65535", v)
		}
		cfg.SrcPort = uint16(n)
		return nil
	})
	fs.Float64Var(&cfg.PPS, "pps", 0, "")
	fs.IntVar(&cfg.Loops, "loop", 1, "")
	fs.Uint64Var(&cfg.Count, "count", 0, "")
	fs.Func("tag", "", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > decap.MaxFlowLabel {
			return fmt.Errorf("invalid tag %q: want 1-%d", v, decap.MaxFlowLabel)
		}
		cfg.Tag = uint32(n)
		return nil
	})
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, replayUsage)
			return 0
		}
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "dpcap replay: %v (see dpcap replay --help)\n", err)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return fail(err)
	}
	switch {
	case sink == "":
		return fail(errors.New("no sink: give --sink ADDR:PORT"))
	case fs.NArg() != 1:
		return fail(errors.New("give exactly one capture file"))
	case cfg.PPS < 0:
		return fail(fmt.Errorf("invalid rate %v", cfg.PPS))
	case cfg.Loops < 0:
		return fail(fmt.Errorf("invalid loop count %d", cfg.Loops))
	}
	var err error
	if cfg.Sink, err = netip.ParseAddrPort(sink); err != nil || cfg.Sink.Port() == 0 {
		return fail(fmt.Errorf("invalid sink %q: want ADDR:PORT, e.g. [::1]:3010", sink))
	}
	file := fs.Arg(0)
	open := func() (io.ReadCloser, error) {
		if file == "-" {
			return io.NopCloser(os.Stdin), nil
		}
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", file, errors.Unwrap(err))
		}
		return f, nil
	}
	if file == "-" && cfg.Loops != 1 {
		return fail(errors.New("--loop needs a file, not standard input"))
	}
	if _, err := os.Stat(file); file != "-" && err != nil {
		return fail(fmt.Errorf("open %s: %w", file, errors.Unwrap(err)))
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := replay.Send(ctx, cfg, open)
	rate := 0.0
	if s := st.Elapsed.Seconds(); s > 0 {
		rate = float64(st.Sent) / s
	}
	fmt.Fprintf(stderr, "sent %d packets (%d bytes of frames) to %s in %.3fs (%.0f pps)\n",
		st.Sent, st.Bytes, cfg.Sink, st.Elapsed.Seconds(), rate)
	if st.Skipped > 0 {
		fmt.Fprintf(stderr, "skipped %d frames: larger than a datagram or cut short in the file\n", st.Skipped)
	}
	if st.Refused > 0 {
		// Hosts rate-limit ICMP: a count of reports, not of datagrams lost.
		fmt.Fprintf(stderr, "dpcap replay: the sink refused %d of the %d packets sent (ICMP port unreachable, rate-limited: more may be lost): is sinkd listening on %s? (sinkd -i binds no port: it captures them all the same)\n",
			st.Refused, st.Sent, cfg.Sink)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dpcap replay: %v\n", err)
		return 1
	}
	if st.Refused > 0 {
		return 1
	}
	return 0
}
