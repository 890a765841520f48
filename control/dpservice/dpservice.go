// Package dpservice is dpcap serve's backend for hypervisors whose NIC
// belongs to dp-service (github.com/ironcore-dev/dpservice): it drives
// dp-service's gRPC API (dpdkironcore.v1.DPDKironcore: CaptureStart,
// CaptureStop, CaptureStatus, CheckInitialized, ListInterfaces) instead of
// programming the NIC itself.
//
// dp-service holds the capture, in memory only, and at the version dpcap
// is tested against it has two defects: its stop answers 210 and leaves
// capture on, and a failed multi-port start answers 212 and leaves some
// ports captured while it reports capture off. So after every change the
// backend asks CaptureStatus what dp-service really captures, and reports
// that, never what it asked for. It watches dp-service and applies the
// capture again after a restart (a new UUID), once dp-service's
// orchestrator has initialized it and created the interfaces again; it
// never calls Initialize itself (that resets dp-service's routes).
package dpservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/dpcap/dpcap/control"
	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"github.com/dpcap/dpcap/flowprog"
)

// DefaultAddress is where dp-service's API listens by default.
const DefaultAddress = "localhost:1337"

// Poll intervals: how often a reachable dp-service is asked, and the
// bounds of the backoff while it is not.
const (
	pollEvery  = time.Second
	maxBackoff = 16 * time.Second
	callTime   = 5 * time.Second
)

// Backend drives dp-service. It implements control.Dataplane.
type Backend struct {
	addr   string
	conn   *grpc.ClientConn
	api    dpdkpb.DPDKironcoreClient
	logger *slog.Logger

	mu         sync.Mutex
	want       *flowprog.Program // the capture to keep applied; nil: none
	pending    bool              // want must be applied (again) once dp-service is ready
	state      string
	uuid       string
	interfaces []*dpdkpb.Interface
	captured   []string
	capture    *dpdkpb.CaptureConfig // what dp-service captures, as last asked; nil: nothing
	stuck      []string
	event      string
	problem    string
	published  string // mapKey of the interfaces the port map was last published from
	answered   bool   // dp-service answered a poll
	changes    uint64 // Apply and Clear calls: a poll that raced one is dropped
}

// New returns the backend for dp-service at addr (HOST:PORT). It does not
// connect yet: dp-service may come up later.
func New(addr string, logger *slog.Logger) (*Backend, error) {
	// gRPC's own reconnection backoff grows to 2 minutes; dp-service back
	// after a restart should be seen within the watch's backoff.
	bo := backoff.DefaultConfig
	bo.MaxDelay = maxBackoff
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: callTime}))
	if err != nil {
		return nil, fmt.Errorf("dp-service address %q: %w", addr, err)
	}
	return &Backend{addr: addr, conn: conn, api: dpdkpb.NewDPDKironcoreClient(conn), logger: logger, state: "unknown"}, nil
}

// Close closes the connection.
func (b *Backend) Close() error { return b.conn.Close() }

// Name implements control.Backend.
func (b *Backend) Name() string { return "dpservice" }

// Counters implements control.Backend: dp-service counts no copies.
func (b *Backend) Counters() map[string]control.PortStatus { return nil }

func (b *Backend) who() string { return "dp-service at " + b.addr }

// callErr turns a failed call into a line a user can act on.
func (b *Backend) callErr(method string, err error) error {
	switch s, _ := status.FromError(err); s.Code() {
	case codes.Aborted:
		return fmt.Errorf("%s is not initialized yet (its orchestrator initializes it after a start): try again", b.who())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s did not answer %s within %v", b.who(), method, callTime)
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%s is unreachable: %s", b.who(), s.Message())
	case codes.Unimplemented:
		return fmt.Errorf("%s does not know %s: is it dp-service?", b.who(), method)
	default:
		return fmt.Errorf("%s refused %s: %s (gRPC %s)", b.who(), method, s.Message(), s.Code())
	}
}

