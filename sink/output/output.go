// Package output is the seam between sinkd's capture files and what takes
// them once they are written: a command on each closed file (-z, package
// sink/postrotate), an object store (--upload, package archive/upload), the
// next ones. Each kind of output lives in a package of its own that
// registers itself, with its flags and its constructor, from an init
// function (as node_exporter's collectors do); sinkd imports it for that
// alone, so that an output left out of a build (-tags minimal) is simply
// not imported.
//
// The outputs a command line asks for form a Chain: pcapout's file-closed
// event goes to the first, and each hands every file on to the next once
// it is done with it at its name. Outputs that may change or remove the
// files (a command such as gzip) come last.
package output

import (
	"flag"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink"
)

// Consumer takes the capture files sinkd writes, each once it is closed
// for good.
type Consumer interface {
	// Closed takes a file closed for good, on the writer's goroutine, and
	// must not block. It hands the file on to Env.Next once it no longer
	// needs it at its name: at once, unless the outputs after it may
	// change the file (Env.Changes) while it still reads it. A file it
	// must keep from them it does not hand on, and logs.
	Closed(pcapout.ClosedFile)
	// Start begins, as the user sinkd runs as (after -Z gives up root).
	// Files closed before it are handed on as they come.
	Start() error
	// Stop ends the output once the capture is over and every output
	// before it handed on what it took, and writes its lines of sinkd's
	// end-of-run summary to w.
	Stop(w io.Writer)
}

// The capabilities a Consumer may have besides, each named here.
type (
	// Opener hears of each file as it is made, before any packet goes to
	// it (pcapout's file-opened event), once started, and at once of the
	// file open then. It must not block for long.
	Opener interface {
		Opened(pcapout.OpenedFile)
	}
	// Drainer hands files on later than Closed returns: Drain returns once
	// every file Closed took went on, or was kept back.
	Drainer interface {
		Drain()
	}
	// Chowner prepares, as root, what Start opens as the user -Z names.
	Chowner interface {
		Chown(uid, gid int) error
	}
	// Measured has metrics of its own, served on sinkd's /metrics.
	Measured interface {
		Collector() prometheus.Collector
	}
	// Tapper sees the inner frames as the engines write them (live
	// viewers): Tap returns the tap of one engine, called once for each
	// before the capture starts.
	Tapper interface {
		Tap() sink.Tap
	}
)

// Env is what an output is made with.
type Env struct {
	// Out is sinkd's -w file.
	Out    string
	Logger *slog.Logger
	// Next takes the files the output hands on; never nil.
	Next func(pcapout.ClosedFile)
	// Changes says that an output after this one may change or remove the
	// files Next takes (-z gzip).
	Changes bool
	// PortMap is --port-map's map as read at start; nil without one.
	PortMap *portmap.Map
}

// Kind is a kind of output: its flags and how it is made from them.
type Kind struct {
	// Name names the kind (one word, unique).
	Name string
	// Section is where Usage goes in sinkd --help: "Output" among the
	// output flags, "" after the input flags, as a section of its own.
	Section string
	// Usage is the kind's part of sinkd --help, in which
	// {{default "NAME"}} stands for the default of the flag NAME.
	Usage string
	// Changes says the output may change, move or remove the files it
	// takes: it takes each after every output that does not.
	Changes bool
	// Flags defines the kind's flags on fs and returns them, to be read
	// once fs is parsed.
	Flags func(fs *flag.FlagSet) Flags
}

// Flags are one kind's flags on one command line.
type Flags interface {
	// Check validates the flags once parsed, without I/O; out is -w's
	// file and set names the flags given. It reports whether they ask for
	// the output.
	Check(out string, set map[string]bool) (bool, error)
	// New makes the output. It opens nothing that Start opens.
	New(Env) (Consumer, error)
}

var (
	mu    sync.Mutex
	kinds []Kind
)

// Register adds a kind of output; it is called from the init function of
// the kind's package. It panics on a kind without a name or Flags, or
// registered twice.
func Register(k Kind) {
	mu.Lock()
	defer mu.Unlock()
	if k.Name == "" || k.Flags == nil {
		panic("output: Register needs a Name and Flags")
	}
	if slices.ContainsFunc(kinds, func(o Kind) bool { return o.Name == k.Name }) {
		panic("output: " + k.Name + " registered twice")
	}
	kinds = append(kinds, k)
}

