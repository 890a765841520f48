//go:build linux

package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/mirror"
	"golang.org/x/net/bpf"
)

// Software is the backend for hosts without hardware sampling: each port
// is a Linux interface, mirrored in software (package mirror).
type Software struct {
	ifaces  map[string]string // port name → Linux interface
	mu      sync.Mutex
	mirrors []*mirror.Mirror
}

// NewSoftware returns the backend for the given ports.
func NewSoftware(ifaces map[string]string) *Software {
	return &Software{ifaces: ifaces}
}

// Name implements Backend.
func (s *Software) Name() string { return "software" }

// Check implements Backend: every port is one this daemon serves, its
// interface exists, and the filter compiles.
func (s *Software) Check(p *flowprog.Program) error {
	_, err := s.config(p)
	return err
}

// config checks p and returns the mirrors' configuration.
func (s *Software) config(p *flowprog.Program) (mirror.Config, error) {
	cfg := mirror.Config{Sink: netip.AddrPortFrom(p.Config.Sink, p.Config.DstPort), SrcPort: p.Config.SrcPort}
	if m := p.Config.Filter; m != nil {
		prog, err := kernelFilter(m.PcapFilter())
		if err != nil {
			return cfg, err
		}
		cfg.Filter = prog
	}
	for _, t := range p.Tags.Ports {
		iface, ok := s.ifaces[t.Name]
		if !ok {
			return cfg, fmt.Errorf("%w %q: this daemon serves %s", ErrUnknownPort, t.Name, s.known())
		}
		if _, err := net.InterfaceByName(iface); err != nil {
			return cfg, fmt.Errorf("port %s: interface %s: %w", t.Name, iface, err)
		}
	}
	return cfg, nil
}

// Apply implements Backend.
func (s *Software) Apply(ctx context.Context, p *flowprog.Program) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mirrors) > 0 {
		return errors.New("capture is already applied")
	}
	cfg, err := s.config(p)
	if err != nil {
		return err
	}
	for _, t := range p.Tags.Ports {
		m, err := mirror.Start(ctx, mirror.Port{Name: t.Name, Interface: s.ifaces[t.Name], Tag: t.Tag}, cfg)
		if err != nil {
			s.stopAll()
			return err
		}
		s.mirrors = append(s.mirrors, m)
	}
	return nil
}

func kernelFilter(expr string) ([]bpf.RawInstruction, error) {
	prog, err := filter.CompileRaw(expr, 65535)
	if err != nil {
		return nil, fmt.Errorf("software backend filter: %w", err)
	}
	return prog, nil
}

func (s *Software) known() string {
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

// Clear implements Backend; stopping a mirror cannot fail.
func (s *Software) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAll()
	return nil
}

func (s *Software) stopAll() {
	for _, m := range s.mirrors {
		m.Stop()
	}
	s.mirrors = nil
}

// Counters implements Backend.
func (s *Software) Counters() map[string]PortStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]PortStatus{}
	for _, m := range s.mirrors {
		st := m.Stats()
		out[m.Port().Name] = PortStatus{Name: m.Port().Name, Tag: m.Port().Tag, Samples: st.Mirrored, Failed: st.Failed, Dropped: st.Dropped}
	}
	return out
}
