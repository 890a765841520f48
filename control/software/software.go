//go:build linux

package software

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/bpf"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/software/linkwatch"
	"github.com/dpcap/dpcap/control/software/mirror"
	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/flowprog"
)

// resyncInterval is how often every port's interface is looked at even
// without a link notification (one lost, or the watch unavailable).
const resyncInterval = 5 * time.Second

// Backend is the backend for hosts without hardware sampling: each port
// is a Linux interface, mirrored in software (package mirror).
//
// A mirror is bound to an interface index. When a port's interface is
// deleted and made again under its name (a VM restart recreates its tap),
// the backend notices (link notifications, and a look every resyncInterval),
// reports the port's problem while the interface is gone, and mirrors the
// new interface once it is there, counting the re-attachment.
type Backend struct {
	ifaces map[string]string // port name → Linux interface; nil: the names are interfaces
	method string            // mirror.MethodAuto, MethodBPF or MethodPacket
	logger *slog.Logger

	mu    sync.Mutex
	ports []*attachment // nil while nothing is applied
	cfg   mirror.Config
	watch *watch
}

// attachment is one captured port and the mirror on its current interface.
type attachment struct {
	port       mirror.Port
	m          mirror.Mirror // nil while the interface is gone or refused capture
	ifindex    int
	past       mirror.Stats // what the mirrors before m counted
	reattached uint64
	problem    string
}

// New returns the backend for the given ports, mirrored with
// method (mirror.MethodAuto: in the kernel where BPF is allowed). With no
// ports, every Linux interface is a port of its own name.
func New(ifaces map[string]string, method string, logger *slog.Logger) *Backend {
	if len(ifaces) == 0 {
		ifaces = nil
	}
	return &Backend{ifaces: ifaces, method: method, logger: logger}
}

// iface returns the Linux interface of a port.
func (s *Backend) iface(port string) (string, bool) {
	if s.ifaces == nil {
		return port, port != ""
	}
	iface, ok := s.ifaces[port]
	return iface, ok
}

// Name implements Backend.
func (s *Backend) Name() string { return "software" }

// Check implements Backend: every port is one this daemon serves, its
// interface exists, and the filter compiles.
func (s *Backend) Check(_ context.Context, p *flowprog.Program) error {
	_, err := s.config(p, true)
	return err
}

// config returns the mirrors' configuration for p; it fails on what no
// mirror could capture (a port not served, a filter that does not
// compile) and, with needIfaces, on a port whose interface is not there.
func (s *Backend) config(p *flowprog.Program, needIfaces bool) (mirror.Config, error) {
	cfg := mirror.Config{Sink: netip.AddrPortFrom(p.Config.Sink, p.Config.DstPort), SrcPort: p.Config.SrcPort, Method: s.method, Logger: s.logger}
	if m := p.Config.Filter; m != nil {
		prog, err := kernelFilter(m.PcapFilter())
		if err != nil {
			return cfg, err
		}
		cfg.Filter = prog
	}
	for _, t := range p.Tags.Ports {
		iface, ok := s.iface(t.Name)
		if !ok {
			return cfg, fmt.Errorf("%w %q: this daemon serves %s", control.ErrUnknownPort, t.Name, s.known())
		}
		if _, err := net.InterfaceByName(iface); err != nil && needIfaces {
			if s.ifaces == nil {
				// The name is all the user gave: a usage error.
				return cfg, fmt.Errorf("%w %q: no such interface on this host (dpcap serve takes interface names as ports)", control.ErrUnknownPort, t.Name)
			}
			return cfg, fmt.Errorf("port %s: interface %s: %w", t.Name, iface, err)
		}
	}
	return cfg, nil
}

// Apply implements Backend.
func (s *Backend) Apply(ctx context.Context, p *flowprog.Program) error {
	return s.apply(ctx, p, false)
}

