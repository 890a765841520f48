package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/internal/units"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/sink/output"
)

// usageTemplate is sinkd --help. {{default "NAME"}} is the default of the
// flag NAME, as its definition states it; {{outputs "SECTION"}} is the
// usage of the registered outputs (package output) of that section,
// {{inputs}} that of the registered receive paths (package capture).
const usageTemplate = `Usage: sinkd [flags] -w FILE [EXPRESSION]
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
                   own (default {{default "max-sources"}}); copies of later ones share the
                   interface "overflow", counted
  -s SNAPLEN       keep at most SNAPLEN bytes of each frame (default {{default "s"}})
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
{{outputs "Output"}}  -Z USER          after opening the input and the first file as root, run
                   as USER with no capabilities (the output directory must
                   be writable by USER for rotation); the upload spool is
                   USER's and is opened as USER
  SIGHUP rotates now and reads --port-map again (which sinkd also does
  within a second of the file changing); SIGINT/SIGTERM flush, close and
  print a summary.

Input:
{{inputs}}  --port N         UDP port of the NIC's envelopes (default {{default "port"}})
  --ports LIST     with -r and -i, envelope kinds by UDP port (default
                   {{default "ports"}});
                   a kind named gets exactly the ports given for it
                   (vxlan=4789,vxlan=8472), KIND=0 turns it off, the
                   others keep theirs; a port goes to one kind only.
                   {{greKinds}} need no port
  --listen ADDR    listen on ADDR only (default: all IPv6 and IPv4 addresses)
  --allow CIDRS    take envelopes only from these sources (comma-separated
                   prefixes); by default anyone who reaches the port can
                   put packets into the capture. A zone (fe80::1%eth1,
                   fe80::%eth1/64) also requires the arrival interface.
                   IPv4 senders match IPv4 prefixes (::ffff:192.0.2.7 is
                   taken as 192.0.2.7)
  --buffer-size N  socket receive buffer, or -i's ring, in bytes with
                   k/m/g suffixes (default {{default "buffer-size"}}; forcing a socket's needs
                   CAP_NET_ADMIN); with --workers, each worker's
  --workers N      receive on N sockets (UDP: one SO_REUSEPORT group; -i:
                   one PACKET_FANOUT group), each with a thread and a set
                   of files of its own, FILE-wK.ext (K = 0..N-1; merge
                   them with mergecap). A kernel BPF program sends each
                   envelope to a worker by the inner frame's addresses and
                   ports, so a flow's copies (both directions) stay on one
                   worker, in order. Default {{default "workers"}}: one socket, FILE as given.
                   Excludes -r, -w - and -c; -W and --keep count each
                   worker's files
{{outputs ""}}
Wireshark: installed in Wireshark's extcap folder (make install-extcap),
sinkd is the interface "dpcap" in Wireshark and tshark: a live view of the
decapsulated frames ('tshark -i dpcap').

Monitoring:
  --metrics-addr ADDR  serve /metrics, /healthz, /readyz (default
                       {{default "metrics-addr"}}, none with -r; "" disables)
  When the kernel discards UDP datagrams (Udp6InErrors and the like, also
  exported) while the socket receives nothing, sinkd logs once that the
  envelopes need 'sinkd -i IFACE'.

Exit status: 0 on a clean stop, 1 on a runtime failure, 2 on a usage or
start-up error.
`

// maxWorkers bounds --workers: one socket, thread and set of files each.
const maxWorkers = 64

