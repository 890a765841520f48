package control

import (
	"context"

	"github.com/dpcap/dpcap/flowprog"
)

// Backend installs capture programs on ports.
type Backend interface {
	// Name names the backend in status output.
	Name() string
	// Apply starts capture on every port of the program, or, failing on
	// one, undoes what it did and starts it on none.
	Apply(ctx context.Context, p *flowprog.Program) error
	// Clear stops capture on every port, restoring their defaults. It goes
	// on past errors and returns them all.
	Clear() error
	// Counters returns per-port counts, by port name.
	Counters() map[string]PortStatus
}