// Kinds returns the registered kinds, in the order they take files: those
// that change files last, otherwise in the order they registered.
func Kinds() []Kind {
	mu.Lock()
	defer mu.Unlock()
	ks := slices.Clone(kinds)
	slices.SortStableFunc(ks, func(a, b Kind) int {
		switch {
		case a.Changes == b.Changes:
			return 0
		case a.Changes:
			return 1
		}
		return -1
	})
	return ks
}

// Config is every kind's flags on one command line.
type Config []defined

type defined struct {
	kind  Kind
	flags Flags
}

// Define defines the flags of every registered kind on fs.
func Define(fs *flag.FlagSet) Config {
	var c Config
	for _, k := range Kinds() {
		c = append(c, defined{k, k.Flags(fs)})
	}
	return c
}

// Check validates the kinds' flags once fs is parsed and returns the
// outputs they ask for.
func (c Config) Check(out string, set map[string]bool) (Config, error) {
	var on Config
	for _, d := range c {
		ok, err := d.flags.Check(out, set)
		if err != nil {
			return nil, err
		}
		if ok {
			on = append(on, d)
		}
	}
	return on, nil
}

// New makes the outputs of c, each handing files on to the next, with
// base's Out, Logger and PortMap.
func (c Config) New(base Env) (*Chain, error) {
	ch := &Chain{list: make([]Consumer, len(c))}
	next := func(pcapout.ClosedFile) {}
	changes := false
	for i := len(c) - 1; i >= 0; i-- {
		env := base
		env.Next, env.Changes = next, changes
		cons, err := c[i].flags.New(env)
		if err != nil {
			return nil, err
		}
		ch.list[i] = cons
		next = cons.Closed
		changes = changes || c[i].kind.Changes
	}
	return ch, nil
}

// Announcer announces the files it makes: a pcapout.Output, or sinkd's
// workers' outputs together.
type Announcer interface {
	OnOpen(func(pcapout.OpenedFile))
	OnClose(func(pcapout.ClosedFile))
}

// Chain is the outputs of one run, in the order they take each file.
type Chain struct {
	list []Consumer
}

// Subscribe makes the chain take the files out closes.
func (c *Chain) Subscribe(out Announcer) {
	if len(c.list) > 0 {
		out.OnClose(c.list[0].Closed)
	}
}

// Collectors returns the outputs' metrics.
func (c *Chain) Collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, o := range c.list {
		if m, ok := o.(Measured); ok {
			cs = append(cs, m.Collector())
		}
	}
	return cs
}

// Tap returns the tap of one engine: the taps of the outputs that are
// Tappers, or nil when none is.
func (c *Chain) Tap() sink.Tap {
	var taps tee
	for _, o := range c.list {
		if t, ok := o.(Tapper); ok {
			taps = append(taps, t.Tap())
		}
	}
	switch len(taps) {
	case 0:
		return nil
	case 1:
		return taps[0]
	}
	return taps
}

// tee is several outputs' taps of one engine.
type tee []sink.Tap

func (t tee) Source(i int, s sink.SourceInfo) {
	for _, x := range t {
		x.Source(i, s)
	}
}

func (t tee) Frame(src int, ts time.Time, data []byte, length int) {
	for _, x := range t {
		x.Frame(src, ts, data, length)
	}
}

func (t tee) Flush() {
	for _, x := range t {
		x.Flush()
	}
}

// Chown prepares, as root, what the outputs open as the user uid.
func (c *Chain) Chown(uid, gid int) error {
	for _, o := range c.list {
		if ch, ok := o.(Chowner); ok {
			if err := ch.Chown(uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start starts the outputs and has those that want it hear of the files
// out makes, from the one open now on.
func (c *Chain) Start(out Announcer) error {
	for _, o := range c.list {
		if err := o.Start(); err != nil {
			return err
		}
		if op, ok := o.(Opener); ok {
			out.OnOpen(op.Opened)
		}
	}
	return nil
}

// Stop stops the outputs once the capture is over: each hands on what it
// holds, in order; then they stop, the last first, each writing its part
// of the summary to w.
func (c *Chain) Stop(w io.Writer) {
	for _, o := range c.list {
		if d, ok := o.(Drainer); ok {
			d.Drain()
		}
	}
	for _, o := range slices.Backward(c.list) {
		o.Stop(w)
	}
}
