// Package testkit is the test seam the dpcap tests share, in the spirit of
// mdlayher/netlink's nltest: waiting for a condition, reading a daemon's
// /metrics, writing and listing capture files, serializing frames,
// building the binaries, and network namespaces joined by veth pairs.
//
// Only tests import it. It depends on the standard library, gopacket and
// Prometheus' text parser, so any package's own tests can use it without
// an import cycle.
package testkit
