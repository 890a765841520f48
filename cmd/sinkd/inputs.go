package main

import (
	"fmt"
	"log/slog"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/capture/afpacket"
	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/capture/steer"
	"github.com/dpcap/dpcap/capture/udp"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/sink"
)

// openSources opens the input the flags name, one source per worker. It
// returns the sources, the buffer size of each and a description for the
// log.
func openSources(c config, logger *slog.Logger) ([]capture.Source, int, string, error) {
	switch {
	case c.readFile != "":
		src, err := pcapfile.OpenSource(c.readFile)
		return []capture.Source{src}, 0, c.readFile, err
	case c.iface != "":
		return openInterface(c)
	}
	cfg := udp.Config{
		Addr: c.listen, Port: c.port, BufferSize: c.bufferSize,
		SnapLen: min(c.snapLen, 65535), BatchSize: capture.DefaultBatchSize, Logger: logger,
		ArrivalInterface: sink.Zoned(c.allow),
	}
	if c.workers == 1 {
		src, err := udp.Listen(cfg)
		if err != nil {
			return nil, 0, "", err
		}
		return []capture.Source{src}, src.ReceiveBuffer(), "udp " + src.LocalAddr().String(), nil
	}
	prog, err := steer.Reuseport(c.workers)
	if err != nil {
		return nil, 0, "", err
	}
	group, err := udp.ListenGroup(cfg, c.workers, prog)
	if err != nil {
		return nil, 0, "", err
	}
	srcs := make([]capture.Source, len(group))
	for i, s := range group {
		srcs[i] = s
	}
	desc := fmt.Sprintf("udp %s (%d sockets in a SO_REUSEPORT group, steered by inner flow)", group[0].LocalAddr(), len(group))
	return srcs, group[0].ReceiveBuffer(), desc, nil
}

// openInterface opens -i's capture: one ring, or a PACKET_FANOUT group of
// c.workers steered by the NIC envelopes' inner flow (the other kinds by
// their outer addresses).
func openInterface(c config) ([]capture.Source, int, string, error) {
	cfg := afpacket.Config{Interface: c.iface, Ports: decap.UDPPorts(c.ports), BufferSize: c.bufferSize}
	desc := "interface " + c.iface + " (" + decap.FormatPorts(c.ports) + ")"
	if c.workers == 1 {
		src, err := afpacket.Open(cfg)
		return []capture.Source{src}, c.bufferSize, desc, err
	}
	prog, err := steer.Fanout(c.workers, c.ports[decap.KindNIC], steer.NetOff)
	if err != nil {
		return nil, 0, "", err
	}
	group, err := afpacket.OpenGroup(cfg, c.workers, prog)
	if err != nil {
		return nil, 0, "", err
	}
	srcs := make([]capture.Source, len(group))
	for i, s := range group {
		srcs[i] = s
	}
	return srcs, c.bufferSize, fmt.Sprintf("%s, %d rings in a PACKET_FANOUT group, steered by inner flow", desc, len(group)), nil
}

// newDecoder returns a worker's decoder of whole frames, with --ports; a
// source of socket payloads (capture.Payloads) has no use for it.
func newDecoder(c config) sink.Decoder { return decap.NewDecoder(c.ports) }