// Restore implements Restorer: as Apply, but a port whose interface is not
// there waits for it (its problem says so) instead of failing the capture.
func (s *Backend) Restore(ctx context.Context, p *flowprog.Program) error {
	return s.apply(ctx, p, true)
}

func (s *Backend) apply(ctx context.Context, p *flowprog.Program, wait bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports != nil {
		return errors.New("capture is already applied")
	}
	// Apply's program passed Check; Restore's was saved, and its ports
	// may wait for their interfaces.
	cfg, err := s.config(p, false)
	if err != nil {
		return err
	}
	for _, t := range p.Tags.Ports {
		iface, _ := s.iface(t.Name)
		a := &attachment{port: mirror.Port{Name: t.Name, Interface: iface, Tag: t.Tag}}
		s.ports = append(s.ports, a)
		if _, err := net.InterfaceByName(a.port.Interface); err != nil && wait {
			a.problem = fmt.Sprintf("interface %s is not there (since %s); capture starts when it appears", a.port.Interface, time.Now().UTC().Format(time.RFC3339))
			s.logger.Warn("port waits for its interface", "port", a.port.Name, "interface", a.port.Interface)
			continue
		}
		if err := a.attach(ctx, cfg); err != nil {
			s.stopAll()
			return err
		}
	}
	s.cfg = cfg
	s.watch = s.startWatch()
	return nil
}

// attach mirrors the port's interface as it is now.
func (a *attachment) attach(ctx context.Context, cfg mirror.Config) error {
	ifi, err := net.InterfaceByName(a.port.Interface)
	if err != nil {
		return fmt.Errorf("port %s: interface %s: %w", a.port.Name, a.port.Interface, err)
	}
	m, err := mirror.Start(ctx, a.port, cfg)
	if err != nil {
		return err
	}
	a.m, a.ifindex = m, ifi.Index
	return nil
}

// detach stops the mirror, keeping its counts.
func (a *attachment) detach() {
	if a.m == nil {
		return
	}
	a.m.Stats() // collects the kernel's drops while the socket is open
	a.m.Stop()
	st := a.m.Stats() // the final counts, frames drained at Stop included
	a.past.Mirrored += st.Mirrored
	a.past.Failed += st.Failed
	a.past.Dropped += st.Dropped
	a.m = nil
}

// watch follows the ports' interfaces until stopped.
type watch struct {
	stop chan struct{}
	done sync.WaitGroup
	w    *linkwatch.Watcher // nil when link notifications are unavailable
}

func (s *Backend) startWatch() *watch {
	wt := &watch{stop: make(chan struct{})}
	w, err := linkwatch.Open()
	if err != nil {
		s.logger.Warn("interfaces are looked at every "+resyncInterval.String()+" only", "err", err)
	} else {
		wt.w = w
		wt.done.Go(func() { s.follow(wt) })
	}
	wt.done.Go(func() {
		t := time.NewTicker(resyncInterval)
		defer t.Stop()
		for {
			select {
			case <-wt.stop:
				return
			case <-t.C:
				s.resync(wt)
			}
		}
	})
	return wt
}

// follow resyncs on every notification about one of the ports' interfaces.
func (s *Backend) follow(wt *watch) {
	for {
		evs, err := wt.w.Next()
		switch {
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, linkwatch.ErrOverflow):
			s.resync(wt)
			continue
		case err != nil:
			s.logger.Warn("link notifications ended; interfaces are looked at every "+resyncInterval.String(), "err", err)
			return
		}
		if slices.ContainsFunc(evs, s.concerns) {
			s.resync(wt)
		}
	}
}

// concerns says whether e is about an interface a port is, or was, on.
func (s *Backend) concerns(e linkwatch.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.ports, func(a *attachment) bool {
		return a.port.Interface == e.Name || (a.m != nil && a.ifindex == e.Index)
	})
}

func (wt *watch) end() {
	close(wt.stop)
	if wt.w != nil {
		wt.w.Close()
	}
	wt.done.Wait()
}

