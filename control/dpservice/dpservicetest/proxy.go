package dpservicetest

import (
	"context"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Proxy passes gRPC calls on to a server, holding back the answers of
// chosen methods: dp-service that applies a call at once but answers it
// late (a stalled host, a congested path).
type Proxy struct {
	ln   net.Listener
	up   *grpc.ClientConn
	grpc *grpc.Server

	mu    sync.Mutex
	delay map[string]time.Duration
}

// NewProxy listens on addr ("127.0.0.1:0" picks a port) and passes calls
// on to upstream until Close.
func NewProxy(addr, upstream string) (*Proxy, error) {
	up, err := grpc.NewClient(upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		up.Close()
		return nil, err
	}
	p := &Proxy{ln: ln, up: up, delay: map[string]time.Duration{}}
	p.grpc = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(p.pass))
	go p.grpc.Serve(ln)
	return p, nil
}

// Addr is where the proxy listens.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Delay holds back the answers of method ("CaptureStart") by d, after
// the server answered; 0 passes them at once again.
func (p *Proxy) Delay(method string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay[method] = d
}

// Close stops the proxy.
func (p *Proxy) Close() {
	p.grpc.Stop()
	p.up.Close()
}

// pass forwards one unary call, as raw bytes.
func (p *Proxy) pass(_ any, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream)
	var req, resp []byte
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	// The server applies the call even when the caller gave up waiting.
	err := p.up.Invoke(context.WithoutCancel(stream.Context()), full, &req, &resp, grpc.ForceCodec(rawCodec{}))
	p.mu.Lock()
	d := p.delay[methodName(full)]
	p.mu.Unlock()
	time.Sleep(d)
	if err != nil {
		return status.Convert(err).Err()
	}
	return stream.SendMsg(&resp)
}

// rawCodec passes messages on as the bytes they came as.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
