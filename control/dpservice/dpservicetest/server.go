// Package dpservicetest is a gRPC server that answers dpdkironcore.v1 as
// dp-service does at commit 45bcfd6 (the version dpcap is tested against),
// for tests: it keeps the same state (a global capture flag and one
// captured flag per port) and runs the same logic, defects included:
//
//   - every call but Initialize answers ABORTED "not initialized" until
//     Initialize is called; the UUID changes when the process restarts;
//   - without offload, CaptureStart answers in-band 211 NOT_ACTIVE;
//   - CaptureStop on captured ports answers 210 ALREADY_ACTIVE and leaves
//     them captured (its "disable all" enables each captured port again);
//   - a multi-port start failing on a later port answers 212 ROLLBACK and
//     leaves the earlier ports captured while the global flag says off.
package dpservicetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// dp-service's in-band error numbers (include/dp_error.h).
const (
	errNotFound      = 201
	errAlreadyExists = 202
	errNoVM          = 205
	errAlreadyActive = 210
	errNotActive     = 211
	errRollback      = 212
	errRuleAdd       = 213
)

var errNames = map[uint32]string{errNotFound: "NOT_FOUND", errAlreadyExists: "ALREADY_EXISTS", errNoVM: "NO_VM",
	errAlreadyActive: "ALREADY_ACTIVE", errNotActive: "NOT_ACTIVE", errRollback: "ROLLBACK", errRuleAdd: "RTE_RULE_ADD"}

// maxCapturePorts is DP_CAPTURE_MAX_PORT_NUM.
const maxCapturePorts = 16

// Options are the dp-service command line's choices that matter here.
type Options struct {
	// Offload is dp-service without --no-offload (hardware); capture is
	// refused without it.
	Offload bool
}

type port struct {
	iface    *dpdkpb.Interface // nil for the PFs
	captured bool
}

// Server is one dp-service "process"; Restart starts a new one.
type Server struct {
	dpdkpb.UnimplementedDPDKironcoreServer
	opts Options

	mu          sync.Mutex
	uuid        string
	initialized bool
	pfs         [2]*port
	vfs         []*port // in creation order, as dp-service's port table
	capture     bool
	sink        *dpdkpb.IpAddress
	src, dst    uint32
	failOn      string // interface id whose capture rules the "hardware" refuses
	calls       map[string]int

	ln   net.Listener
	grpc *grpc.Server
}

// New returns a server, not yet listening.
func New(opts Options) *Server {
	s := &Server{opts: opts}
	s.reset()
	return s
}

func (s *Server) reset() {
	b := make([]byte, 16)
	rand.Read(b)
	s.uuid = fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	s.initialized, s.capture, s.vfs = false, false, nil
	s.pfs = [2]*port{{}, {}}
	s.calls = map[string]int{}
}

// Listen serves on addr ("127.0.0.1:0" picks a port) until Close.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(s.needsInit))
	dpdkpb.RegisterDPDKironcoreServer(g, s)
	s.mu.Lock()
	s.ln, s.grpc = ln, g
	s.mu.Unlock()
	go g.Serve(ln)
	return nil
}

// Addr is where the server listens.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving: dp-service is down (unreachable).
func (s *Server) Close() {
	s.mu.Lock()
	g := s.grpc
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Restart is a new dp-service process on the same address: a new UUID,
// not initialized, no interfaces, no capture.
func (s *Server) Restart() error {
	s.Close()
	s.mu.Lock()
	addr := s.ln.Addr().String()
	s.reset()
	s.mu.Unlock()
	return s.Listen(addr)
}

// FailCaptureOn makes the capture rules of interface id fail to install,
// as hardware may (213 RTE_RULE_ADD).
func (s *Server) FailCaptureOn(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failOn = id
}

// Calls counts the calls of a method ("CaptureStart") since the start.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Captured lists the ports whose captured flag is set, as dp-service's
// port table has them, whatever its global flag says.
func (s *Server) Captured() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i, p := range s.pfs {
		if p.captured {
			out = append(out, fmt.Sprintf("pf%d", i))
		}
	}
	for _, p := range s.vfs {
		if p.captured {
			out = append(out, string(p.iface.Id))
		}
	}
	return out
}