// config is sinkd's command line, parsed and checked. Making it does no
// I/O: files, sockets and the port map are opened by run.
type config struct {
	out        string
	format     pcapout.Format
	split      bool
	mapPath    string // --port-map, read by run
	maxSources int
	filter     string
	allow      []sink.AllowRule
	runAs      string
	snapLen    int
	count      uint64
	fileSize   int64
	interval   time.Duration
	fileCount  int
	keep       int
	// input is the receive path the flags select (package capture) and
	// target the value of its flag: -r's file, -i's interface.
	input  capture.Kind
	target string
	// targets are the receive paths' flags as given, by flag name.
	targets    map[string]*string
	port       uint16
	ports      decap.Ports
	listen     netip.Addr
	bufferSize int
	// metricsAddr is --metrics-addr; empty with -r unless given.
	metricsAddr string
	workers     int
	// outputs are the outputs the command line asks for: -z, --upload.
	outputs output.Config

	// portList, formatName and splitBy are --ports, -F and --split-by as
	// given, interpreted by check.
	portList, formatName, splitBy string
}

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// defineFlags defines sinkd's flags on fs, and those of every registered
// output, to be parsed into c. Each default is stated once, here, and is
// what --help shows.
func defineFlags(fs *flag.FlagSet, c *config) output.Config {
	fs.StringVar(&c.out, "w", "", "")
	fs.IntVar(&c.snapLen, "s", capture.MaxSnapLen, "")
	fs.Uint64Var(&c.count, "c", 0, "")
	fs.Func("C", "", func(v string) (err error) {
		// tcpdump's -C counts in millions of bytes.
		c.fileSize, err = units.ParseBytes(v, 1_000_000, math.MaxInt64/2, false)
		return err
	})
	fs.Func("G", "", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("invalid rotation interval %q: want a positive number of seconds", v)
		}
		c.interval = time.Duration(n) * time.Second
		return nil
	})
	fs.IntVar(&c.fileCount, "W", 0, "")
	fs.IntVar(&c.keep, "keep", 0, "")
	fs.StringVar(&c.runAs, "Z", "", "")
	textVar(fs, "port", strconv.Itoa(decap.DefaultNICPort), func(v string) error {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid port %q: want 1-65535", v)
		}
		c.port = uint16(n)
		return nil
	})
	fs.Func("listen", "", func(v string) (err error) {
		if c.listen, err = netip.ParseAddr(v); err != nil {
			return fmt.Errorf("invalid listen address %q", v)
		}
		return nil
	})
	textVar(fs, "buffer-size", "64m", func(v string) error {
		n, err := units.ParseBytes(v, 1, math.MaxInt32, true)
		c.bufferSize = int(n)
		return err
	})
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9310", "")
	textVar(fs, "workers", "1", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxWorkers {
			return fmt.Errorf("invalid --workers %q: want 1-%d", v, maxWorkers)
		}
		c.workers = n
		return nil
	})
	c.targets = map[string]*string{}
	for _, k := range capture.Kinds() {
		if k.Flag != "" {
			c.targets[k.Flag] = fs.String(k.Flag, "", "")
		}
	}
	c.ports = decap.DefaultPorts()
	textVar(fs, "ports", decap.FormatPorts(c.ports), func(v string) error {
		c.portList = v
		return nil
	})
	fs.Func("allow", "", func(v string) error {
		rules, err := sink.ParseAllow(v)
		c.allow = append(c.allow, rules...)
		return err
	})
	fs.StringVar(&c.formatName, "F", "", "")
	fs.StringVar(&c.splitBy, "split-by", "", "")
	fs.StringVar(&c.mapPath, "port-map", "", "")
	textVar(fs, "max-sources", strconv.Itoa(sink.DefaultMaxSources), func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1<<20 {
			return fmt.Errorf("invalid --max-sources %q: want 1-%d", v, 1<<20)
		}
		c.maxSources = n
		return nil
	})
	return output.Define(fs)
}