// listInterfaces asks dp-service for its interfaces.
func (b *Backend) listInterfaces(ctx context.Context) ([]*dpdkpb.Interface, error) {
	ctx, cancel := context.WithTimeout(ctx, callTime)
	defer cancel()
	r, err := b.api.ListInterfaces(ctx, &dpdkpb.ListInterfacesRequest{})
	if err != nil {
		return nil, b.callErr("ListInterfaces", err)
	}
	if err := inBand(r.GetStatus(), "ListInterfaces"); err != nil {
		return nil, fmt.Errorf("%s: %w", b.who(), err)
	}
	return r.GetInterfaces(), nil
}

// Ports implements control.PortLister: dp-service's interfaces.
func (b *Backend) Ports(ctx context.Context) ([]string, error) {
	ifaces, err := b.listInterfaces(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ifaces))
	for _, i := range ifaces {
		ids = append(ids, string(i.Id))
	}
	return ids, nil
}

// checkPorts refuses what dp-service cannot capture: ids it does not have,
// and filters (its API has the field but ignores it).
func (b *Backend) checkPorts(ctx context.Context, p *flowprog.Program) ([]*dpdkpb.Interface, error) {
	if p.Config.Filter != nil {
		return nil, errors.New("dp-service captures whole ports: start without --filter (filter on the sink: sinkd's filter expression)")
	}
	ifaces, err := b.listInterfaces(ctx)
	if err != nil {
		return nil, err
	}
	if missing := unknown(p.Config.VFs, ifaces); len(missing) > 0 {
		return nil, fmt.Errorf("%w %s: %s has %s", control.ErrUnknownPort, strings.Join(missing, ", "), b.who(), idList(ifaces))
	}
	return ifaces, nil
}

func unknown(ids []string, ifaces []*dpdkpb.Interface) []string {
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(ifaces, func(i *dpdkpb.Interface) bool { return string(i.Id) == id }) {
			missing = append(missing, id)
		}
	}
	return missing
}

func idList(ifaces []*dpdkpb.Interface) string {
	if len(ifaces) == 0 {
		return "no interfaces"
	}
	var ids []string
	for _, i := range ifaces {
		ids = append(ids, string(i.Id))
	}
	const show = 8
	if len(ids) > show {
		return fmt.Sprintf("interfaces %s and %d more", strings.Join(ids[:show], ", "), len(ids)-show)
	}
	return "interfaces " + strings.Join(ids, ", ")
}

// Check implements control.Backend; it asks dp-service within ctx.
func (b *Backend) Check(ctx context.Context, p *flowprog.Program) error {
	_, err := b.checkPorts(ctx, p)
	return err
}

// Apply implements control.Backend: CaptureStart, then CaptureStatus to
// learn what dp-service really did.
func (b *Backend) Apply(ctx context.Context, p *flowprog.Program) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changes++
	if err := b.applyLocked(ctx, p); err != nil {
		return err
	}
	b.want, b.pending, b.problem = p, false, ""
	return nil
}

