package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/hosts"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/termtext"
)

const (
	defaultSocket   = "/run/dpcap/dpcap.sock"
	defaultStateDir = "/var/lib/dpcap-serve"
)

// usageErr marks a command-line error: exit status 2.
type usageErr struct{ error }

// newFlags returns a flag set that reports errors instead of printing.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args, turning --help into a printed usage.
func parse(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) (help bool, err error) {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, usage)
			return true, nil
		}
	}
	if err := fs.Parse(args); err != nil {
		return false, usageErr{err}
	}
	if fs.NArg() > 0 {
		return false, usageErr{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return false, nil
}

// serveUsage is dpcap serve's help: the registered backends, each with
// its own flags, then the flags every backend takes.
func serveUsage() string {
	regs := control.Registered()
	var b strings.Builder
	for i, r := range regs {
		lead := "       dpcap serve"
		if i == 0 {
			lead = "Usage: dpcap serve"
		}
		fmt.Fprintf(&b, "%s --backend %s %s\n", lead, r.Name, r.Synopsis)
	}
	if len(regs) == 0 {
		b.WriteString("Usage: dpcap serve --backend NAME [flags]\n")
	}
	b.WriteString(serveAbout)
	b.WriteString("  --backend NAME      the backend that captures; this dpcap has:\n")
	for _, r := range regs {
		b.WriteString(indent(r.Name+": "+r.Summary, "                        ", "                          "))
	}
	if len(regs) == 0 {
		b.WriteString("                        none (built with -tags minimal)\n")
	}
	for _, r := range regs {
		b.WriteString(r.Usage)
	}
	b.WriteString(serveFlags)
	return b.String()
}

// indent wraps text at 78 columns, its first line after first, the rest
// after rest.
func indent(text, first, rest string) string {
	var b strings.Builder
	line := first
	for i, w := range strings.Fields(text) {
		if i > 0 && len(line)+1+len(w) > 78 {
			b.WriteString(line + "\n")
			line = rest + w
			continue
		}
		if i > 0 {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
	return b.String()
}

const serveAbout = `
Holds the captured ports and their rules (they die with the process), and
serves the API dpcap start, stop and status use. The active capture is saved
in the state directory and applied again when the daemon restarts; the port
tag map sinkd reads (--port-map) is published there as portmap.json.

Flags:
`

const serveFlags = `  --port NAME=PORT    a port the backend serves (repeat per port; pf0 names
                      the uplink): a Linux interface for software, a DPDK
                      port name (0000:08:00.0_representor_vf0) for dpdk.
                      The software backend without --port serves every
                      interface under its own name (dpcap start --vf tap0)
  --underlay-ip IP    this hypervisor's underlay IPv6 (the envelopes' source
                      in the rendered program; the kernel picks the real one)
  --router-mac MAC    the underlay router's MAC, the envelopes' Ethernet
                      destination: the dpdk backend refuses capture without
                      it ('ip -6 route show default' names the router, 'ip -6
                      neigh show ROUTER' its MAC); PF0's own MAC, the source,
                      is read from the port
  --socket PATH       API socket (default /run/dpcap/dpcap.sock, mode 0600);
                      a stale socket there is replaced, anything else refused
  --group NAME        let this group use the API too (socket mode 0660): its
                      members by primary or supplementary group; any other
                      peer is refused by its credentials (SO_PEERCRED,
                      SO_PEERGROUPS)
  --listen-tls ADDR   serve the API on TCP too (host:port, e.g. :9312), over
                      HTTPS with mutual TLS (TLS 1.2 or later): a client
                      without a certificate --client-ca signed is refused at
                      the handshake; the log names the client (its
                      certificate's subject) of each start and stop. There
                      is no TCP listener without TLS
  --tls-cert FILE     the server's certificate (PEM), read again when renewed
  --tls-key FILE      its key
  --client-ca FILE    the authorities (PEM) whose client certificates get in
  --state-dir DIR     where the capture, the port map and the ports' tags are
                      kept (default /var/lib/dpcap-serve): dpcap serve's alone,
                      never a directory captures are written to
  --max-duration D    the longest capture a start may ask for (default 1h): a
                      longer --for or --until, or --for 0 (no bound), is
                      refused; a start without either is bounded by it (and
                      says so). The NIC copies every frame of a captured port
                      until told to stop, so a capture someone forgot ends by
                      itself; 0 lets starts ask for no bound. The daemon
                      stops every capture at its deadline, client or not,
                      and at start-up one whose deadline passed while it was
                      down, before applying anything
`

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dpcap serve")
	backend := fs.String("backend", "software", "")
	newBackend := control.BackendFlags(fs)
	socket := fs.String("socket", defaultSocket, "")
	stateDir := fs.String("state-dir", defaultStateDir, "")
	maxDuration := fs.Duration("max-duration", time.Hour, "")
	var env control.Envelope
	envelopeFlags(fs, &env, false)
	group := fs.String("group", "", "")
	listenTLS := fs.String("listen-tls", "", "")
	tlsCert := fs.String("tls-cert", "", "")
	tlsKey := fs.String("tls-key", "", "")
	clientCA := fs.String("client-ca", "", "")
	ports := map[string]string{}
	fs.Func("port", "", func(v string) error {
		name, iface, ok := strings.Cut(v, "=")
		if !ok || name == "" || iface == "" {
			return fmt.Errorf("invalid port %q: want NAME=IFACE", v)
		}
		ports[name] = iface
		return nil
	})
	// A build without backends (-tags minimal) says so before a backend's
	// flag, which it lacks, could be called undefined.
	if len(control.Registered()) == 0 && !slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" }) {
		return errors.New("this dpcap was built without backends (-tags minimal, as make demo builds it); 'make build' builds them")
	}
	if help, err := parse(fs, args, serveUsage(), stdout); help || err != nil {
		return err
	}
	if *maxDuration < 0 {
		return usageErr{fmt.Errorf("invalid --max-duration %v: 0 (no ceiling) or more", *maxDuration)}
	}
	if (*listenTLS != "") != (*tlsCert != "" && *tlsKey != "" && *clientCA != "") {
		return usageErr{errors.New("--listen-tls needs --tls-cert, --tls-key and --client-ca, and they need it")}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	b, err := newBackend(*backend, control.Options{Ports: ports, Logger: logger})
	if errors.Is(err, control.ErrUsage) {
		return usageErr{err}
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := control.NewServer(ctx, b, control.Config{StateDir: *stateDir, Envelope: env, MaxDuration: *maxDuration, Logger: logger})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	gid := -1
	if *group != "" {
		if gid, err = control.LookupGroup(*group); err != nil {
			return usageErr{err}
		}
	}
	ln, err := control.Listen(*socket, gid)
	if err != nil {
		return err
	}
	ln = control.Guard(ln, control.Peers{GID: gid, Logger: logger})
	lns := []net.Listener{ln}
	if *listenTLS != "" {
		cfg, err := control.ServerTLS(*tlsCert, *tlsKey, *clientCA, logger)
		if err != nil {
			return err
		}
		tln, err := control.ListenTLS(*listenTLS, cfg)
		if err != nil {
			return err
		}
		lns = append(lns, tln)
	}
	logger.Info("serving", "socket", *socket, "listen_tls", *listenTLS, "backend", b.Name(), "state_dir", *stateDir)
	// Either listener failing ends both.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(lns))
	for _, l := range lns {
		go func() { errs <- srv.Serve(ctx, l) }()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

const startUsage = `Usage: dpcap start --sink-node-ip IPv6 --udp-dst-port N [flags]

Makes the NIC sample every frame the ports receive and send a copy to the
sink, each port's envelope tagged in its IPv6 flow label. All or nothing:
on any failure no port is left captured. Refused while a capture is active
(stop it first, or --replace).

Every capture ends: dpcap serve stops it at its deadline (--for, --until),
whether or not a client is there. Without either, its --max-duration
(default 1h) is the bound, and a start asking for more than that ceiling
is refused. The capture gets an id, which start and status show.

Flags:
  --sink-node-ip IP   the sink's IPv6 address
  --udp-dst-port N    the sink's UDP port (sinkd --port)
  --udp-src-port N    the envelopes' source port (the hardware ignores it)
  --vf NAMES          VF ports, comma-separated (at most 16 ports in all)
  --pf 0              capture PF0 (the uplink) too; PF1 cannot be captured
  --filter MATCH      sample only matching frames, the rest go on unsampled:
                      proto=tcp|udp,src=PREFIX,dst=PREFIX,sport=N,dport=N,ip=4|6
  --replace           stop an active capture first
  --for D             stop the capture after D (90s, 2m, 1h); 0 asks for no
                      bound, which dpcap serve refuses unless its
                      --max-duration is 0
  --until T           stop it at T: RFC 3339 (2026-11-23T10:02:00Z), a local
                      date and time (2026-11-23 10:02) or a time of today
                      (10:02), as dpcap fetch --from takes it
  --dry-run           print the program in dpdk-testpmd syntax and exit; needs
                      no daemon. Its envelopes take the addresses the daemon
                      would: --underlay-ip IP, --router-mac MAC, --pf-mac MAC
                      (refused without --dry-run: the daemon has its own);
                      its tags are the ports' first choice, which the
                      daemon's (dpcap status) are unless two names collide
  --socket PATH       dpcap serve's socket (default /run/dpcap/dpcap.sock)
  -o FORMAT           table (default), json or yaml
`

func runStart(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dpcap start")
	var req control.StartRequest
	requestFlags(fs, &req)
	fs.StringVar(&req.Filter, "filter", "", "")
	fs.BoolVar(&req.Replace, "replace", false, "")
	dryRun := fs.Bool("dry-run", false, "")
	var env control.Envelope
	envelopeFlags(fs, &env, true)
	socket := fs.String("socket", defaultSocket, "")
	format := fs.String("o", "table", "")
	hf := addHostFlags(fs)
	if help, err := parse(fs, args, startUsage+hostsHelp, stdout); help || err != nil {
		return err
	}
	many, err := hf.set(fs)
	if err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	if !*dryRun {
		if err := daemonsAddresses(fs); err != nil {
			return usageErr{err}
		}
	}
	if err := oneDeadline(req); err != nil {
		return err
	}
	// Validate here too, so that a bad request is a usage error with or
	// without a daemon.
	p, err := req.Program(env, nil)
	if err != nil {
		return usageErr{err}
	}
	if *dryRun {
		fmt.Fprint(stdout, p.Testpmd(p.DefaultPortIDs()))
		return nil
	}
	if many != nil {
		sts, err := many.Start(context.Background(), req)
		if errors.Is(err, hosts.ErrRefused) {
			return usageErr{err}
		}
		if err != nil {
			return err
		}
		return printHosts(stdout, sts, *format)
	}
	st, err := control.NewClient(*socket).Start(context.Background(), req)
	if err != nil {
		return asUsage(err)
	}
	return printStatus(stdout, st, *format)
}

// requestFlags adds the flags of a start request to fs: dpservice-cli's
// (--sink-node-ip, --udp-dst-port, --udp-src-port, --vf, --pf) and the
// deadline's (--for, --until), as dpcap start and dpcap capture take them.
func requestFlags(fs *flag.FlagSet, req *control.StartRequest) {
	fs.StringVar(&req.SinkNodeIP, "sink-node-ip", "", "")
	portFlag := func(name string, dst *uint16) {
		fs.Func(name, "", func(v string) error {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				return fmt.Errorf("invalid %s %q: want 1-65535", name, v)
			}
			*dst = uint16(n)
			return nil
		})
	}
	portFlag("udp-dst-port", &req.DstPort)
	portFlag("udp-src-port", &req.SrcPort)
	fs.Func("vf", "", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			req.VFs = append(req.VFs, strings.TrimSpace(n))
		}
		return nil
	})
	fs.Func("pf", "", func(v string) (err error) { req.PF0, err = flowprog.ParsePF(v); return err })
	fs.Func("for", "", func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("invalid --for %q: want a duration like 90s, 2m or 1h", v)
		}
		req.For = d.String()
		return nil
	})
	now := time.Now()
	fs.Func("until", "", func(v string) (err error) {
		if strings.HasPrefix(v, "-") || v == "now" {
			return fmt.Errorf("invalid --until %q: want a time to come", v)
		}
		if req.Until, err = parseWhen(v, now); err != nil {
			return err
		}
		if !req.Until.After(now) {
			return fmt.Errorf("--until %s has passed", req.Until.Format(time.RFC3339))
		}
		return nil
	})
}