// parseFlags parses and checks sinkd's command line. It does no I/O.
func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	outputs := defineFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return c, usageError{err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := c.check(set); err != nil {
		return c, usageError{err}
	}
	c.filter = strings.Join(fs.Args(), " ")
	var err error
	if c.outputs, err = outputs.Check(c.out, set); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

// check interprets and checks the flags once parsed; set names those
// given.
func (c *config) check(set map[string]bool) error {
	var given []string
	for _, k := range capture.Kinds() {
		if k.Flag != "" && *c.targets[k.Flag] != "" {
			given = append(given, "-"+k.Flag)
		}
	}
	if len(given) > 1 {
		return errors.New(strings.Join(given, " and ") + " exclude each other")
	}
	var err error
	if c.input, c.target, err = capture.Select(func(flag string) (string, bool) { return *c.targets[flag], *c.targets[flag] != "" }); err != nil {
		return err
	}
	offline, socket := c.input.Offline, c.input.Flag == ""
	if set["port"] {
		c.ports[decap.KindNIC] = []uint16{c.port}
	}
	portList := ""
	if set["ports"] {
		portList = c.portList
	}
	if !socket {
		// The socket takes the NIC's envelopes on --port alone: no
		// other kind's port can clash with it.
		if err := decap.ParsePorts(portList, c.ports); err != nil {
			return fmt.Errorf("--ports: %w", err)
		}
	}
	switch {
	case c.formatName != "":
		f, err := pcapout.ParseFormat(c.formatName)
		if err != nil {
			return err
		}
		c.format = f
	case strings.HasSuffix(c.out, ".pcapng"):
		c.format = pcapout.FormatPcapng
	}
	switch c.splitBy {
	case "":
	case "source", "port":
		c.split = true
	default:
		return fmt.Errorf("invalid --split-by %q: want source (or port)", c.splitBy)
	}
	if offline && !set["metrics-addr"] {
		c.metricsAddr = "" // a conversion is over before anyone scrapes
	}
	switch {
	case c.out == "":
		return errors.New("no output: give -w FILE, or -w - for standard output")
	case c.snapLen <= 0 || c.snapLen > capture.MaxSnapLen:
		return fmt.Errorf("invalid snaplen %d: want 1-%d", c.snapLen, capture.MaxSnapLen)
	case c.fileCount < 0:
		return fmt.Errorf("invalid file count %d", c.fileCount)
	case c.fileCount > 0 && c.fileSize == 0 && c.interval == 0:
		return errors.New("-W needs -C or -G")
	case c.keep < 0:
		return fmt.Errorf("invalid --keep %d", c.keep)
	case c.keep > 0 && c.fileCount > 0:
		return errors.New("--keep and -W exclude each other: -G 300 --keep 288 keeps a day of 5-minute files")
	case c.out == "-" && (c.fileSize > 0 || c.interval > 0 || c.split || c.keep > 0):
		return errors.New("-C, -G, -z, --keep and --split-by need a file name, not -w -")
	case offline && c.interval > 0:
		return errors.New("-G rotates on the clock, which a file conversion does not follow; use -C")
	case offline && c.target != "-" && c.target == c.out:
		// "-" is standard input for -r and standard output for -w.
		return errors.New("-r and -w name the same file")
	case portList != "" && socket:
		return errors.New("--ports applies to -r and -i; the UDP socket takes the NIC's envelopes on --port")
	case offline && sink.Zoned(c.allow):
		return errors.New("--allow zones name arrival interfaces, which a capture file does not record")
	case set["listen"] && !socket:
		return errors.New("--listen applies to the UDP socket, not to -r or -i")
	case c.workers > 1 && offline:
		return errors.New("--workers applies to the UDP socket and -i; -r converts one file")
	case c.workers > 1 && c.out == "-":
		return errors.New("--workers N writes a set of files per worker: give -w FILE, not -w -")
	case c.workers > 1 && c.count > 0:
		return errors.New("-c counts one capture: it excludes --workers N > 1")
	}
	return nil
}

// textValue is a flag parsed by set whose default is def, as the user
// writes it.
type textValue struct {
	def string
	set func(string) error
}

func (v textValue) String() string     { return v.def }
func (v textValue) Set(s string) error { return v.set(s) }

// textVar defines a flag parsed by set, with the default def, which set
// parses now: the default is stated once, the way a user writes it.
func textVar(fs *flag.FlagSet, name, def string, set func(string) error) {
	if err := set(def); err != nil {
		panic(fmt.Sprintf("flag --%s: default %q: %v", name, def, err))
	}
	fs.Var(textValue{def, set}, name, "")
}

// defaultOf returns f's default the way --help and README.md write it:
// durations without their zero parts (1m, not 1m0s).
func defaultOf(f *flag.Flag) string {
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().(time.Duration); ok {
			d := f.DefValue
			if s, ok := strings.CutSuffix(d, "m0s"); ok {
				d = s + "m"
			}
			if s, ok := strings.CutSuffix(d, "h0m"); ok {
				d = s + "h"
			}
			return d
		}
	}
	return f.DefValue
}

// placeholder is {{NAME}} or {{NAME "ARG"}} in the usage texts.
var placeholder = regexp.MustCompile(`\{\{(\w+)(?: "([^"]*)")?\}\}`)

// usage renders sinkd --help: the defaults and the outputs' usage come
// from their flag definitions. (Not text/template: its reflection would
// keep every method of every type in the binary, 10 MB more.)
func usage() string {
	fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
	defineFlags(fs, &config{})
	var funcs map[string]func(string) string
	expand := func(text string) string {
		return placeholder.ReplaceAllStringFunc(text, func(p string) string {
			m := placeholder.FindStringSubmatch(p)
			f, ok := funcs[m[1]]
			if !ok {
				panic("sinkd --help: unknown " + p)
			}
			return f(m[2])
		})
	}
	funcs = map[string]func(string) string{
		"default": func(name string) string {
			f := fs.Lookup(name)
			if f == nil {
				panic("sinkd --help: no flag " + name)
			}
			return defaultOf(f)
		},
		"greKinds": func(string) string { return strings.Join(decap.KindNames(decap.GRE), ", ") },
		"inputs": func(string) string {
			var b strings.Builder
			for _, k := range capture.Kinds() {
				b.WriteString(k.Usage)
			}
			return b.String()
		},
		"outputs": func(section string) string {
			var b strings.Builder
			for _, k := range output.Kinds() {
				if k.Section == section {
					b.WriteString(expand(k.Usage))
				}
			}
			return b.String()
		},
	}
	return expand(usageTemplate)
}
