// Package control is dpcap's capture control: the daemon that holds the
// ports and their rules (dpcap serve), its HTTP/JSON API on a unix socket,
// its persisted state, the client the CLI uses, and the Backend interface
// that packages software, dpdk and dpservice implement.
package control

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

// StartRequest asks for capture to start.
type StartRequest struct {
	SinkNodeIP string   `json:"sink_node_ip"`
	SrcPort    uint16   `json:"udp_src_port"`
	DstPort    uint16   `json:"udp_dst_port"`
	VFs        []string `json:"vfs,omitempty"`
	PF0        bool     `json:"pf0,omitempty"`
	// Filter is a flowprog.Match: "proto=tcp,dst=10.0.0.0/8,dport=443".
	Filter string `json:"filter,omitempty"`
	// Replace stops an active capture first instead of refusing.
	Replace bool `json:"replace,omitempty"`
	// For bounds the capture's length: a Go duration ("3s", "2m"); "0s"
	// asks for no bound. Until is the deadline itself. Without either, the
	// daemon's ceiling (Config.MaxDuration) bounds the capture, if it has
	// one. Either way the daemon stops the capture at the deadline.
	For   string    `json:"for,omitempty"`
	Until time.Time `json:"until,omitzero"`
}

// Program is the NIC program a request asks for, with the envelope's
// addresses and the ports' tags (a port not in tags gets one of its own,
// flowprog.Config.Tags): the one conversion the daemon applies and the
// CLI's dry run prints. Its errors are the user's.
func (r StartRequest) Program(env Envelope, tags flowprog.TagTable) (*flowprog.Program, error) {
	if r.SinkNodeIP == "" {
		return nil, errors.New("no sink: give --sink-node-ip")
	}
	sink, err := netip.ParseAddr(r.SinkNodeIP)
	if err != nil {
		return nil, fmt.Errorf("invalid sink node IP %q", r.SinkNodeIP)
	}
	if r.DstPort == 0 {
		return nil, errors.New("no UDP port: give --udp-dst-port")
	}
	cfg := flowprog.Config{Sink: sink, Underlay: env.Underlay, RouterMAC: env.RouterMAC, PFMAC: env.PFMAC,
		SrcPort: r.SrcPort, DstPort: r.DstPort, VFs: r.VFs, PF0: r.PF0, Tags: tags}
	if r.Filter != "" {
		if cfg.Filter, err = flowprog.ParseMatch(r.Filter); err != nil {
			return nil, err
		}
	}
	return flowprog.Build(cfg)
}

// PortStatus is one captured port.
type PortStatus struct {
	Name string `json:"name"`
	Tag  uint32 `json:"tag"`
	// Samples counts the copies sent, where the backend can read it;
	// Failed the copies it could not send; Dropped the frames the kernel
	// dropped before the backend saw them.
	Samples uint64 `json:"samples"`
	Failed  uint64 `json:"failed"`
	Dropped uint64 `json:"dropped"`
	// Reattached counts the times the port's interface was deleted and
	// made again (a VM restart recreates its tap) and capture followed it.
	Reattached uint64 `json:"reattached,omitempty"`
	// Problem says why the port is not captured right now, while the
	// capture as a whole stays active.
	Problem string `json:"problem,omitempty"`
	// Mirror is how the software backend copies the port: "bpf" (in the
	// kernel) or "af_packet" (through user space, where BPF is not allowed).
	Mirror string `json:"mirror,omitempty"`
}

// Envelope is what dpcap serve puts in the envelopes the NIC prepends:
// the hypervisor's underlay address (the IPv6 source), PF0's MAC (the
// Ethernet source, read from the port) and the underlay router's (the
// Ethernet destination, --router-mac).
type Envelope struct {
	Underlay         netip.Addr
	RouterMAC, PFMAC net.HardwareAddr
}