// oneDeadline refuses a request with both --for and --until.
func oneDeadline(req control.StartRequest) error {
	if req.For != "" && !req.Until.IsZero() {
		return usageErr{errors.New("give --for or --until, not both")}
	}
	return nil
}

// daemonsAddresses refuses the envelope's addresses given to a start the
// daemon applies: its envelopes take dpcap serve's (PF0's MAC read from
// the port), not the client's; the flags are for a dry run's program.
func daemonsAddresses(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && slices.Contains([]string{"underlay-ip", "router-mac", "pf-mac"}, f.Name) {
			err = fmt.Errorf("--%s is for --dry-run only: the daemon's envelopes take the addresses dpcap serve was given (dpcap status shows them)", f.Name)
		}
	})
	return err
}

// asUsage makes a request the daemon refused as bad (400: a port it does
// not serve, say) a usage error, as the same mistake caught here is.
func asUsage(err error) error {
	var ae *control.APIError
	if errors.As(err, &ae) && ae.Code == http.StatusBadRequest {
		return usageErr{err}
	}
	return err
}

// envelopeFlags adds the flags of the envelope's addresses to fs; PF0's
// MAC only where no port is there to read it from (a dry run).
func envelopeFlags(fs *flag.FlagSet, env *control.Envelope, pfMAC bool) {
	fs.Func("underlay-ip", "", func(v string) (err error) {
		if env.Underlay, err = netip.ParseAddr(v); err != nil || !env.Underlay.Is6() {
			return fmt.Errorf("invalid underlay IP %q: want IPv6", v)
		}
		return nil
	})
	mac := func(name string, dst *net.HardwareAddr) {
		fs.Func(name, "", func(v string) error {
			m, err := net.ParseMAC(v)
			if err != nil || len(m) != 6 {
				return fmt.Errorf("invalid %s %q: want an Ethernet address like 0c:42:a1:00:00:01", name, v)
			}
			*dst = m
			return nil
		})
	}
	mac("router-mac", &env.RouterMAC)
	if pfMAC {
		mac("pf-mac", &env.PFMAC)
	}
}

