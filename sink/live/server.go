package live

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink/live/access"
)

// The bounds of a request.
const (
	// MaxFilterLen bounds a viewer's expression, in bytes.
	MaxFilterLen = 4096
	// maxHeaderBytes bounds a request's headers.
	maxHeaderBytes = 8 << 10
	// readHeaderTimeout bounds the reading of a request's headers, and
	// idleTimeout how long a connection waits for its next request.
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 30 * time.Second
	// retryAfter is what a viewer refused for want of room is told to
	// wait, in seconds.
	retryAfter = "5"
)

// Config is a live endpoint's.
type Config struct {
	// Addr is where it listens (host:port).
	Addr string
	// TLS, when set, serves HTTPS; Tokens, when set, lets in only the
	// requests with one of its tokens (nil: everyone).
	TLS    *tls.Config
	Tokens *access.Tokens
	// MaxViewers bounds the viewers connected at once; Queue the bytes
	// of frames queued per viewer; WriteTimeout how long a write may
	// block before the viewer's stream ends.
	MaxViewers   int
	Queue        int
	WriteTimeout time.Duration
	// PortMap is the port map's ports, listed by /v1/ports.
	PortMap []portmap.Port
	Logger  *slog.Logger
}

// Server serves live streams of what the hub's taps see.
type Server struct {
	cfg   Config
	hub   *Hub
	srv   *http.Server
	ln    net.Listener
	slots chan struct{} // one per viewer connected
	done  chan struct{} // closed when Serve returns
	// refusedAt is when a refused token was last logged, and quiet how
	// many were not logged since.
	refusedAt atomic.Int64
	quiet     atomic.Uint64
}

// NewServer returns a server of cfg; it listens from Start.
func NewServer(cfg Config) *Server {
	s := &Server{cfg: cfg, hub: NewHub(cfg.Queue), slots: make(chan struct{}, cfg.MaxViewers)}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/stream", s.stream)
	mux.HandleFunc("/v1/ports", s.ports)
	s.srv = &http.Server{
		Handler:           noBody(mux),
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		// HTTP/1.1 alone: a stream is one long response body, which
		// HTTP/2's multiplexing adds nothing to but its own surface.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return s
}

// noBody answers a request that carries a body (none of sinkd's does)
// without reading it, and closes its connection: net/http would read up
// to 256 KiB of it after the answer with no deadline, so a body trickled
// a byte at a time would hold a connection for ever, token or not.
func noBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintln(w, "a request body: requests have none")
	})
}

// Hub returns the hub whose taps the engines are given.
func (s *Server) Hub() *Hub { return s.hub }

// Start listens and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("--live %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("live viewers' server stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stop ends every stream cleanly (its last statistics, then the end of
// its body) and the server; a viewer whose writes block ends within
// WriteTimeout.
func (s *Server) Stop() {
	s.hub.close()
	if s.ln == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// refuse answers a request with status and one line, and counts it.
func (s *Server) refuse(w http.ResponseWriter, r result, status int, msg string) {
	if r < numResults {
		s.hub.stats.requests[r].Add(1)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, strings.ReplaceAll(msg, "\n", " "))
}

// logRefused logs a request without a valid token, at most once a
// second with the number left unlogged before it: anyone who reaches the
// port can send them, and sinkd_live_requests_total counts every one.
func (s *Server) logRefused(r *http.Request, err error) {
	now, last := time.Now().UnixNano(), s.refusedAt.Load()
	if now-last < int64(time.Second) || !s.refusedAt.CompareAndSwap(last, now) {
		s.quiet.Add(1)
		return
	}
	s.cfg.Logger.Info("live viewer refused", "remote", r.RemoteAddr, "err", err, "unlogged_before", s.quiet.Swap(0))
}

// authorize checks r's method and token; it answers r when it fails.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (access.Grant, bool) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.refuse(w, numResults, http.StatusMethodNotAllowed, "only GET")
		return access.Grant{}, false
	}
	g, err := s.cfg.Tokens.Authorize(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sinkd"`)
		s.refuse(w, unauthorized, http.StatusUnauthorized, err.Error())
		s.logRefused(r, err)
		return access.Grant{}, false
	}
	return g, true
}

