//go:build linux

package afpacket

import (
	"fmt"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/steer"
)

// -i IFACE selects the AF_PACKET ring.
func init() {
	capture.Register(capture.Kind{Name: "afpacket", Flag: "i", Open: openKind,
		Usage: "  -i IFACE         capture envelopes on an interface (needs CAP_NET_RAW)\n"})
}

// openKind opens a ring on cfg.Target, or a PACKET_FANOUT group of
// cfg.Workers steered by the NIC envelopes' inner flow (the other kinds by
// their outer addresses).
func openKind(cfg capture.Config) (capture.Opened, error) {
	c := Config{Interface: cfg.Target, Ports: cfg.Ports, BufferSize: cfg.BufferSize}
	desc := "interface " + cfg.Target + " (" + cfg.PortNames + ")"
	if cfg.Workers <= 1 {
		src, err := Open(c)
		if err != nil {
			return capture.Opened{}, err
		}
		return capture.Opened{Sources: []capture.Source{src}, BufferSize: cfg.BufferSize, Desc: desc}, nil
	}
	prog, err := steer.Fanout(cfg.Workers, cfg.NICPorts, steer.NetOff)
	if err != nil {
		return capture.Opened{}, err
	}
	group, err := OpenGroup(c, cfg.Workers, prog)
	if err != nil {
		return capture.Opened{}, err
	}
	srcs := make([]capture.Source, len(group))
	for i, s := range group {
		srcs[i] = s
	}
	desc = fmt.Sprintf("%s, %d rings in a PACKET_FANOUT group, steered by inner flow", desc, len(group))
	return capture.Opened{Sources: srcs, BufferSize: cfg.BufferSize, Desc: desc}, nil
}
