package live

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/filter"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink"
)

// startServer serves cfg (with the tests' tokens, on a free loopback
// port) and returns it and its URL.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.MaxViewers == 0 {
		cfg.MaxViewers = 4
	}
	if cfg.Queue == 0 {
		cfg.Queue = 1 << 20
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	cfg.Tokens = loadTokens(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := NewServer(cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, "http://" + s.Addr().String()
}

// feeder is an engine's goroutine offering frames to a tap: of vm-1 and
// vm-2 in turn, every other one IPv4 by its EtherType.
type feeder struct {
	stop chan struct{}
	done chan struct{}
}

func feed(h *Hub, size int, pace time.Duration) *feeder {
	tp := h.Tap()
	tp.Source(0, vm1)
	tp.Source(1, vm2)
	f := &feeder{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := 0; ; i++ {
			select {
			case <-f.stop:
				tp.Flush()
				return
			default:
			}
			b := frameOf(i, size)
			if i%4 < 2 {
				b[12], b[13] = 0x08, 0x00
			}
			tp.Frame(i%2, time.Unix(1700000000, int64(i)), b, size+10)
			if i%8 == 7 {
				tp.Flush()
				time.Sleep(pace) // the pace of the traffic, not a wait for anything
			}
		}
	}()
	return f
}

// end stops the engine's frames, as the capture's end does.
func (f *feeder) end() {
	close(f.stop)
	<-f.done
}

func get(t *testing.T, method, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestRefusals: every refusal is its status and one line, never a byte of
// capture, and is counted by its result.
func TestRefusals(t *testing.T) {
	s, base := startServer(t, Config{})
	f := feed(s.Hub(), 100, time.Millisecond)
	defer f.end()
	tests := []struct {
		method, query, token string
		status               int
		line                 string
	}{
		{"POST", "", nocToken, 405, "only GET"},
		{"GET", "", "", 401, "no bearer token"},
		{"GET", "", "not-a-token-of-the-file", 401, "unknown token"},
		{"GET", "snaplen=0", nocToken, 400, `invalid snaplen "0": want 1-262144`},
		{"GET", "format=pcapng2", nocToken, 400, `invalid format "pcapng2": want pcap or pcapng`},
		{"GET", "count=-1", nocToken, 400, `invalid count "-1": want a positive number`},
		{"GET", "token=x", nocToken, 400, `unknown parameter "token"`},
		{"GET", "filter=tcp+port+x", nocToken, 400, ""},
		{"GET", "filter=" + strings.Repeat("ip+or+", 700) + "ip", nocToken, 400, "filter of 4202 bytes: at most 4096"},
		{"GET", "port=vm-1", vm2Token, 403, `port "vm-1" is not among the ports of token tenant-2`},
		{"GET", "port=vm-2,pf0", vm2Token, 403, `port "pf0" is not among the ports of token tenant-2`},
		// A part of the query that does not parse is refused, not left
		// out: without it the viewer would get another stream than it
		// asked for (every frame for a filter, every port for a port).
		{"GET", "port=vm-1&count=1&filter=icmp;x", nocToken, 400, `invalid query: invalid semicolon separator in query`},
		{"GET", "port=vm-1&count=1&filter=udp%zz", nocToken, 400, `invalid query: invalid URL escape "%zz"`},
	}
	for _, tt := range tests {
		resp := get(t, tt.method, base+"/v1/stream?"+tt.query, tt.token)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if resp.StatusCode != tt.status || len(lines) != 1 || tt.line != "" && lines[0] != tt.line {
			t.Errorf("%s ?%.40s: %d %q, want %d %q", tt.method, tt.query, resp.StatusCode, body, tt.status, tt.line)
		}
		if got := resp.Header.Get("WWW-Authenticate"); (tt.status == 401) != (got == `Bearer realm="sinkd"`) {
			t.Errorf("%d with WWW-Authenticate %q", tt.status, got)
		}
	}
	st := &s.hub.stats
	if got := [...]uint64{st.requests[unauthorized].Load(), st.requests[badRequest].Load(), st.requests[forbidden].Load(), st.requests[streamed].Load()}; got != [...]uint64{2, 8, 2, 0} {
		t.Errorf("unauthorized, bad_request, forbidden, streamed: %v", got)
	}
}

// TestRequestBody: a request carrying a body is answered at once and its
// connection closed, however slowly the body comes: nothing reads it.
func TestRequestBody(t *testing.T) {
	_, base := startServer(t, Config{})
	for _, req := range []string{
		"GET /v1/ports HTTP/1.1\r\nHost: sinkd\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\nab",
		"GET /v1/stream HTTP/1.1\r\nHost: sinkd\r\nAuthorization: Bearer " + nocToken + "\r\nContent-Length: 1000\r\n\r\nab",
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, req)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || !strings.HasPrefix(string(got), "HTTP/1.1 400 ") {
			t.Errorf("%.40q: %q, %v; want 400 and the connection closed", req, got, err)
		}
	}
}

// TestMaxViewers: a viewer past --live-max-viewers gets 503 and
// Retry-After, and one may come once another left.
func TestMaxViewers(t *testing.T) {
	s, base := startServer(t, Config{MaxViewers: 1})
	first := get(t, "GET", base+"/v1/stream", vm1Token)
	testkit.Eventually(t, 10*time.Second, "the first viewer", func() bool { return s.hub.stats.viewers.Load() == 1 })
	resp := get(t, "GET", base+"/v1/stream", vm2Token)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "--live-max-viewers") {
		t.Fatalf("second viewer: %d %q, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	first.Body.Close()
	testkit.Eventually(t, 10*time.Second, "the first viewer to leave", func() bool { return s.hub.stats.viewers.Load() == 0 })
	resp = get(t, "GET", base+"/v1/stream", vm2Token)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after the first left: %d", resp.StatusCode)
	}
}

// TestStreamCount: a pcap stream of one port, with a snap length, ends
// after count frames with the counts in its trailers.
func TestStreamCount(t *testing.T) {
	s, base := startServer(t, Config{})
	f := feed(s.Hub(), 200, time.Millisecond)
	defer f.end()
	resp := get(t, "GET", base+"/v1/stream?port=vm-1&format=pcap&snaplen=40&count=25", vm1Token)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.tcpdump.pcap" {
		t.Fatalf("%d %v %q", resp.StatusCode, err, resp.Header.Get("Content-Type"))
	}
	if resp.Trailer.Get("Dpcap-Frames") != "25" || resp.Trailer.Get("Dpcap-Lost") != "0" {
		t.Errorf("trailers %v", resp.Trailer)
	}
	r, err := pcapfile.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, ci, _, err := r.ReadPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var i int
		fmt.Sscanf(string(data[:8]), "%d", &i)
		if len(data) != 40 || ci.Length != 210 || i%2 != 0 {
			t.Errorf("frame %d: %d bytes of %d", i, len(data), ci.Length)
		}
		n++
	}
	if n != 25 {
		t.Errorf("%d frames, want 25", n)
	}
	if got := s.hub.stats.disconnects[countReached].Load(); got != 1 {
		t.Errorf("disconnects{count} = %d", got)
	}
}