// Status is what dpcap status shows.
type Status struct {
	// Active is a capture this daemon holds that runs: with a dataplane,
	// by the dataplane's answer (Dataplane.Differs says what runs instead).
	Active  bool   `json:"active"`
	Backend string `json:"backend"`
	// The envelope's addresses, where the daemon sets them.
	UnderlayIP string       `json:"underlay_ip,omitempty"`
	RouterMAC  string       `json:"router_mac,omitempty"`
	PFMAC      string       `json:"pf_mac,omitempty"`
	Request    StartRequest `json:"request,omitzero"`
	// ID names the capture: it is in the port map, the files and the
	// uploads of its packets (dpcap fetch --capture).
	ID string `json:"id,omitempty"`
	// Deadline is when the daemon stops the capture (zero: never), and
	// TimeLeft how long until then, to the second ("2m58s").
	Deadline time.Time `json:"deadline,omitzero"`
	TimeLeft string    `json:"time_left,omitempty"`
	// MaxDuration is the daemon's ceiling on a capture's length
	// (dpcap serve --max-duration); empty when it has none.
	MaxDuration string       `json:"max_duration,omitempty"`
	Ports       []PortStatus `json:"ports,omitempty"`
	// PortMap is the tag map sinkd reads with --port-map; PortMapFile is
	// where the daemon publishes it.
	PortMap     portmap.Map `json:"port_map,omitzero"`
	PortMapFile string      `json:"port_map_file,omitempty"`
	Started     time.Time   `json:"started,omitzero"`
	// Problem says why a saved capture could not be re-applied.
	Problem string `json:"problem,omitempty"`
	// StopRefused is when the dataplane refused dpcap stop: the capture
	// goes on there, with its port map, until it captures nothing.
	StopRefused time.Time `json:"stop_refused,omitzero"`
	// Dataplane is the dataplane's own view, for backends that drive one
	// running apart from dpcap (dp-service).
	Dataplane *DataplaneStatus `json:"dataplane,omitempty"`
}

// DataplaneStatus is what a dataplane (dp-service) says about capture, as
// last seen: it, not dpcap, holds the capture.
type DataplaneStatus struct {
	Name    string `json:"name"`    // "dp-service"
	Address string `json:"address"` // where its API listens
	// State is "ready", "not initialized" or "unreachable".
	State string `json:"state"`
	UUID  string `json:"uuid,omitempty"`
	// Captured are the ports the dataplane captures, by its own answer;
	// Stuck those of them dpcap asked it to stop (or to roll back) and it
	// did not.
	Captured []string `json:"captured,omitempty"`
	Stuck    []string `json:"stuck,omitempty"`
	// Sink is where the dataplane sends the copies ([IPv6]:port), and
	// SrcPort their UDP source port, by its own answer.
	Sink    string `json:"sink,omitempty"`
	SrcPort uint32 `json:"udp_src_port,omitempty"`
	// Differs says how the dataplane's capture differs from the one
	// dpcap serve holds (other ports or sink, or none): that capture is
	// then not active.
	Differs string `json:"differs,omitempty"`
	// Event says what dpcap last did on its own: a restart noticed, the
	// capture applied again.
	Event string `json:"event,omitempty"`
	// Problem says what is wrong now and what to do.
	Problem    string               `json:"problem,omitempty"`
	Interfaces []DataplaneInterface `json:"interfaces,omitempty"`
}

// DataplaneInterface is one interface the dataplane has (a VM's VF).
type DataplaneInterface struct {
	ID            string `json:"id"`
	VNI           uint32 `json:"vni"`
	IPv4          string `json:"ipv4,omitempty"`
	IPv6          string `json:"ipv6,omitempty"`
	UnderlayRoute string `json:"underlay_route,omitempty"`
	PCI           string `json:"pci_name,omitempty"`
}

// PortList is what GET /v1/ports answers: the ports a start may name.
type PortList struct {
	Backend string   `json:"backend"`
	Ports   []string `json:"ports"`
}

// StopResult says what dpcap stop did.
type StopResult struct {
	Stopped bool   `json:"stopped"`
	Message string `json:"message"`
}

// errorBody is the body of every failed request.
type errorBody struct {
	Error string `json:"error"`
}
