package live

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpcap/dpcap/internal/units"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink"
	"github.com/dpcap/dpcap/sink/live/access"
	"github.com/dpcap/dpcap/sink/output"
)

// The defaults of sinkd's --live flags.
const (
	DefaultMaxViewers   = 16
	DefaultWriteTimeout = 10 * time.Second
)

// usage is --live's section of sinkd --help.
const usage = `
Live viewers (see docs/LIVE.md):
  --live ADDR      serve live streams of the frames written, over HTTP(S)
                   on ADDR (host:port): 'curl -sN
                   https://ADDR/v1/stream?port=vm-1 | tshark -r -', dpcap
                   watch, Wireshark; beyond loopback it needs TLS and tokens
  --live-cert FILE, --live-key FILE  serve HTTPS with this certificate
                   and key (read again when renewed)
  --live-tokens FILE  bearer tokens, one per line: NAME TOKEN PORTS
                   ("*" for every port); the file may not be readable by
                   other users
  --live-max-viewers N  viewers at once (default {{default "live-max-viewers"}})
  --live-queue SIZE  frames queued per viewer (k/m/g suffixes; default
                   {{default "live-queue"}}); a viewer that falls behind loses its own
                   frames, counted, never the files'
  --live-write-timeout DUR  end a viewer's stream whose writes block this
                   long (default {{default "live-write-timeout"}})
`

func init() {
	output.Register(output.Kind{Name: "live", Usage: usage, Flags: defineFlags})
}

// flags are sinkd's --live flags.
type flags struct {
	addr, cert, key, tokens string
	maxViewers              int
	queue                   int64
	queueText               string
	writeTimeout            time.Duration
}

// queueValue is --live-queue, a size as a user writes it.
type queueValue struct{ f *flags }

func (q queueValue) String() string {
	if q.f == nil {
		return ""
	}
	return q.f.queueText
}

func (q queueValue) Set(v string) error {
	n, err := units.ParseBytes(v, 1, math.MaxInt32, false)
	if err != nil {
		return err // the flag package names the flag
	}
	q.f.queue, q.f.queueText = n, v
	return nil
}

func defineFlags(fs *flag.FlagSet) output.Flags {
	f := &flags{}
	fs.StringVar(&f.addr, "live", "", "")
	fs.StringVar(&f.cert, "live-cert", "", "")
	fs.StringVar(&f.key, "live-key", "", "")
	fs.StringVar(&f.tokens, "live-tokens", "", "")
	fs.IntVar(&f.maxViewers, "live-max-viewers", DefaultMaxViewers, "")
	_ = queueValue{f}.Set("4m")
	fs.Var(queueValue{f}, "live-queue", "")
	fs.DurationVar(&f.writeTimeout, "live-write-timeout", DefaultWriteTimeout, "")
	return f
}

// Check implements output.Flags.
func (f *flags) Check(_ string, set map[string]bool) (bool, error) {
	if f.addr == "" {
		for _, name := range []string{"live-cert", "live-key", "live-tokens", "live-max-viewers", "live-queue", "live-write-timeout"} {
			if set[name] {
				return false, fmt.Errorf("--%s needs --live ADDR", name)
			}
		}
		return false, nil
	}
	switch {
	case (f.cert == "") != (f.key == ""):
		return false, errors.New("--live-cert and --live-key go together")
	case f.maxViewers < 1:
		return false, fmt.Errorf("invalid --live-max-viewers %d: want 1 or more", f.maxViewers)
	case f.writeTimeout <= 0:
		return false, fmt.Errorf("invalid --live-write-timeout %v: want a positive duration", f.writeTimeout)
	}
	if err := access.CheckExposure(f.addr, f.cert != "", f.tokens != ""); err != nil {
		return false, fmt.Errorf("--live %w (--live-cert, --live-key, --live-tokens)", err)
	}
	return true, nil
}

// New implements output.Flags: it reads the certificate, key and tokens
// now, as root before -Z.
func (f *flags) New(env output.Env) (output.Consumer, error) {
	cfg := Config{Addr: f.addr, MaxViewers: f.maxViewers, Queue: int(f.queue), WriteTimeout: f.writeTimeout, Logger: env.Logger}
	if f.cert != "" {
		t, err := access.LoadTLS(f.cert, f.key, func(err error) {
			if err != nil {
				env.Logger.Warn("--live-cert and --live-key cannot be read again: the pair read last stays", "cert", f.cert, "key", f.key, "err", err)
				return
			}
			env.Logger.Info("--live-cert and --live-key read again", "cert", f.cert, "key", f.key)
		})
		if err != nil {
			return nil, fmt.Errorf("--live-cert: %w", err)
		}
		cfg.TLS = t
	}
	if f.tokens != "" {
		t, err := access.Load(f.tokens)
		if err != nil {
			return nil, fmt.Errorf("--live-tokens: %w", err)
		}
		t.OnReload = func(n int, err error) {
			if err != nil {
				env.Logger.Warn("--live-tokens cannot be read again: the tokens read last stay", "file", f.tokens, "err", err)
				return
			}
			env.Logger.Info("--live-tokens read again", "file", f.tokens, "tokens", n)
		}
		cfg.Tokens = t
	}
	if env.PortMap != nil {
		cfg.PortMap = env.PortMap.Ports
	}
	return &consumer{Server: NewServer(cfg), next: env.Next}, nil
}

// consumer is the live endpoint as one of sinkd's outputs: it takes no
// files, only frames.
type consumer struct {
	*Server
	next func(pcapout.ClosedFile)
}

var (
	_ output.Consumer = (*consumer)(nil)
	_ output.Tapper   = (*consumer)(nil)
	_ output.Measured = (*consumer)(nil)
)

// Closed implements output.Consumer: files go on at once.
func (c *consumer) Closed(f pcapout.ClosedFile) { c.next(f) }

// Tap implements output.Tapper.
func (c *consumer) Tap() sink.Tap { return c.hub.Tap() }

// Collector implements output.Measured.
func (c *consumer) Collector() prometheus.Collector { return newCollector(c.hub) }

// Stop implements output.Consumer: every stream ends cleanly, then the
// summary.
func (c *consumer) Stop(w io.Writer) {
	c.Server.Stop()
	s := &c.hub.stats
	fmt.Fprintf(w, "%d live viewers served, %d frames sent to them, %d lost (queue full)\n", s.served.Load(), s.sent.Load(), s.lost.Load())
}