// applyLocked applies a program Check accepted (or, after a restart, the
// one it accepted then); the interfaces are listed again for the port
// map, which names their underlay routes.
func (b *Backend) applyLocked(ctx context.Context, p *flowprog.Program) error {
	ifaces, err := b.listInterfaces(ctx)
	if err != nil {
		return err
	}
	b.interfaces = ifaces
	cctx, cancel := context.WithTimeout(ctx, callTime)
	defer cancel()
	r, err := b.api.CaptureStart(cctx, &dpdkpb.CaptureStartRequest{CaptureConfig: captureConfig(p)})
	if err != nil && answerLost(err) {
		return b.settleLocked(ctx, p, b.callErr("CaptureStart", err))
	}
	if err != nil {
		return b.callErr("CaptureStart", err) // refused as a whole: not applied
	}
	code := r.GetStatus().GetCode()
	if code == 0 {
		active, err := b.refreshLocked(ctx)
		switch {
		case err != nil:
			return control.NotUndone(fmt.Errorf("dp-service answered CaptureStart OK, but what it captures is unknown: %w", err))
		case !active || !slices.Equal(sorted(b.captured), sorted(p.Config.Ports())):
			return control.NotUndone(fmt.Errorf("dp-service answered CaptureStart OK but captures %s, not %s", portsOrNone(b.captured), strings.Join(p.Config.Ports(), ", ")))
		}
		b.started(ctx)
		return nil
	}
	why := startMeaning(r.GetStatus())
	if code == codeRollback {
		// dp-service left some ports captured but its capture flag off,
		// so CaptureStatus would say "not active". A start with no port
		// changes no port and sets the flag: then CaptureStatus lists
		// every port still captured.
		b.reveal(ctx, p)
	}
	if _, err := b.refreshLocked(ctx); err != nil {
		return control.NotUndone(fmt.Errorf("%s; what dp-service captures now is unknown: %v", why, err))
	}
	if code == codeAlreadyActive {
		return fmt.Errorf("%s: dp-service captures %s", why, portsOrNone(b.captured))
	}
	if len(b.captured) > 0 {
		b.stuck = b.captured
		return control.NotUndone(fmt.Errorf("%s; dp-service still captures %s: %s", why, strings.Join(b.captured, ", "), recovery))
	}
	return errors.New(why)
}

// started notes a capture dp-service runs as asked.
func (b *Backend) started(ctx context.Context) {
	b.stuck = nil
	// The process the capture lives in: a restart after this point is
	// noticed even before the watcher has looked.
	ctx, cancel := context.WithTimeout(ctx, callTime)
	defer cancel()
	if r, err := b.api.CheckInitialized(ctx, &dpdkpb.CheckInitializedRequest{}); err == nil {
		b.uuid = r.GetUuid()
	}
}

// answerLost tells whether a failed call may have been applied all the
// same: the answer was lost on the way (a deadline, a broken connection),
// not a refusal by dp-service.
func answerLost(err error) bool {
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Unavailable, codes.Canceled, codes.Unknown, codes.Internal, codes.DataLoss, codes.ResourceExhausted:
		return true
	}
	return false
}

// settleLocked learns from CaptureStatus what a CaptureStart whose answer
// was lost did: a call that timed out or lost its connection may have been
// applied all the same. A capture dp-service runs as asked is taken as
// started; anything else is reported as dp-service reports it.
func (b *Backend) settleLocked(ctx context.Context, p *flowprog.Program, cause error) error {
	// Asked even when the caller gave up: what dp-service does must be known.
	ctx = context.WithoutCancel(ctx)
	r, err := b.captureStatus(ctx)
	if err != nil {
		b.captured, b.capture = nil, nil
		return control.NotUndone(fmt.Errorf("%w; whether dp-service captures anything now is unknown (%v): dpcap status tells once it answers, dpcap stop stops what it captures", cause, err))
	}
	b.setCaptured(r)
	ports := strings.Join(p.Config.Ports(), ", ")
	switch {
	case r.GetIsActive() && matches(r.GetCaptureConfig(), p):
		b.logger.Warn("CaptureStart got no answer, but dp-service captures as asked: taken as started", "err", cause, "ports", ports)
		b.event = fmt.Sprintf("CaptureStart got no answer (%v), but dp-service captures %s as asked: taken as started at %s",
			cause, ports, time.Now().UTC().Format(time.RFC3339))
		b.started(ctx)
		return nil
	case len(b.captured) > 0:
		c := p.Config
		return control.NotUndone(fmt.Errorf("%w; dp-service captures %s, not %s as asked", cause, dataplaneCapture(r.GetCaptureConfig()),
			captureText(c.Ports(), c.Sink.String(), uint32(c.DstPort), uint32(c.SrcPort))))
	}
	return fmt.Errorf("%w; dp-service captures no port", cause)
}

// dataplaneCapture says what a capture config dp-service reports captures
// and where to.
func dataplaneCapture(cfg *dpdkpb.CaptureConfig) string {
	return captureText(portNames(cfg), text(cfg.GetSinkNodeIp().GetAddress()), cfg.GetUdpDstPort(), cfg.GetUdpSrcPort())
}

