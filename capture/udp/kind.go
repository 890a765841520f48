package udp

import (
	"fmt"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/steer"
)

// The UDP socket is the default receive path.
func init() { capture.Register(capture.Kind{Name: "udp", Open: openKind}) }

// openKind opens a socket, or a SO_REUSEPORT group of cfg.Workers steered
// by the envelopes' inner flow.
func openKind(cfg capture.Config) (capture.Opened, error) {
	c := Config{
		Addr: cfg.Addr, Port: cfg.Port, BufferSize: cfg.BufferSize,
		SnapLen: min(cfg.SnapLen, 65535), BatchSize: capture.DefaultBatchSize, Logger: cfg.Logger,
		ArrivalInterface: cfg.ArrivalInterface,
	}
	if cfg.Workers <= 1 {
		src, err := Listen(c)
		if err != nil {
			return capture.Opened{}, err
		}
		return capture.Opened{Sources: []capture.Source{src}, BufferSize: src.ReceiveBuffer(), Desc: "udp " + src.LocalAddr().String()}, nil
	}
	prog, err := steer.Reuseport(cfg.Workers)
	if err != nil {
		return capture.Opened{}, err
	}
	group, err := ListenGroup(c, cfg.Workers, prog)
	if err != nil {
		return capture.Opened{}, err
	}
	srcs := make([]capture.Source, len(group))
	for i, s := range group {
		srcs[i] = s
	}
	desc := fmt.Sprintf("udp %s (%d sockets in a SO_REUSEPORT group, steered by inner flow)", group[0].LocalAddr(), len(group))
	return capture.Opened{Sources: srcs, BufferSize: group[0].ReceiveBuffer(), Desc: desc}, nil
}
