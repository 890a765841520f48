package main

// The outputs built into sinkd, each registering itself with its flags
// (package sink/output). Adding one is a package and a line here.
import (
	_ "github.com/dpcap/dpcap/sink/live"       // --live
	_ "github.com/dpcap/dpcap/sink/postrotate" // -z
)