func captureText(ports []string, sink string, dst, src uint32) string {
	return fmt.Sprintf("%s to %s (UDP source port %d)", portsOrNone(ports), sinkText(sink, dst), src)
}

func sinkText(ip string, port uint32) string { return fmt.Sprintf("[%s]:%d", ip, port) }

// recovery is what ends capture dp-service cannot stop.
const recovery = "dp-service at this version cannot stop it (its stop enables capture again); it ends when dp-service restarts, which dpcap notices"

func (b *Backend) reveal(ctx context.Context, p *flowprog.Program) {
	ctx, cancel := context.WithTimeout(ctx, callTime)
	defer cancel()
	cfg := captureConfig(p)
	cfg.Interfaces = nil
	if _, err := b.api.CaptureStart(ctx, &dpdkpb.CaptureStartRequest{CaptureConfig: cfg}); err != nil {
		b.logger.Warn("asking dp-service which ports it still captures", "err", b.callErr("CaptureStart", err))
	}
}

// refreshLocked asks CaptureStatus what dp-service captures.
func (b *Backend) refreshLocked(ctx context.Context) (active bool, err error) {
	r, err := b.captureStatus(ctx)
	if err != nil {
		return false, err
	}
	b.setCaptured(r)
	return r.GetIsActive(), nil
}

// captureStatus asks dp-service what it captures.
func (b *Backend) captureStatus(ctx context.Context) (*dpdkpb.CaptureStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTime)
	defer cancel()
	r, err := b.api.CaptureStatus(ctx, &dpdkpb.CaptureStatusRequest{})
	if err != nil {
		return nil, b.callErr("CaptureStatus", err)
	}
	if err := inBand(r.GetStatus(), "CaptureStatus"); err != nil {
		return nil, err
	}
	return r, nil
}

func (b *Backend) setCaptured(r *dpdkpb.CaptureStatusResponse) {
	b.captured, b.capture = nil, nil
	if r.GetIsActive() {
		b.captured, b.capture = portNames(r.GetCaptureConfig()), r.GetCaptureConfig()
	}
}

// differsLocked says how what dp-service captures, as last seen, differs
// from the capture to keep applied; "" when it runs that one, or none is
// to be kept.
func (b *Backend) differsLocked() string {
	if b.want == nil {
		return ""
	}
	c := b.want.Config
	asked := captureText(c.Ports(), c.Sink.String(), uint32(c.DstPort), uint32(c.SrcPort))
	switch {
	case b.state == "unknown":
		return fmt.Sprintf("whether dp-service captures %s as asked is not known yet", asked)
	case b.capture == nil:
		return fmt.Sprintf("dp-service captures no port, not %s as asked", asked)
	case !matches(b.capture, b.want):
		return fmt.Sprintf("dp-service captures %s, not %s as asked", dataplaneCapture(b.capture), asked)
	}
	return ""
}

// Clear implements control.Backend: CaptureStop, then CaptureStatus; it
// fails, naming them, while dp-service still captures ports.
func (b *Backend) Clear() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changes++
	b.want, b.pending = nil, false
	ctx, cancel := context.WithTimeout(context.Background(), callTime)
	defer cancel()
	r, err := b.api.CaptureStop(ctx, &dpdkpb.CaptureStopRequest{})
	if err != nil {
		return fmt.Errorf("%w: whether it still captures is unknown; dpcap status will tell once it answers", b.callErr("CaptureStop", err))
	}
	code := r.GetStatus().GetCode()
	if _, err := b.refreshLocked(context.Background()); err != nil {
		return fmt.Errorf("CaptureStop answered %s, but what dp-service captures now is unknown: %w", codeName(r.GetStatus()), err)
	}
	if len(b.captured) > 0 {
		b.stuck = b.captured
		why := "CaptureStop answered " + codeName(r.GetStatus())
		if code == codeAlreadyActive {
			why += " (a known defect of dp-service at this version)"
		}
		return fmt.Errorf("dp-service did not stop capture: %s; it still captures %s: %s", why, strings.Join(b.captured, ", "), recovery)
	}
	b.stuck = nil
	return nil
}

