package capture

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// A Kind is a receive path: one way sinkd takes packets in (the UDP
// socket, an interface's AF_PACKET ring, a capture file; AF_XDP next).
// Each lives in a package of its own under capture/ that registers its
// Kind from init, so that adding one is a new package and a blank import.
type Kind struct {
	// Name names the path in logs and errors ("udp", "afpacket", "file").
	Name string
	// Flag is the command-line flag that selects the path, whose value
	// becomes Config.Target ("i" for -i IFACE); the one path without a
	// flag is the default. sinkd defines the flag from the registry.
	Flag string
	// Usage is the flag's lines in sinkd --help's Input section.
	Usage string
	// Offline says the path replays recorded packets (a capture file):
	// no clock, no arrival interfaces, one source, done at its end.
	Offline bool
	// Open opens cfg.Workers sources (one when the path has no workers)
	// and says what it opened.
	Open func(cfg Config) (Opened, error)
}

// Config is what a receive path is opened with: the inputs' options.
type Config struct {
	// Target is the value of the path's Flag: an interface, a file.
	Target string
	// Addr and Port are where a socket listens (--listen, --port).
	Addr netip.Addr
	Port uint16
	// Ports are the UDP ports of the envelope kinds (--ports), for the
	// kernel filter of a path that sees whole frames; NICPorts are the NIC
	// envelopes' among them, for steering, and PortNames names them all
	// for the log ("nic=3010, ..."). (capture cannot import decap, whose
	// tests read capture files.)
	Ports     []uint16
	NICPorts  []uint16
	PortNames string
	// BufferSize is each source's socket buffer or ring, in bytes.
	BufferSize int
	SnapLen    int
	// Workers is how many sources to open, steered by inner flow.
	Workers int
	// ArrivalInterface asks for each packet's arrival interface
	// (Packet.IfIndex), which --allow's zones need.
	ArrivalInterface bool
	Logger           *slog.Logger
}

// Opened is what a receive path opened.
type Opened struct {
	Sources []Source
	// BufferSize is each source's buffer as the kernel granted it (0
	// for a file).
	BufferSize int
	// Desc describes the input for the start-up log.
	Desc string
}

var (
	kindsMu sync.Mutex
	kinds   []Kind
)

// Register adds a receive path; it panics on a second path of the same
// name or flag, a mistake of the build.
func Register(k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	for _, o := range kinds {
		if o.Name == k.Name || o.Flag == k.Flag {
			panic(fmt.Sprintf("capture: receive path %q registered twice (name or flag %q taken by %q)", k.Name, k.Flag, o.Name))
		}
	}
	kinds = append(kinds, k)
}

// Kinds returns the registered receive paths, by name.
func Kinds() []Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return slices.SortedFunc(slices.Values(kinds), func(a, b Kind) int { return strings.Compare(a.Name, b.Name) })
}

// Select returns the receive path whose Flag was given, with the flag's
// value, else the default path; value says whether, and with what value, a
// flag was given. It fails when no path is registered for the choice.
func Select(value func(flag string) (string, bool)) (Kind, string, error) {
	var def *Kind
	for _, k := range Kinds() {
		if k.Flag == "" {
			def = &k
			continue
		}
		if v, ok := value(k.Flag); ok {
			return k, v, nil
		}
	}
	if def == nil {
		return Kind{}, "", fmt.Errorf("no default receive path in this build")
	}
	return *def, "", nil
}