func runStop(args []string, stdout, _ io.Writer) error {
	fs := newFlags("dpcap stop")
	socket := fs.String("socket", defaultSocket, "")
	hf := addHostFlags(fs)
	if help, err := parse(fs, args, "Usage: dpcap stop [--socket PATH | --host URL... | --hosts FILE]\n\nStops capture on every port and restores their defaults; says so when\nnothing is captured. With --host or --hosts, on every host.\n\nFlags:\n"+hostsHelp, stdout); help || err != nil {
		return err
	}
	many, err := hf.set(fs)
	if err != nil {
		return err
	}
	if many != nil {
		return stopHosts(stdout, many)
	}
	res, err := control.NewClient(*socket).Stop(context.Background())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, termtext.Escape(res.Message))
	return nil
}

func runStatus(args []string, stdout, _ io.Writer) error {
	fs := newFlags("dpcap status")
	socket := fs.String("socket", defaultSocket, "")
	format := fs.String("o", "table", "")
	hf := addHostFlags(fs)
	if help, err := parse(fs, args, "Usage: dpcap status [-o table|json|yaml] [--socket PATH | --host URL... | --hosts FILE]\n\nShows whether capture is active, its id, deadline and time left, the sink,\nthe ports, their tags and counters. With --host or --hosts, every host's\ncapture in one table (a HOST column), or a list (-o json, yaml).\n\nFlags:\n"+hostsHelp, stdout); help || err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	many, err := hf.set(fs)
	if err != nil {
		return err
	}
	if many != nil {
		return printHosts(stdout, many.Status(context.Background()), *format)
	}
	st, err := control.NewClient(*socket).Status(context.Background())
	if err != nil {
		return err
	}
	return printStatus(stdout, st, *format)
}
