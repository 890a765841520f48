// Package postrotate runs a command on each closed capture file (sinkd's
// -z, tcpdump's post-rotate command) as a subscriber to pcapout's
// file-closed event, with a bound on how many run at once.
//
// Files that close while the bound is reached wait in a queue of bounded
// length; past it a file gets no command (counted and logged), so that a
// slow command can neither fork without limit nor hold memory without
// limit. Stop waits a bounded time for the commands, then leaves those
// still running to finish on their own, in their own process group, and
// names the queued files whose command never ran.
package postrotate

import (
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/dpcap/dpcap/pcapout"
)

// Defaults for Config.
const (
	DefaultJobs  = 4
	DefaultQueue = 1024
)

// Config configures a Runner. Command is required.
type Config struct {
	// Command is run as "Command FILE".
	Command string
	// Jobs is how many commands run at once at most (DefaultJobs if 0).
	Jobs int
	// Queue is how many files wait for a command at most (DefaultQueue
	// if 0); files closing past it are skipped.
	Queue  int
	Logger *slog.Logger
}

// Stats are a Runner's counts.
type Stats struct {
	Started uint64 // commands started
	Failed  uint64 // commands that failed to start or exited non-zero
	Skipped uint64 // files that got no command: the queue was full
	Running int    // commands running now
	Queued  int    // files waiting now
}

// Runner runs the command on closed files. Handle is its subscriber.
type Runner struct {
	cfg     Config
	mu      sync.Mutex
	idle    *sync.Cond // signalled when a command ends
	queue   []string
	running map[int]string // pid → file
	stats   Stats
	stopped bool // Stop gave up waiting: nothing more starts
}

// New returns a Runner for cfg.
func New(cfg Config) *Runner {
	if cfg.Jobs <= 0 {
		cfg.Jobs = DefaultJobs
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Runner{cfg: cfg, running: map[int]string{}}
	r.idle = sync.NewCond(&r.mu)
	return r
}

// Handle runs the command on f, or queues f while Jobs commands run. It
// never blocks: it is a pcapout OnClose subscriber.
func (r *Runner) Handle(f pcapout.ClosedFile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopped:
		r.stats.Skipped++
		r.cfg.Logger.Error("post-rotate command not run: sinkd is stopping", "file", f.Name)
	case len(r.running) < r.cfg.Jobs:
		r.start(f.Name)
	case len(r.queue) < r.cfg.Queue:
		if len(r.queue) == 0 {
			r.cfg.Logger.Warn("post-rotate commands are behind; files wait for one", "running", len(r.running), "max", r.cfg.Jobs)
		}
		r.queue = append(r.queue, f.Name)
	default:
		r.stats.Skipped++
		r.cfg.Logger.Error("post-rotate command not run: too many files wait for one", "file", f.Name, "queued", len(r.queue))
	}
}

// start runs the command on name; r.mu is held.
func (r *Runner) start(name string) {
	cmd := exec.Command(r.cfg.Command, name)
	// A process group of its own: a ^C meant for sinkd leaves it be.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.stats.Failed++
		r.cfg.Logger.Error("post-rotate command failed to start", "cmd", r.cfg.Command, "file", name, "err", err)
		return
	}
	r.stats.Started++
	r.running[cmd.Process.Pid] = name
	go r.wait(cmd, name)
}

// wait reaps a command and starts the next queued one.
func (r *Runner) wait(cmd *exec.Cmd, name string) {
	err := cmd.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.stats.Failed++
		r.cfg.Logger.Error("post-rotate command failed", "cmd", r.cfg.Command, "file", name, "err", err)
	}
	delete(r.running, cmd.Process.Pid)
	for !r.stopped && len(r.queue) > 0 && len(r.running) < r.cfg.Jobs {
		next := r.queue[0]
		r.queue = r.queue[1:]
		r.start(next)
	}
	r.idle.Broadcast()
}

// Stats returns the counts; safe from any goroutine.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Running, s.Queued = len(r.running), len(r.queue)
	return s
}

// Stop waits up to wait for the running and queued commands. It then
// starts nothing more, leaves the commands still running to finish
// detached, and logs each of them and each queued file whose command did
// not run; it returns their counts.
func (r *Runner) Stop(wait time.Duration) (running, notRun int) {
	timer := time.AfterFunc(wait, func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		r.idle.Broadcast()
	})
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for !r.stopped && (len(r.running) > 0 || len(r.queue) > 0) {
		r.idle.Wait()
	}
	r.stopped = true
	for pid, name := range r.running {
		r.cfg.Logger.Warn("post-rotate command still running at exit; left to finish on its own", "file", name, "pid", pid, "waited", wait)
	}
	for _, name := range r.queue {
		r.cfg.Logger.Error("post-rotate command not run: sinkd stopped first", "cmd", r.cfg.Command, "file", name)
	}
	r.stats.Skipped += uint64(len(r.queue))
	running, notRun = len(r.running), len(r.queue)
	r.queue = nil
	return running, notRun
}
