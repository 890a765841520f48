package control

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Client talks to dpcap serve over its unix socket, or over TCP with TLS.
type Client struct {
	addr string // the socket or the URL, for errors
	base string // the requests' URL up to their path
	http *http.Client
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	return &Client{addr: socket, base: "http://dpcap", http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}}
}

// NewRemoteClient returns a client for the daemon at url
// (https://hv-1:9312, dpcap serve --listen-tls), with cfg's certificates
// (ClientTLS).
func NewRemoteClient(url string, cfg *tls.Config) *Client {
	return &Client{addr: url, base: strings.TrimSuffix(url, "/"), http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg},
	}}
}

// APIError is a request the daemon refused; Code is its HTTP status.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Status fetches the status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// Start starts capture.
func (c *Client) Start(ctx context.Context, r StartRequest) (Status, error) {
	var st Status
	return st, c.do(ctx, http.MethodPost, "/v1/start", r, &st)
}

// Ports lists the ports the daemon's backend could capture.
func (c *Client) Ports(ctx context.Context) (PortList, error) {
	var l PortList
	return l, c.do(ctx, http.MethodGet, "/v1/ports", nil, &l)
}

// Stop stops capture.
func (c *Client) Stop(ctx context.Context) (StopResult, error) {
	var res StopResult
	return res, c.do(ctx, http.MethodPost, "/v1/stop", struct{}{}, &res)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach dpcap serve at %s: %w", c.addr, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error == "" {
			e.Error = resp.Status
		}
		return &APIError{Code: resp.StatusCode, Message: e.Error}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("dpcap serve's answer: %w", err)
	}
	return nil
}

// removeStale removes the socket file at path if nobody answers on it.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen on %s: the path exists and is not a socket (mode %v): remove it or give another --socket", path, fi.Mode())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another dpcap serve is listening on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen on %s: probing the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen on %s: remove the stale socket: %w", path, err)
	}
	return nil
}

// unwrapURL keeps the network error of a failed request: "connect: no
// such file or directory" rather than net/http's wrapping around it.
func unwrapURL(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op
	}
	return err
}

// Listen opens the API's unix socket, mode 0600 (0660 and owned by group
// gid when gid >= 0). It replaces a stale socket, one nobody answers on,
// and nothing else: a live socket, a file, a directory or a link at the
// path is refused and left as it is.
func Listen(socket string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o750); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	if err := removeStale(socket); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(socket, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on %s: %w", socket, err)
		}
	}
	if err := os.Chmod(socket, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	return ln, nil
}
