// Command sinkd receives the NIC's encapsulated copies of sampled frames and
// writes the inner frames to pcap files, rotating them like tcpdump.
//
// Its parts: config.go parses and checks the command line (no I/O),
// run.go acquires what a capture needs and releases it (a defer stack),
// inputs.go opens the sources, files.go the capture files, outputs.go
// names the outputs built in (-z, --upload: package sink/output), and
// summary.go prints the end-of-run counts.
package main

import "os"

func main() {
	if isExtcap(os.Args[1:]) {
		os.Exit(runExtcap(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}