// resync compares each port's interface with the one it is mirrored on:
// gone, it stops the mirror and says so; made again (a new index), it
// mirrors the new one.
func (s *Backend) resync(wt *watch) {
	ifs, err := net.Interfaces()
	if err != nil {
		s.logger.Warn("listing interfaces", "err", err)
		return
	}
	index := map[string]int{}
	for _, ifi := range ifs {
		index[ifi.Name] = ifi.Index
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watch != wt {
		return // cleared meanwhile
	}
	for _, a := range s.ports {
		idx, ok := index[a.port.Interface]
		switch {
		case ok && a.m != nil && idx == a.ifindex:
			continue
		case !ok:
			if a.m != nil {
				a.detach()
				a.problem = fmt.Sprintf("interface %s is gone (since %s); capture resumes when it is back", a.port.Interface, time.Now().UTC().Format(time.RFC3339))
				s.logger.Warn("port's interface is gone", "port", a.port.Name, "interface", a.port.Interface)
			}
			continue
		}
		attachedBefore := a.ifindex != 0
		a.detach()
		if err := a.attach(context.Background(), s.cfg); err != nil {
			if !strings.Contains(a.problem, "cannot be captured") { // log once, not at every retry
				s.logger.Error("port's interface is there but cannot be captured", "port", a.port.Name, "err", err)
			}
			a.problem = fmt.Sprintf("interface %s is there but cannot be captured: %v (retrying)", a.port.Interface, err)
			continue
		}
		a.problem = ""
		if !attachedBefore {
			s.logger.Info("port attached to its interface", "port", a.port.Name, "interface", a.port.Interface, "ifindex", idx)
			continue
		}
		a.reattached++
		s.logger.Info("port re-attached to its recreated interface", "port", a.port.Name, "interface", a.port.Interface, "ifindex", idx, "times", a.reattached)
	}
}

func kernelFilter(expr string) ([]bpf.RawInstruction, error) {
	prog, err := filter.CompileRaw(expr, 65535)
	if err != nil {
		return nil, fmt.Errorf("software backend filter: %w", err)
	}
	return prog, nil
}

func (s *Backend) known() string {
	if s.ifaces == nil {
		return "the host's interfaces, by name"
	}
	var names []string
	for n := range s.ifaces {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "no ports (give dpcap serve --port NAME=IFACE)"
	}
	return strings.Join(names, ", ")
}

// Ports implements control.PortLister: the ports dpcap serve was given,
// else every interface of the host.
func (s *Backend) Ports(context.Context) ([]string, error) {
	if s.ifaces != nil {
		return slices.Sorted(maps.Keys(s.ifaces)), nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	names := make([]string, 0, len(ifs))
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return names, nil
}

// Clear implements Backend; stopping a mirror cannot fail.
func (s *Backend) Clear() error {
	s.mu.Lock()
	wt := s.watch
	s.watch = nil
	s.mu.Unlock()
	if wt != nil {
		wt.end() // outside the lock: a resync under way needs it to finish
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAll()
	return nil
}

func (s *Backend) stopAll() {
	for _, a := range s.ports {
		a.detach()
	}
	s.ports = nil
}

// Counters implements Backend.
func (s *Backend) Counters() map[string]control.PortStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]control.PortStatus{}
	for _, a := range s.ports {
		st := a.past
		if a.m != nil {
			now := a.m.Stats()
			st.Mirrored += now.Mirrored
			st.Failed += now.Failed
			st.Dropped += now.Dropped
		}
		ps := control.PortStatus{Name: a.port.Name, Tag: a.port.Tag, Samples: st.Mirrored, Failed: st.Failed, Dropped: st.Dropped,
			Reattached: a.reattached, Problem: a.problem}
		if a.m != nil {
			ps.Mirror = a.m.Method()
		}
		out[a.port.Name] = ps
	}
	return out
}
