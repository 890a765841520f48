package control

import (
	"context"
	"errors"

	"github.com/dpcap/dpcap/flowprog"
)

// ErrUnknownPort is what Check and Apply wrap when a program names a port
// the backend does not serve: the user's mistake, answered 400.
var ErrUnknownPort = errors.New("unknown port")

// Backend installs capture programs on ports.
type Backend interface {
	// Name names the backend in status output.
	Name() string
	// Check reports what Apply would refuse, changing nothing: ports it
	// does not serve (wrapping ErrUnknownPort), interfaces that are gone,
	// rules the hardware rejects. It is called before an active capture
	// is stopped for a replacement.
	Check(p *flowprog.Program) error
	// Apply starts capture on every port of the program, or, failing on
	// one, undoes what it did and starts it on none.
	Apply(ctx context.Context, p *flowprog.Program) error
	// Clear stops capture on every port, restoring their defaults. It goes
	// on past errors and returns them all.
	Clear() error
	// Counters returns per-port counts, by port name.
	Counters() map[string]PortStatus
}
