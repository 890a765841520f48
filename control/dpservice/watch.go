package dpservice

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/portmap"
)

// retryEvery spaces attempts to apply the capture again while dp-service
// refuses it.
const retryEvery = 5 * time.Second

// Resume implements control.Dataplane.
func (b *Backend) Resume(p *flowprog.Program) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want, b.pending = p, true
	b.problem = fmt.Sprintf("the saved capture on %s is applied once %s answers", strings.Join(p.Config.Ports(), ", "), b.who())
}

// Watch implements control.Dataplane: it asks dp-service every second
// while it answers, with a doubling backoff (at most 16 s) while not.
func (b *Backend) Watch(ctx context.Context, changed func()) {
	wait := pollEvery
	var retryAt time.Time
	for {
		reachable, change := b.poll(ctx, &retryAt)
		if change {
			changed()
		}
		if reachable {
			wait = pollEvery
		} else {
			wait = min(2*wait, maxBackoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// poll looks at dp-service once: its UUID (a restart), its interfaces,
// what it captures; it applies a pending capture when it can.
func (b *Backend) poll(ctx context.Context, retryAt *time.Time) (reachable, changed bool) {
	// dp-service is asked without holding the lock, so that a slow answer
	// does not hold up dpcap status; a round that raced a start or stop
	// is dropped.
	b.mu.Lock()
	changes := b.changes
	b.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, callTime)
	r, err := b.api.CheckInitialized(cctx, &dpdkpb.CheckInitializedRequest{})
	cancel()
	var (
		ifaces     []*dpdkpb.Interface
		capture    *dpdkpb.CaptureStatusResponse
		ierr, cerr error
	)
	if err == nil {
		if ifaces, ierr = b.listInterfaces(ctx); ierr == nil {
			capture, cerr = b.captureStatus(ctx)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changes != changes {
		return true, false
	}
	// The port map is published again once a running capture's interfaces
	// changed; not while it waits to be applied again (the interfaces of
	// a restarted dp-service come one by one). What dp-service captures
	// matters too, from its first answer on: a capture whose stop it
	// refused ends once it captures nothing.
	captured := strings.Join(b.captured, "\n")
	defer func() {
		if key := b.mapKey(); b.want != nil && !b.pending && key != b.published {
			b.published, changed = key, true
		}
		if answered := b.state == "ready" || b.state == "not initialized"; answered && !b.answered || captured != strings.Join(b.captured, "\n") {
			b.answered, changed = answered, true
		}
	}()
	switch status.Code(err) {
	case codes.OK:
		if b.uuid != "" && r.GetUuid() != b.uuid {
			b.restarted(b.uuid, r.GetUuid())
		}
		b.uuid = r.GetUuid()
		b.setState("ready", "")
	case codes.Aborted:
		// A new process that its orchestrator has not initialized yet.
		if b.uuid != "" {
			b.restarted(b.uuid, "")
		}
		b.uuid = ""
		b.setState("not initialized", "waiting for its orchestrator to initialize it (dpcap never does: that resets its routes)")
		return true, false
	default:
		b.setState("unreachable", b.callErr("CheckInitialized", err).Error()+"; retrying")
		return false, false
	}
	if err := cmp.Or(ierr, cerr); err != nil {
		b.problem = err.Error()
		return true, false
	}
	b.interfaces = ifaces
	b.setCaptured(capture)
	// Ports dp-service no longer captures are stuck no more, whether or
	// not its restart was seen (a round that raced a change is dropped).
	// (A new slice: Report hands the old one out.)
	var stuck []string
	for _, p := range b.stuck {
		if slices.Contains(b.captured, p) {
			stuck = append(stuck, p)
		}
	}
	b.stuck = stuck
	if b.want == nil {
		b.problem = ""
		if len(b.captured) > 0 && len(b.stuck) == 0 {
			b.problem = fmt.Sprintf("dp-service captures %s, not started by this dpcap serve (elsewhere, or a stop that could not reach it): dpcap stop stops it",
				strings.Join(b.captured, ", "))
		}
		return true, false
	}
	if b.pending {
		if time.Now().After(*retryAt) && !b.reapplyLocked(ctx) {
			*retryAt = time.Now().Add(retryEvery)
		}
		return true, false
	}
	if d := b.differsLocked(); d != "" {
		b.problem = d + " (changed elsewhere?): dpcap stop, then dpcap start, applies it again"
	} else {
		b.problem = ""
	}
	return true, false
}

// setState records dp-service's state, logging changes.
func (b *Backend) setState(state, why string) {
	if state == b.state {
		if why != "" && state != "ready" {
			b.problem = fmt.Sprintf("%s is %s: %s", b.who(), state, why)
		}
		return
	}
	switch {
	case state == "ready" && b.state != "unknown":
		b.logger.Info("dp-service ready", "address", b.addr, "uuid", b.uuid)
	case state != "ready":
		b.logger.Warn("dp-service "+state, "address", b.addr, "detail", why)
	}
	b.state = state
	if state != "ready" {
		b.problem = fmt.Sprintf("%s is %s: %s", b.who(), state, why)
	}
}

// restarted notes a new dp-service process: its capture is gone with the
// old one, so the saved capture must be applied again.
func (b *Backend) restarted(old, uuid string) {
	now := time.Now().UTC().Format(time.RFC3339)
	b.logger.Warn("dp-service restarted: its capture is gone", "address", b.addr, "old_uuid", old, "uuid", uuid)
	b.event = fmt.Sprintf("dp-service restarted (noticed %s; UUID was %s)", now, old)
	b.captured, b.capture, b.stuck, b.interfaces = nil, nil, nil, nil
	if b.want != nil {
		b.pending = true
	}
}

// reapplyLocked applies the pending capture, or adopts it when dp-service
// already runs it; it reports whether that is done.
func (b *Backend) reapplyLocked(ctx context.Context) bool {
	p := b.want
	ports := strings.Join(p.Config.Ports(), ", ")
	after := "the saved capture"
	if b.event != "" {
		after = "the capture (" + b.event + ")"
	}
	if missing := unknown(p.Config.VFs, b.interfaces); len(missing) > 0 {
		b.problem = fmt.Sprintf("%s on %s is applied again once dp-service has %s (its orchestrator creates them)", after, ports, strings.Join(missing, ", "))
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, callTime)
	r, err := b.api.CaptureStatus(cctx, &dpdkpb.CaptureStatusRequest{})
	cancel()
	if err == nil && r.GetIsActive() && matches(r.GetCaptureConfig(), p) {
		b.pending, b.problem = false, ""
		b.logger.Info("dp-service already captures the saved capture: adopted", "ports", ports)
		return true
	}
	if err := b.applyLocked(ctx, p); err != nil {
		msg := fmt.Sprintf("%s on %s could not be applied again: %v", after, ports, err)
		if msg != b.problem {
			b.logger.Error("capture not applied again", "ports", ports, "err", err)
		}
		b.problem = msg
		return false
	}
	b.pending, b.problem = false, ""
	b.event += fmt.Sprintf("; capture on %s applied again at %s", ports, time.Now().UTC().Format(time.RFC3339))
	if strings.HasPrefix(after, "the saved") {
		b.event = fmt.Sprintf("saved capture on %s applied at %s", ports, time.Now().UTC().Format(time.RFC3339))
	}
	b.logger.Info("capture applied again", "ports", ports, "uuid", b.uuid)
	return true
}

// mapKey summarises what the port map is made of.
func (b *Backend) mapKey() string {
	var s strings.Builder
	for _, i := range b.interfaces {
		fmt.Fprintf(&s, "%s|%s|%s|%s;", i.Id, i.PrimaryIpv4, i.PrimaryIpv6, i.UnderlayRoute)
	}
	return s.String()
}

// Report implements control.Dataplane.
func (b *Backend) Report() control.DataplaneStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := control.DataplaneStatus{Name: "dp-service", Address: b.addr, State: b.state, UUID: b.uuid,
		Captured: b.captured, Stuck: b.stuck, Event: b.event, Problem: b.problem, Differs: b.differsLocked()}
	if b.capture != nil {
		d.Sink = sinkText(text(b.capture.GetSinkNodeIp().GetAddress()), b.capture.GetUdpDstPort())
		d.SrcPort = b.capture.GetUdpSrcPort()
	}
	for _, i := range b.interfaces {
		d.Interfaces = append(d.Interfaces, control.DataplaneInterface{ID: string(i.Id), VNI: i.Vni,
			IPv4: text(i.PrimaryIpv4), IPv6: text(i.PrimaryIpv6), UnderlayRoute: text(i.UnderlayRoute), PCI: i.PciName})
	}
	return d
}

// PortMap implements control.Dataplane: a VF copy is the VM's own frame
// (inner source: the interface's primary addresses); a PF0 copy is an
// underlay frame (inner IPv6 destination: a VF's underlay route). With PF0
// captured, every interface's route is listed, so that PF0 copies towards
// VMs not captured themselves are named too. Sinks read names cleaned
// (portmap.CleanName), so an interface is left out whose name would read
// as one already listed (or as a captured port, or pf0): its PF0 copies are
// then counted unknown, never filed under another port, and the map stays
// one that sinks accept.
func (b *Backend) PortMap(p *flowprog.Program) portmap.Map {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := portmap.Map{Version: portmap.Version}
	src := p.Config.Underlay
	taken := map[string]bool{flowprog.PF0: p.Config.PF0}
	for _, vf := range p.Config.VFs {
		taken[portmap.CleanName(vf)] = true
	}
	listed := map[string]bool{}
	for _, i := range b.interfaces {
		captured := slices.Contains(p.Config.VFs, string(i.Id))
		name := portmap.CleanName(string(i.Id))
		if !captured && !p.Config.PF0 || name == "" || listed[name] || !captured && taken[name] {
			continue
		}
		listed[name] = true
		port := portmap.Port{Name: string(i.Id), Source: src, Kind: portmap.KindVF}
		if r := addr(i.UnderlayRoute); r.Is6() {
			port.UnderlayRoute = netip.PrefixFrom(r, 128)
		}
		if captured {
			if a := addr(i.PrimaryIpv4); a.Is4() {
				port.IPv4 = a
			}
			if a := addr(i.PrimaryIpv6); a.Is6() && !a.IsUnspecified() {
				port.IPv6 = a
			}
		}
		m.Ports = append(m.Ports, port)
	}
	if p.Config.PF0 {
		m.Ports = append(m.Ports, portmap.Port{Name: flowprog.PF0, Source: src, Kind: portmap.KindPF})
	}
	return m
}

// addr reads an address field: text as dp-service writes it, or raw
// bytes as its proto's comments promise.
func addr(b []byte) netip.Addr {
	if a, err := netip.ParseAddr(string(b)); err == nil {
		return a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(b); ok && (len(b) == 4 || len(b) == 16) {
		return a.Unmap()
	}
	return netip.Addr{}
}

func text(b []byte) string {
	if a := addr(b); a.IsValid() {
		return a.String()
	}
	return ""
}
