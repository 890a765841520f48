package control

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveTest serves s's API on a unix socket in a temporary directory.
func serveTest(t *testing.T, s *Server) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(socket, -1)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, s, ln)
	return socket
}

// serveOn serves s's API on ln until the test ends.
func serveOn(t *testing.T, s *Server, ln net.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// post sends body raw, as a client the CLI is not, and returns the answer.
func post(t *testing.T, socket, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Post("http://dpcap/v1/start", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPIRefusesBadRequests(t *testing.T) {
	socket := serveTest(t, newTestServer(t, &recorder{}, t.TempDir()))
	good := `{"sink_node_ip":"2001:db8::9","udp_dst_port":3010,"vfs":["vm-1"]}`
	tests := []struct {
		name, body, want string
	}{
		{"data after the object", good + `{"replace":true}`, "data after the JSON object"},
		{"garbage after the object", good + ` xyz`, "data after the JSON object"},
		{"an unknown field", `{"sink_node_ip":"2001:db8::9","udp_dst_port":3010,"vfs":["vm-1"],"filtr":"proto=tcp"}`, `unknown field \"filtr\"`},
		{"a port the daemon does not serve", `{"sink_node_ip":"2001:db8::9","udp_dst_port":3010,"vfs":["vm-9"]}`, `unknown port \"vm-9\"`},
		{"a body too large", `{"sink_node_ip":"` + strings.Repeat("x", maxBody) + `"}`, "too large"},
		{"not JSON", `sink=1`, "invalid request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := post(t, socket, tt.body); code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Fatalf("answer %d %s, want 400 with %q", code, body, tt.want)
			}
		})
	}
	if code, body := post(t, socket, good+"\n"); code != http.StatusOK {
		t.Fatalf("a good request: %d %s", code, body)
	}
	_, err := NewClient(socket).Start(context.Background(), StartRequest{SinkNodeIP: "2001:db8::9", DstPort: 3010, VFs: []string{"vm-9"}, Replace: true})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest {
		t.Fatalf("the client's error for an unknown port: %#v", err)
	}
}

// TestAPISlowClientsCannotHoldTheDaemon: clients that send half a request
// and stall are cut off, and while they stall, at most limits.conns of
// them are served; the next client still gets its answer.
func TestAPISlowClientsCannotHoldTheDaemon(t *testing.T) {
	s := newTestServer(t, &recorder{}, t.TempDir())
	s.limits.header, s.limits.read, s.limits.conns = 200*time.Millisecond, 400*time.Millisecond, 2
	socket := serveTest(t, s)
	var stalled []net.Conn
	for range 4 {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Headers in time, then a body that never comes.
		if _, err := io.WriteString(c, "POST /v1/start HTTP/1.1\r\nHost: dpcap\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := NewClient(socket).Status(ctx); err != nil {
		t.Fatalf("status while slow clients stall: %v", err)
	}
	t.Logf("status answered after %v", time.Since(start).Round(time.Millisecond))
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("stalled client %d still connected: %v", i, err)
		}
	}
}

func TestListenReplacesOnlyAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "precious")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, link, dir} {
		if ln, err := Listen(p, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
			if ln != nil {
				ln.Close()
			}
			t.Fatalf("listen on %s: %v", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "data" {
		t.Fatalf("the file at --socket was touched: %q %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode().Type() != os.ModeSymlink {
		t.Fatalf("the link at --socket was touched: %v", err)
	}

	socket := filepath.Join(dir, "api.sock")
	live, err := Listen(socket, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(socket, -1); err == nil || !strings.Contains(err.Error(), "another dpcap serve") {
		t.Fatalf("listen over a live socket: %v", err)
	}
	// A daemon killed leaves its socket behind: nobody answers on it.
	live.(*net.UnixListener).SetUnlinkOnClose(false)
	live.Close()
	ln, err := Listen(socket, -1)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln.Close()
}