// needsInit answers ABORTED before Initialize, as BaseCall::HandleRpc.
func (s *Server) needsInit(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.mu.Lock()
	s.calls[methodName(info.FullMethod)]++
	ready := s.initialized
	s.mu.Unlock()
	if !ready && info.FullMethod != dpdkpb.DPDKironcore_Initialize_FullMethodName {
		return nil, status.Error(codes.Aborted, "not initialized")
	}
	return h(ctx, req)
}

func methodName(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[i+1:]
		}
	}
	return full
}

func st(code uint32) *dpdkpb.Status {
	if code == 0 {
		return &dpdkpb.Status{}
	}
	return &dpdkpb.Status{Code: code, Message: errNames[code]}
}

// Initialize implements dpdkpb.DPDKironcoreServer.
func (s *Server) Initialize(context.Context, *dpdkpb.InitializeRequest) (*dpdkpb.InitializeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initialized = true
	return &dpdkpb.InitializeResponse{Status: st(0), Uuid: s.uuid}, nil
}

// CheckInitialized implements dpdkpb.DPDKironcoreServer.
func (s *Server) CheckInitialized(context.Context, *dpdkpb.CheckInitializedRequest) (*dpdkpb.CheckInitializedResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &dpdkpb.CheckInitializedResponse{Status: st(0), Uuid: s.uuid}, nil
}

// CreateInterface implements dpdkpb.DPDKironcoreServer: a VM interface
// with addresses given as text, an underlay route from fc00:1::/64.
func (s *Server) CreateInterface(_ context.Context, r *dpdkpb.CreateInterfaceRequest) (*dpdkpb.CreateInterfaceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.InterfaceId) == 0 {
		return nil, status.Error(codes.InvalidArgument, "Invalid interface_id")
	}
	if s.vf(string(r.InterfaceId)) != nil {
		return &dpdkpb.CreateInterfaceResponse{Status: st(errAlreadyExists)}, nil
	}
	n := len(s.vfs)
	route := netip.AddrFrom16([16]byte{0xfc, 0, 0, 1, 14: byte((n + 1) >> 8), 15: byte(n + 1)}).String()
	if len(r.PreferredUnderlayRoute) > 0 {
		route = string(r.PreferredUnderlayRoute)
	}
	iface := &dpdkpb.Interface{Id: r.InterfaceId, Vni: r.Vni, UnderlayRoute: []byte(route),
		PciName: fmt.Sprintf("net_tap%d", n+2)}
	if r.Ipv4Config != nil {
		iface.PrimaryIpv4 = r.Ipv4Config.PrimaryAddress
	}
	if r.Ipv6Config != nil {
		iface.PrimaryIpv6 = r.Ipv6Config.PrimaryAddress
	}
	s.vfs = append(s.vfs, &port{iface: iface})
	return &dpdkpb.CreateInterfaceResponse{Status: st(0), UnderlayRoute: []byte(route),
		Vf: &dpdkpb.VirtualFunction{Name: fmt.Sprintf("dtapvf_%d", n)}}, nil
}

func (s *Server) vf(id string) *port {
	for _, p := range s.vfs {
		if string(p.iface.Id) == id {
			return p
		}
	}
	return nil
}

// ListInterfaces implements dpdkpb.DPDKironcoreServer.
func (s *Server) ListInterfaces(context.Context, *dpdkpb.ListInterfacesRequest) (*dpdkpb.ListInterfacesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &dpdkpb.ListInterfacesResponse{Status: st(0)}
	for _, p := range s.vfs {
		resp.Interfaces = append(resp.Interfaces, p.iface)
	}
	return resp, nil
}