// dp-service's in-band error numbers dpcap acts on (include/dp_error.h).
const (
	codeNotFound      = 201
	codeNoVM          = 205
	codeAlreadyActive = 210
	codeNotActive     = 211
	codeRollback      = 212
	codeRuleAdd       = 213
	codeRuleDel       = 214
)

func codeName(s *dpdkpb.Status) string {
	name := s.GetMessage()
	if name == "" {
		name = "error"
	}
	return fmt.Sprintf("%d %s", s.GetCode(), name)
}

// startMeaning says what a refused CaptureStart means to the user.
func startMeaning(s *dpdkpb.Status) string {
	var m string
	switch s.GetCode() {
	case codeNotActive:
		m = "dp-service runs without offload; hardware capture needs it"
	case codeAlreadyActive:
		m = "already active in dp-service (started elsewhere?)"
	case codeRollback:
		m = "dp-service failed on a port and could not undo the ports it had started"
	case codeNotFound, codeNoVM:
		m = "an interface is gone from dp-service"
	case codeRuleAdd, codeRuleDel:
		m = "the NIC refused dp-service's capture rules"
	default:
		m = "dp-service refused"
	}
	return fmt.Sprintf("%s (CaptureStart answered %s)", m, codeName(s))
}

func inBand(s *dpdkpb.Status, method string) error {
	if s.GetCode() == 0 {
		return nil
	}
	return fmt.Errorf("%s answered %s", method, codeName(s))
}

// captureConfig is the program as dp-service's capture request. The sink
// address is text, as dp-service reads it.
func captureConfig(p *flowprog.Program) *dpdkpb.CaptureConfig {
	c := p.Config
	cfg := &dpdkpb.CaptureConfig{
		SinkNodeIp: &dpdkpb.IpAddress{Ipver: dpdkpb.IpVersion_IPV6, Address: []byte(c.Sink.String())},
		UdpSrcPort: uint32(c.SrcPort), UdpDstPort: uint32(c.DstPort),
	}
	for _, vf := range c.VFs {
		cfg.Interfaces = append(cfg.Interfaces, &dpdkpb.CapturedInterface{InterfaceType: dpdkpb.CaptureInterfaceType_SINGLE_VF,
			Spec: &dpdkpb.CapturedInterface_VfName{VfName: []byte(vf)}})
	}
	if c.PF0 {
		cfg.Interfaces = append(cfg.Interfaces, &dpdkpb.CapturedInterface{InterfaceType: dpdkpb.CaptureInterfaceType_SINGLE_PF,
			Spec: &dpdkpb.CapturedInterface_PfIndex{PfIndex: 0}})
	}
	return cfg
}

// portNames names the ports of a capture config as dpcap does: VF ids,
// pf0, pf1.
func portNames(cfg *dpdkpb.CaptureConfig) []string {
	var out []string
	for _, i := range cfg.GetInterfaces() {
		if i.GetInterfaceType() == dpdkpb.CaptureInterfaceType_SINGLE_PF {
			out = append(out, fmt.Sprintf("pf%d", i.GetPfIndex()))
		} else {
			out = append(out, string(i.GetVfName()))
		}
	}
	return out
}

// matches tells whether dp-service's capture is the program's.
func matches(cfg *dpdkpb.CaptureConfig, p *flowprog.Program) bool {
	sink, err := netip.ParseAddr(string(cfg.GetSinkNodeIp().GetAddress()))
	return err == nil && sink == p.Config.Sink && cfg.GetUdpDstPort() == uint32(p.Config.DstPort) &&
		cfg.GetUdpSrcPort() == uint32(p.Config.SrcPort) && slices.Equal(sorted(portNames(cfg)), sorted(p.Config.Ports()))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func portsOrNone(ports []string) string {
	if len(ports) == 0 {
		return "no port"
	}
	return strings.Join(ports, ", ")
}