// TestStopEndsStreams: when the capture is over, a pcapng stream gets
// its last frames, then an interface statistics block per port with its
// counts (received = accepted + filtered, none lost), then its end.
func TestStopEndsStreams(t *testing.T) {
	if !filter.Available {
		t.Skip("expressions need libpcap: -tags libpcap")
	}
	s, base := startServer(t, Config{})
	f := feed(s.Hub(), 100, time.Millisecond)
	resp := get(t, "GET", base+"/v1/stream?filter=ip", nocToken)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-pcapng" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	testkit.Eventually(t, 10*time.Second, "frames sent", func() bool { return s.hub.stats.sent.Load() > 100 })
	f.end()
	s.Stop()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	stats, isbs := testkit.PcapngStats(t, body)
	r, err := pcapfile.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	perPort := map[int]uint64{}
	for {
		_, ci, _, err := r.ReadPacket()
		if err != nil {
			break
		}
		perPort[ci.InterfaceIndex]++
	}
	if len(stats) != 2 || isbs < 2 {
		t.Fatalf("statistics %v in %d blocks", stats, isbs)
	}
	h := &s.hub.stats
	var recv, accepted uint64
	for name, st := range stats {
		recv += st.Recv
		accepted += st.FilterAccept
		if st.Drop != 0 || st.FilterAccept == 0 || st.FilterAccept >= st.Recv {
			t.Errorf("%s: %+v", name, st)
		}
	}
	if accepted != perPort[0]+perPort[1] || accepted != h.sent.Load() || recv != h.sent.Load()+h.filtered.Load() {
		t.Errorf("accepted %d, received %d; frames %v; sent %d filtered %d", accepted, recv, perPort, h.sent.Load(), h.filtered.Load())
	}
	if h.disconnects[sinkStopped].Load() != 1 {
		t.Errorf("disconnects{sink_stopped} = %d", h.disconnects[sinkStopped].Load())
	}
}

