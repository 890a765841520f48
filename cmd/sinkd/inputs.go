package main

import (
	"log/slog"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/sink"
)

// openSources opens the input the flags selected (the UDP socket, -r's
// file, -i's ring), one source per worker. It returns the sources, the
// buffer size of each and a description for the log.
func openSources(c config, logger *slog.Logger) ([]capture.Source, int, string, error) {
	in, err := c.input.Open(capture.Config{
		Target: c.target, Addr: c.listen, Port: c.port, BufferSize: c.bufferSize,
		Ports: decap.UDPPorts(c.ports), NICPorts: c.ports[decap.KindNIC], PortNames: decap.FormatPorts(c.ports),
		SnapLen: c.snapLen, Workers: c.workers, ArrivalInterface: sink.Zoned(c.allow), Logger: logger,
	})
	return in.Sources, in.BufferSize, in.Desc, err
}

// newDecoder returns a worker's decoder of whole frames, with --ports; a
// source of socket payloads (capture.Payloads) has no use for it.
func newDecoder(c config) sink.Decoder { return decap.NewDecoder(c.ports) }