// CaptureStart implements dpdkpb.DPDKironcoreServer as
// CaptureStartCall::FillRequest and dp_process_capture_start do.
func (s *Server) CaptureStart(_ context.Context, r *dpdkpb.CaptureStartRequest) (*dpdkpb.CaptureStartResponse, error) {
	cfg := r.GetCaptureConfig()
	switch {
	case cfg.GetUdpSrcPort() > 65535:
		return nil, status.Error(codes.InvalidArgument, "Invalid udp_src_port")
	case cfg.GetUdpDstPort() > 65535:
		return nil, status.Error(codes.InvalidArgument, "Invalid udp_dst_port")
	case !isIPv6Text(cfg.GetSinkNodeIp().GetAddress()):
		return nil, status.Error(codes.InvalidArgument, "Invalid sink_node_ip")
	case len(cfg.GetInterfaces()) > maxCapturePorts:
		return nil, status.Error(codes.InvalidArgument, "Too many interfaces to be captured")
	}
	for _, i := range cfg.GetInterfaces() {
		if i.GetInterfaceType() == dpdkpb.CaptureInterfaceType_SINGLE_VF && len(i.GetVfName()) == 0 {
			return nil, status.Error(codes.InvalidArgument, "Invalid interface_id")
		}
		if i.GetInterfaceType() == dpdkpb.CaptureInterfaceType_SINGLE_PF && i.GetPfIndex() > 255 {
			return nil, status.Error(codes.InvalidArgument, "Invalid pf_index")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opts.Offload {
		return &dpdkpb.CaptureStartResponse{Status: st(errNotActive)}, nil
	}
	if s.capture {
		return &dpdkpb.CaptureStartResponse{Status: st(errAlreadyActive)}, nil
	}
	s.sink, s.src, s.dst = cfg.GetSinkNodeIp(), cfg.GetUdpSrcPort(), cfg.GetUdpDstPort()
	var code uint32
	for _, i := range cfg.GetInterfaces() {
		var p *port
		if i.GetInterfaceType() == dpdkpb.CaptureInterfaceType_SINGLE_VF {
			p = s.vf(string(i.GetVfName()))
		} else if i.GetPfIndex() < 2 {
			p = s.pfs[i.GetPfIndex()]
		}
		if p == nil {
			code = errNotFound
			break
		}
		if code = s.enable(p); code != 0 {
			break
		}
	}
	if code != 0 {
		if s.disableAll() != 0 {
			code = errRollback
		}
	} else {
		s.capture = true
	}
	return &dpdkpb.CaptureStartResponse{Status: st(code)}, nil
}

// enable is dp_enable_pkt_capture.
func (s *Server) enable(p *port) uint32 {
	if p.captured {
		return errAlreadyActive
	}
	if p.iface != nil && string(p.iface.Id) == s.failOn {
		return errRuleAdd
	}
	p.captured = true
	return 0
}

// disableAll is dp_disable_pkt_capture_on_all_ifaces at that commit: it
// calls the enable function, which refuses every captured port.
func (s *Server) disableAll() uint32 {
	for _, p := range append(s.pfs[:], s.vfs...) {
		if p.captured {
			if code := s.enable(p); code != 0 {
				return code
			}
		}
	}
	return 0
}

func isIPv6Text(b []byte) bool {
	a, err := netip.ParseAddr(string(b))
	return err == nil && a.Is6()
}

// CaptureStop implements dpdkpb.DPDKironcoreServer (dp_process_capture_stop).
func (s *Server) CaptureStop(context.Context, *dpdkpb.CaptureStopRequest) (*dpdkpb.CaptureStopResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.capture {
		return &dpdkpb.CaptureStopResponse{Status: st(errNotActive)}, nil
	}
	if code := s.disableAll(); code != 0 {
		return &dpdkpb.CaptureStopResponse{Status: st(code)}, nil
	}
	s.capture = false
	return &dpdkpb.CaptureStopResponse{Status: st(0)}, nil
}

// CaptureStatus implements dpdkpb.DPDKironcoreServer (dp_process_capture_status).
func (s *Server) CaptureStatus(context.Context, *dpdkpb.CaptureStatusRequest) (*dpdkpb.CaptureStatusResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.capture {
		return &dpdkpb.CaptureStatusResponse{Status: st(0)}, nil
	}
	cfg := &dpdkpb.CaptureConfig{SinkNodeIp: s.sink, UdpSrcPort: s.src, UdpDstPort: s.dst}
	for i, p := range s.pfs {
		if p.captured {
			cfg.Interfaces = append(cfg.Interfaces, &dpdkpb.CapturedInterface{InterfaceType: dpdkpb.CaptureInterfaceType_SINGLE_PF,
				Spec: &dpdkpb.CapturedInterface_PfIndex{PfIndex: uint32(i)}})
		}
	}
	for _, p := range s.vfs {
		if p.captured {
			cfg.Interfaces = append(cfg.Interfaces, &dpdkpb.CapturedInterface{InterfaceType: dpdkpb.CaptureInterfaceType_SINGLE_VF,
				Spec: &dpdkpb.CapturedInterface_VfName{VfName: p.iface.Id}})
		}
	}
	return &dpdkpb.CaptureStatusResponse{Status: st(0), IsActive: true, CaptureConfig: cfg}, nil
}
