//go:build dpdk

package dpdk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/flowprog/rteflow"
)

// Backend installs the program with rte_flow (package rteflow).
type Backend struct {
	eal   *rteflow.EAL
	names map[string]string // port name → DPDK port name
	ids   map[string]uint16 // port name → DPDK port id
	pfMAC net.HardwareAddr  // PF0's, read from the port: the envelopes' source
	mu    sync.Mutex
	flows []created
}

type created struct {
	port string
	flow *rteflow.Flow
}

func init() { open = New }

// New initializes the EAL with ealArgs (primary, or secondary with
// --proc-type=secondary --file-prefix …) and finds the ports, given as
// name → DPDK port name (pf0 must be among them: copies leave through it).
func New(ealArgs []string, ports map[string]string) (control.Backend, error) {
	if _, ok := ports[flowprog.PF0]; !ok {
		return nil, errors.New("the dpdk backend needs the uplink: give --port pf0=DPDK-PORT (copies leave through it)")
	}
	eal, err := rteflow.Init(ealArgs)
	if err != nil {
		return nil, err
	}
	d := &Backend{eal: eal, names: ports, ids: map[string]uint16{}}
	for name, dev := range ports {
		info, err := eal.Port(dev)
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", name, err)
		}
		d.ids[name] = info.ID
		if name == flowprog.PF0 {
			d.pfMAC = info.MAC
		}
	}
	return d, nil
}

// PFMAC returns PF0's MAC address, the envelopes' Ethernet source.
func (d *Backend) PFMAC() net.HardwareAddr { return d.pfMAC }

// Name implements Backend.
func (d *Backend) Name() string { return "dpdk" }

func (d *Backend) label(port string) string { return fmt.Sprintf("%s (%s)", port, d.names[port]) }

// Ports implements control.PortLister: the ports dpcap serve was given.
func (d *Backend) Ports(context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.ids)), nil
}

// Check implements Backend: the PMD validates every rule.
func (d *Backend) Check(_ context.Context, p *flowprog.Program) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Config.RouterMAC == nil {
		return errors.New("the dpdk backend needs the underlay router's MAC for the envelopes (without it every copy leaves PF0 addressed to 00:00:00:00:00:00 and the router drops it): " +
			"give dpcap serve --router-mac MAC; on the hypervisor, 'ip -6 route show default' names the router and 'ip -6 neigh show ROUTER' its MAC")
	}
	for _, r := range p.Install {
		id, ok := d.ids[r.Port]
		if !ok {
			return fmt.Errorf("%w %q: give dpcap serve --port %s=DPDK-PORT", control.ErrUnknownPort, r.Port, r.Port)
		}
		if err := d.eal.Validate(id, d.label(r.Port), r, d.ids); err != nil {
			return err
		}
	}
	return nil
}

// Apply implements Backend: its rules passed Check (the PMD validated
// every one) before any is created; a failed creation destroys what was
// created, in reverse.
func (d *Backend) Apply(_ context.Context, p *flowprog.Program) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.flows) > 0 {
		return errors.New("capture is already applied")
	}
	for _, r := range p.Install {
		f, err := d.eal.Create(d.ids[r.Port], d.label(r.Port), r, d.ids)
		if err != nil {
			if derr := d.destroyAll(); derr != nil {
				return control.NotUndone(fmt.Errorf("%w; undoing it failed: %w", err, derr))
			}
			return err
		}
		d.flows = append(d.flows, created{r.Port, f})
	}
	return nil
}

// Clear implements Backend: rules go in reverse order of creation.
func (d *Backend) Clear() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.destroyAll()
}

// destroyAll destroys the rules created; those it fails to destroy stay
// listed, in order, for a Clear again to destroy.
func (d *Backend) destroyAll() error {
	var errs []error
	var left []created
	for i := len(d.flows) - 1; i >= 0; i-- {
		c := d.flows[i]
		if err := d.eal.Destroy(c.flow, d.label(c.port)); err != nil {
			errs = append(errs, err)
			left = append(left, c)
		}
	}
	slices.Reverse(left)
	d.flows = left
	return errors.Join(errs...)
}

// Counters implements Backend; the program has no COUNT action yet.
func (d *Backend) Counters() map[string]control.PortStatus { return nil }
