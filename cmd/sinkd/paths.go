package main

// The receive paths sinkd is built with: each registers itself
// (capture.Register) and openSources finds it by its flag.
import (
	_ "github.com/dpcap/dpcap/capture/afpacket"
	_ "github.com/dpcap/dpcap/capture/pcapfile"
	_ "github.com/dpcap/dpcap/capture/udp"
)