// TestSlowClient: a viewer that reads nothing costs the engine nothing:
// its frames are lost for it, counted, and its stream ends once a write
// has blocked for WriteTimeout.
func TestSlowClient(t *testing.T) {
	left := make(chan uint64, 1)
	logger := slog.New(leftHandler{left})
	s, base := startServer(t, Config{Queue: 256 << 10, WriteTimeout: 300 * time.Millisecond, Logger: logger})
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /v1/stream HTTP/1.1\r\nHost: sinkd\r\nAuthorization: Bearer %s\r\n\r\n", nocToken)
	testkit.Eventually(t, 10*time.Second, "the viewer", func() bool { return s.hub.stats.viewers.Load() == 1 })
	f := feed(s.Hub(), 1400, 0)
	defer f.end()
	testkit.Eventually(t, 30*time.Second, "the stalled viewer's end", func() bool {
		return s.hub.stats.disconnects[slowClient].Load() == 1
	})
	if s.hub.stats.lost.Load() == 0 {
		t.Error("no frame counted lost")
	}
	// The log says what the viewer lost, though its stream could not
	// say it (a tap may still count a few after it left).
	if n := <-left; n == 0 || n > s.hub.stats.lost.Load() {
		t.Errorf("the viewer left having lost %d frames, the hub counted %d", n, s.hub.stats.lost.Load())
	}
}

// leftHandler hands on the frames lost of "live viewer left".
type leftHandler struct{ lost chan<- uint64 }

func (h leftHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h leftHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h leftHandler) WithGroup(string) slog.Handler            { return h }
func (h leftHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "live viewer left" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "lost" {
				h.lost <- a.Value.Uint64()
			}
			return true
		})
	}
	return nil
}

// TestPorts: /v1/ports lists the port map's ports and the sources seen,
// those the token may see.
func TestPorts(t *testing.T) {
	s, base := startServer(t, Config{PortMap: []portmap.Port{{Name: "vm-1", Kind: "vf"}, {Name: "vm-2", Kind: "vf"}, {Name: "pf0", Kind: "pf"}}})
	tp := s.Hub().Tap()
	for i, si := range []sink.SourceInfo{vm1, pf0vm1, tagged} {
		tp.Source(i, si)
	}
	for _, tt := range []struct{ token, want string }{
		{nocToken, "vm-1 (nic envelopes from 2001:db8::1)|vm-2 (vf port of the port map)|pf0 (pf port of the port map)|pf0 to vm-1 ()|2001:db8::10 tag 5 ()"},
		{vm1Token, "vm-1 (nic envelopes from 2001:db8::1)|pf0 to vm-1 ()"},
		{vm2Token, "vm-2 (vf port of the port map)"},
	} {
		resp := get(t, "GET", base+"/v1/ports", tt.token)
		var list struct{ Ports []port }
		err := json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&list)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range list.Ports {
			got = append(got, p.Name+" ("+p.Description+")")
		}
		if strings.Join(got, "|") != tt.want {
			t.Errorf("%s: %q, want %q", tt.token[:8], strings.Join(got, "|"), tt.want)
		}
	}
}

// TestRequestHeadBound: a request's line and headers are taken up to 12
// KiB (maxHeaderBytes and the 4 KiB net/http reads beyond it), as
// docs/LIVE.md says; beyond, 431 and nothing streamed.
func TestRequestHeadBound(t *testing.T) {
	_, base := startServer(t, Config{})
	for _, tt := range []struct {
		pad    int
		status int
	}{{11 << 10, http.StatusOK}, {12 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /v1/ports HTTP/1.1\r\nHost: sinkd\r\nAuthorization: Bearer %s\r\nX-Pad: %s\r\n\r\n", nocToken, strings.Repeat("a", tt.pad))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != tt.status {
			t.Errorf("a header of %d bytes: %v %v, want %d", tt.pad, resp, err, tt.status)
		}
	}
}

// TestRefusedLoggedOncePerSecond: a flood of requests without a valid
// token, which anyone reaching the port can send, logs one line a second,
// saying how many it left out, while /metrics counts every one.
func TestRefusedLoggedOncePerSecond(t *testing.T) {
	var log strings.Builder
	var mu sync.Mutex
	s, base := startServer(t, Config{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))})
	for range 50 {
		resp := get(t, "GET", base+"/v1/stream", "not-a-token-of-the-file")
		resp.Body.Close()
	}
	if n := s.hub.stats.requests[unauthorized].Load(); n != 50 {
		t.Errorf("%d refusals counted, want 50", n)
	}
	mu.Lock()
	lines := strings.Count(log.String(), "live viewer refused")
	mu.Unlock()
	// 50 requests take well under a second here; two lines allow for a
	// second's boundary on a loaded machine.
	if lines < 1 || lines > 2 {
		t.Errorf("%d lines logged for 50 refusals:\n%s", lines, log.String())
	}
	time.Sleep(time.Second) // the next second's first refusal: not a synchronisation
	resp := get(t, "GET", base+"/v1/stream", "")
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "unlogged_before=") || strings.Count(log.String(), "live viewer refused") != lines+1 {
		t.Errorf("after a second:\n%s", log.String())
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
