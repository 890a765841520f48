package control

import (
	"context"
	"errors"
	"net"

	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

// ErrUnknownPort is what Check and Apply wrap when a program names a port
// the backend does not serve: the user's mistake, answered 400.
var ErrUnknownPort = errors.New("unknown port")

// ErrNotUndone is what an Apply error wraps when ports may be captured all
// the same: a dataplane that applied part of a start, or one whose answer
// was lost and whose capture is not known. Its message says what is
// captured; "nothing was changed" would not be true.
var ErrNotUndone = errors.New("capture not undone")

// NotUndone marks err as ErrNotUndone, its message unchanged.
func NotUndone(err error) error { return notUndone{err} }

type notUndone struct{ error }

func (e notUndone) Unwrap() []error { return []error{e.error, ErrNotUndone} }

// Backend installs capture programs on ports. A backend package registers
// itself (Register); what it can do beyond Backend it says by implementing
// the interfaces below (Restorer, PFMACSource, PortLister, Closer, Dataplane), which
// the Server, and only it, looks for.
type Backend interface {
	// Name names the backend in status output.
	Name() string
	// Check reports what Apply would refuse, changing nothing: ports it
	// does not serve (wrapping ErrUnknownPort), interfaces that are gone,
	// rules the hardware rejects. It is called before an active capture
	// is stopped for a replacement, and ends with ctx (the client's
	// request).
	Check(ctx context.Context, p *flowprog.Program) error
	// Apply starts capture on every port of the program, or, failing on
	// one, undoes what it did and starts it on none. The program is one
	// Check accepted just before, under the same Server lock: Apply does
	// not check it again (what changed since, the ports or the hardware
	// refuse as Apply goes).
	Apply(ctx context.Context, p *flowprog.Program) error
	// Clear stops capture on every port, restoring their defaults. It goes
	// on past errors and returns them all.
	Clear() error
	// Counters returns per-port counts, by port name.
	Counters() map[string]PortStatus
}

// Restorer is a Backend that can apply a capture again more leniently than
// a new one: the software backend lets a port whose interface is not there
// yet (the host rebooted, the VM is not up) wait for it. Restore is given
// a saved program no Check looked at; it checks what it needs.
type Restorer interface {
	Restore(ctx context.Context, p *flowprog.Program) error
}

// PFMACSource is a Backend that reads PF0's MAC address from the port (the
// dpdk backend): the envelopes' Ethernet source, so dpcap serve needs no
// flag for it.
type PFMACSource interface {
	PFMAC() net.HardwareAddr
}

// PortLister is a Backend that can say which ports it could capture (the
// software backend its interfaces, dp-service its VFs), so that a client
// of many hypervisors finds where a port is (GET /v1/ports).
type PortLister interface {
	Ports(ctx context.Context) ([]string, error)
}

// Closer is a Backend that holds what must be released when the daemon
// exits (a connection); Server.Shutdown closes it.
type Closer interface {
	Close() error
}

// Dataplane is a backend that drives a dataplane running apart from dpcap
// serve (dp-service): the capture lives there and outlives the daemon, the
// dataplane restarts and refuses on its own, and it, not a tag, tells the
// ports' copies apart.
type Dataplane interface {
	Backend
	// Resume takes over a saved capture at start-up: adopted when the
	// dataplane already runs it, else applied once the dataplane is ready.
	Resume(p *flowprog.Program)
	// Watch follows the dataplane until ctx ends, applying the capture
	// again after a restart; it calls changed when what PortMap returns
	// may have changed.
	Watch(ctx context.Context, changed func())
	// Report returns the dataplane's state as last seen.
	Report() DataplaneStatus
	// PortMap says what identifies each captured port's copies.
	PortMap(p *flowprog.Program) portmap.Map
}
