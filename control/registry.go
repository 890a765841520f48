package control

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Registration is a backend as dpcap serve knows it. A backend package
// registers itself from its init function; a command has it by importing
// the package (blank import), and leaves it out by build tag.
type Registration struct {
	// Name is what dpcap serve --backend takes.
	Name string
	// Synopsis is the backend's arguments in the usage line, after
	// "dpcap serve --backend NAME".
	Synopsis string
	// Summary says what the backend drives, in a few words.
	Summary string
	// Usage documents the backend's own flags, formatted as dpcap serve's
	// --help lists flags ("  --flag ARG   text"); empty if it has none.
	Usage string
	// Flags adds the backend's own flags to fs and returns what makes the
	// backend once fs is parsed. It is called for every registered backend,
	// whichever is chosen: flag names are the backends' alone.
	Flags func(fs *flag.FlagSet) NewBackend
}

// NewBackend makes a backend from its parsed flags and what dpcap serve
// gives every backend. Errors from a mistake in the flags wrap ErrUsage.
type NewBackend func(Options) (Backend, error)

// Options is what dpcap serve gives every backend.
type Options struct {
	// Ports are the --port flags: port name → the backend's name for it.
	Ports map[string]string
	// Logger is the daemon's logger.
	Logger *slog.Logger
}

// ErrUsage is what a NewBackend error wraps when the flags are wrong (the
// command exits 2), rather than the host (no such device, no DPDK).
var ErrUsage = errors.New("usage error")

// UsageError marks err as ErrUsage, its message unchanged.
func UsageError(err error) error { return usageError{err} }

type usageError struct{ error }

func (e usageError) Unwrap() []error { return []error{e.error, ErrUsage} }

var (
	registryMu sync.Mutex
	registry   = map[string]Registration{}
)

// Register makes a backend known to dpcap serve. It panics on a name
// registered twice or without Flags: a program error.
func Register(r Registration) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if r.Name == "" || r.Flags == nil {
		panic("control.Register: a backend needs a name and Flags")
	}
	if _, dup := registry[r.Name]; dup {
		panic(fmt.Sprintf("control.Register: backend %q registered twice", r.Name))
	}
	registry[r.Name] = r
}

// Registered returns the registered backends, by name.
func Registered() []Registration {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]Registration, 0, len(registry))
	for _, r := range registry {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Registration) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// BackendFlags adds every registered backend's flags to fs and returns
// the function that makes the one named, once fs is parsed.
func BackendFlags(fs *flag.FlagSet) func(name string, o Options) (Backend, error) {
	regs := Registered()
	makers := map[string]NewBackend{}
	for _, r := range regs {
		makers[r.Name] = r.Flags(fs)
	}
	return func(name string, o Options) (Backend, error) {
		if mk, ok := makers[name]; ok {
			return mk(o)
		}
		names := make([]string, len(regs))
		for i, r := range regs {
			names[i] = r.Name
		}
		return nil, UsageError(fmt.Errorf("invalid backend %q: want %s", name, orList(names)))
	}
}

// orList joins names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
