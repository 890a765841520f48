//go:build !minimal

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/dpdk"
	"github.com/dpcap/dpcap/control/dpservice"
	"github.com/dpcap/dpcap/control/software"
)

// backendFlags are dpcap serve's flags that choose and set up a backend.
type backendFlags struct {
	name, mirror, dpservice, eal string
	ports                        map[string]string
}

// newBackend returns the backend the flags name, and what ends it.
func newBackend(f backendFlags, logger *slog.Logger) (control.Backend, func(), error) {
	none := func() {}
	switch f.name {
	case "dpservice":
		if len(f.ports) > 0 {
			return nil, none, usageErr{errors.New("the dpservice backend takes no --port: its ports are dp-service's interface ids")}
		}
		addr := f.dpservice
		if addr == "" {
			addr = dpservice.DefaultAddress
		}
		d, err := dpservice.New(addr, logger)
		if err != nil {
			return nil, none, usageErr{err}
		}
		return d, func() { d.Close() }, nil
	case "software":
		m := f.mirror
		switch m {
		case "auto":
			m = "" // mirror.MethodAuto
		case "bpf", "af_packet":
		default:
			return nil, none, usageErr{fmt.Errorf("invalid mirror method %q: want auto, bpf or af_packet", m)}
		}
		return software.New(f.ports, m, logger), none, nil
	case "dpdk":
		if len(f.ports) == 0 {
			return nil, none, usageErr{errors.New("the dpdk backend needs ports: give --port pf0=DPDK-PORT --port NAME=DPDK-PORT")}
		}
		b, err := dpdk.New(strings.Fields(f.eal), f.ports)
		return b, none, err
	}
	return nil, none, usageErr{fmt.Errorf("invalid backend %q: want dpservice, software or dpdk", f.name)}
}
