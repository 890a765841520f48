//go:build linux

// Package mirror is dpcap's software backend: for NICs and hosts without
// hardware sampling, it copies every frame a port's Linux interface
// receives to the sink, wrapped in the port's envelope as the NIC would
// (zero UDP checksum, hop limit 64, the port's tag in the flow label).
//
// Two methods make the same envelopes byte for byte. The kernel mirror
// (MethodBPF) clones and wraps each frame in tc BPF programs and never
// wakes a process. The packet mirror (MethodPacket), the fallback where
// BPF is not allowed, reads with a raw AF_PACKET socket that sees incoming
// frames only and sends from the same buffers with sendmmsg. Either way
// the port's own traffic is never touched, and what cannot be sent at
// once is counted, not waited for.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The methods a mirror can use; Config.Method chooses.
const (
	MethodAuto   = ""          // the kernel mirror where allowed, else the packet mirror
	MethodBPF    = "bpf"       // tc BPF programs (needs CAP_BPF and CAP_NET_ADMIN, Linux 6.6)
	MethodPacket = "af_packet" // AF_PACKET in, sendmmsg out
)

// Port is one port to mirror.
type Port struct {
	Name      string // the name users give (vm-1, pf0)
	Interface string // the Linux interface that receives its frames
	Tag       uint32 // the flow label of its envelopes
}

// Config says where copies go and which frames to copy.
type Config struct {
	Sink    netip.AddrPort
	SrcPort uint16
	// Filter, when set, is a kernel filter: only matching frames are copied.
	Filter []bpf.RawInstruction
	// Method is MethodAuto, MethodBPF or MethodPacket.
	Method string
	// Logger receives what the mirror says on its own (why MethodAuto
	// fell back, an envelope it could not update): the backend's.
	Logger *slog.Logger
}

// Stats count a port's mirroring.
type Stats struct {
	Mirrored uint64 // frames sent to the sink
	Failed   uint64 // frames that could not be sent (socket buffer full, no route, too large)
	Dropped  uint64 // frames the kernel dropped before they could be read
}

// Mirror copies one port's frames until Stop.
type Mirror interface {
	// Port returns what is mirrored.
	Port() Port
	// Method says how: MethodBPF or MethodPacket.
	Method() string
	// Stats returns the port's counts so far.
	Stats() Stats
	// Stop ends mirroring and releases what it held.
	Stop()
}

// Start begins mirroring port with cfg.Method; MethodAuto falls back to the
// packet mirror, and logs why, when the kernel cannot run the kernel
// mirror (kernelCannot). Errors name the port and what failed.
func Start(ctx context.Context, port Port, cfg Config) (Mirror, error) {
	switch cfg.Method {
	case MethodBPF, MethodAuto:
		m, err := startKernel(ctx, port, cfg)
		if err == nil {
			return m, nil
		}
		if cfg.Method == MethodBPF || !kernelCannot(err) {
			return nil, fmt.Errorf("port %s: kernel mirror: %w", port.Name, err)
		}
		cfg.Logger.Warn("kernel mirror unavailable; mirroring through AF_PACKET", "port", port.Name, "reason", err)
	case MethodPacket:
	default:
		return nil, fmt.Errorf("unknown mirror method %q: want %s or %s", cfg.Method, MethodBPF, MethodPacket)
	}
	return startPacket(ctx, port, cfg)
}

// kernelCannot tells whether the kernel mirror failed because this kernel
// or this sink does not allow it, where the packet mirror, which sends
// through the stack, can still work: BPF or TCX not supported
// (ebpf.ErrNotSupported: Linux before 6.6, no tcx), not permitted (EPERM:
// no CAP_BPF or CAP_NET_ADMIN where it runs, a user namespace, a locked
// down kernel), or a sink it cannot address (IPv4, not behind Ethernet, a
// next hop not resolved). Anything else, the verifier refusing the
// mirror's own program above all, is a fault to report, not to hide
// behind the slower method.
func kernelCannot(err error) bool {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return false
	}
	var ua unaddressable
	return errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) || errors.As(err, &ua) || errors.Is(err, errNoNeighbour)
}

// unaddressable is a sink the kernel mirror cannot address; its message is
// the error's.
type unaddressable struct{ error }

func (e unaddressable) Unwrap() error { return e.error }
