package postrotate

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/sink/output"
)

// DefaultWait is how long sinkd waits for the commands at exit.
const DefaultWait = 10 * time.Second

// usage is -z's part of sinkd --help, among the output flags.
var usage = `  -z CMD           run "CMD FILE" on each closed file (e.g. gzip)
  --hook-jobs N    run at most N -z commands at once (default {{default "hook-jobs"}}); files
                   closing meanwhile wait in a queue (` + strconv.Itoa(DefaultQueue) + ` at most; past
                   it a file gets no command, counted and logged)
  --hook-wait DUR  at exit, wait this long for -z commands (default {{default "hook-wait"}}),
                   then leave those still running to finish on their own
`

func init() {
	output.Register(output.Kind{Name: "postrotate", Section: "Output", Usage: usage, Changes: true, Flags: defineFlags})
}

// flags are sinkd's -z flags.
type flags struct {
	command string
	jobs    int
	wait    time.Duration
}

func defineFlags(fs *flag.FlagSet) output.Flags {
	f := &flags{}
	fs.StringVar(&f.command, "z", "", "")
	fs.IntVar(&f.jobs, "hook-jobs", DefaultJobs, "")
	fs.DurationVar(&f.wait, "hook-wait", DefaultWait, "")
	return f
}

// Check implements output.Flags.
func (f *flags) Check(out string, _ map[string]bool) (bool, error) {
	switch {
	case f.jobs <= 0 || f.wait < 0:
		return false, errors.New("--hook-jobs must be positive and --hook-wait not negative")
	case f.command != "" && out == "-":
		return false, errors.New("-C, -G, -z, --keep and --split-by need a file name, not -w -")
	}
	return f.command != "", nil
}

// New implements output.Flags.
func (f *flags) New(env output.Env) (output.Consumer, error) {
	r := New(Config{Command: f.command, Jobs: f.jobs, Logger: env.Logger})
	return consumer{r, f.wait, env.Next}, nil
}

// consumer is the Runner as one of sinkd's outputs.
type consumer struct {
	*Runner
	wait time.Duration
	next func(pcapout.ClosedFile)
}

var (
	_ output.Consumer = consumer{}
	_ output.Measured = consumer{}
)

// Closed implements output.Consumer: the command runs on the file, which
// goes on at once (the outputs after it must take it as it is).
func (c consumer) Closed(f pcapout.ClosedFile) {
	c.Handle(f)
	c.next(f)
}

// Start implements output.Consumer.
func (c consumer) Start() error { return nil }

// Collector implements output.Measured.
func (c consumer) Collector() prometheus.Collector { return NewCollector(c.Stats) }

// Stop implements output.Consumer: it waits for the commands as --hook-wait
// says and counts them.
func (c consumer) Stop(w io.Writer) {
	running, notRun := c.Runner.Stop(c.wait)
	hs := c.Stats()
	fmt.Fprintf(w, "%d post-rotate commands run (%d failed, %d skipped", hs.Started, hs.Failed, hs.Skipped)
	if running > 0 || notRun > 0 {
		fmt.Fprintf(w, "; %d left running, %d not run at exit", running, notRun)
	}
	fmt.Fprintln(w, ")")
}