// stream serves /v1/stream.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authorize(w, r)
	if !ok {
		return
	}
	// r.URL.Query() would leave out the parts that do not parse (a
	// semicolon, a bad escape): the viewer would get every frame for
	// the filter it asked for.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.refuse(w, badRequest, http.StatusBadRequest, "invalid query: "+err.Error())
		return
	}
	req, err := parseRequest(q, g)
	if err != nil {
		s.refuse(w, badRequest, http.StatusBadRequest, err.Error())
		return
	}
	for _, p := range req.sel.ports {
		if !g.Allows(p) {
			s.refuse(w, forbidden, http.StatusForbidden, fmt.Sprintf("port %q is not among the ports of token %s", p, g.Name))
			return
		}
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", retryAfter)
		s.refuse(w, tooManyViewers, http.StatusServiceUnavailable, fmt.Sprintf("%d viewers are connected, the most --live-max-viewers allows", s.cfg.MaxViewers))
		return
	}
	s.hub.stats.requests[streamed].Add(1)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if req.format == pcapout.FormatPcapng {
		h.Set("Content-Type", "application/x-pcapng")
	} else {
		h.Set("Content-Type", "application/vnd.tcpdump.pcap")
		h.Set("Trailer", "Dpcap-Frames, Dpcap-Lost")
	}
	w.WriteHeader(http.StatusOK)

	v := newViewer(s.hub, req.sel, req.snap, req.filter != nil)
	st := newStreamer(s.hub, v, req, &response{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout, hub: s.hub})
	s.hub.add(v)
	s.cfg.Logger.Info("live viewer", "token", g.Name, "remote", r.RemoteAddr, "ports", strings.Join(req.sel.ports, ","),
		"filter", req.expr, "snaplen", req.snap, "format", req.format)
	why, err := st.run(r.Context())
	s.hub.leave(v)
	s.hub.stats.disconnects[why].Add(1)
	if why == countReached || why == sinkStopped {
		h.Set("Dpcap-Frames", strconv.FormatUint(st.sent, 10))
		h.Set("Dpcap-Lost", strconv.FormatUint(st.lost, 10))
	}
	attrs := []any{"token", g.Name, "remote", r.RemoteAddr, "reason", why, "frames", st.sent, "lost", v.lostTotal()}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	s.cfg.Logger.Info("live viewer left", attrs...)
}

// parseRequest parses /v1/stream's parameters for a viewer granted g.
func parseRequest(q url.Values, g access.Grant) (request, error) {
	req := request{sel: selection{scope: g}, snap: capture.MaxSnapLen, format: pcapout.FormatPcapng}
	for k, vs := range q {
		switch {
		case !slices.Contains([]string{"port", "filter", "snaplen", "format", "count"}, k):
			return req, fmt.Errorf("unknown parameter %q", k)
		case k != "port" && len(vs) > 1:
			return req, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
	}
	for _, v := range q["port"] {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(req.sel.ports, p) {
				req.sel.ports = append(req.sel.ports, p)
			}
		}
	}
	if v := q.Get("snaplen"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > capture.MaxSnapLen {
			return req, fmt.Errorf("invalid snaplen %q: want 1-%d", v, capture.MaxSnapLen)
		}
		req.snap = n
	}
	if v := q.Get("format"); v != "" {
		f, err := pcapout.ParseFormat(v)
		if err != nil {
			return req, err
		}
		req.format = f
	}
	if v := q.Get("count"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return req, fmt.Errorf("invalid count %q: want a positive number", v)
		}
		req.count = n
	}
	if req.expr = q.Get("filter"); strings.TrimSpace(req.expr) != "" {
		if len(req.expr) > MaxFilterLen {
			return req, fmt.Errorf("filter of %d bytes: at most %d", len(req.expr), MaxFilterLen)
		}
		f, err := filter.Compile(req.expr, capture.MaxSnapLen)
		if err != nil {
			return req, err
		}
		req.filter = f
	}
	return req, nil
}

// response is a viewer's HTTP response, each write bounded in time.
type response struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	hub     *Hub
}

func (r *response) Write(p []byte) (int, error) {
	if err := r.rc.SetWriteDeadline(time.Now().Add(r.timeout)); err != nil {
		return 0, err
	}
	n, err := r.w.Write(p)
	r.hub.stats.bytes.Add(uint64(n))
	return n, err
}

func (r *response) Flush() error {
	if err := r.rc.SetWriteDeadline(time.Now().Add(r.timeout)); err != nil {
		return err
	}
	return r.rc.Flush()
}

// port is one entry of /v1/ports.
type port struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// ports serves /v1/ports: the port map's ports and the sources seen, those
// the token may see.
func (s *Server) ports(w http.ResponseWriter, r *http.Request) {
	g, ok := s.authorize(w, r)
	if !ok {
		return
	}
	list := []port{}
	seen := map[string]bool{}
	srcs := s.hub.sources()
	for _, p := range s.cfg.PortMap {
		if !g.Allows(p.Name) || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		desc := p.Kind + " port of the port map"
		for _, si := range srcs {
			if si.Interface.Name == p.Name {
				desc = si.Interface.Description
			}
		}
		list = append(list, port{p.Name, desc})
	}
	for _, si := range srcs {
		if name := si.Interface.Name; !seen[name] && inScope(g, si) {
			seen[name] = true
			list = append(list, port{name, si.Interface.Description})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		Ports []port `json:"ports"`
	}{list})
}
