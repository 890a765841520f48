// Package client is a viewer of sinkd's live streams (docs/LIVE.md): it
// asks a sink for a stream of ports' frames over HTTP(S) with a bearer
// token, passes the capture on unchanged, counts its frames and the
// losses the sink reports for this viewer, and reconnects when the sink
// goes away, keeping the output one valid capture. dpcap watch and
// dpcap's Wireshark extcap use it.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The environment a Sink's settings fall back to.
const (
	EnvURL       = "DPCAP_LIVE_URL"
	EnvToken     = "DPCAP_LIVE_TOKEN"
	EnvTokenFile = "DPCAP_LIVE_TOKEN_FILE"
	EnvCA        = "DPCAP_LIVE_CA"
)

// Auth says how a viewer proves who it is and whom it trusts. The token
// is never a command-line value: process arguments are visible to every
// user of the host.
type Auth struct {
	// TokenFile holds the bearer token (surrounding white space is
	// ignored); empty: $DPCAP_LIVE_TOKEN, else the file named by
	// $DPCAP_LIVE_TOKEN_FILE, else no token.
	TokenFile string
	// CA is a PEM file of the authorities trusted for the sink's
	// certificate; empty: $DPCAP_LIVE_CA, else the system's.
	CA string
}

// Sink is a sink's live endpoint.
type Sink struct {
	base  *url.URL
	token string
	http  *http.Client
}

// dialTimeout bounds a connection's setup, and the wait for a response's
// headers; a stream itself has no deadline.
const dialTimeout = 10 * time.Second

// NewSink returns the sink at rawURL (https://sink-1:9311; without a
// scheme, https). It refuses to send a token in clear text to a sink that
// is not on a loopback address.
func NewSink(rawURL string, a Auth) (*Sink, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	u, err := url.Parse(rawURL)
	var ue *url.Error
	if errors.As(err, &ue) {
		// Without the URL, which may hold a token.
		err = ue.Err
	}
	if err != nil {
		return nil, fmt.Errorf("invalid sink URL: %w", err)
	}
	// Messages show the URL without its user information: a token put
	// there by habit is not said back (Redacted keeps a user name).
	shown := *u
	shown.User = nil
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("invalid sink URL %q: want https://HOST:PORT", shown.String())
	case u.Host == "":
		return nil, fmt.Errorf("invalid sink URL %q: no host", shown.String())
	case u.User != nil:
		return nil, fmt.Errorf("invalid sink URL %q: credentials go in a token file, not the URL", shown.String())
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	if token != "" && u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("refusing to send the token in clear text to %s: use https://", u.Host)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	ca := a.CA
	if ca == "" {
		ca = os.Getenv(EnvCA)
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA %s: no PEM certificate in it", ca)
		}
	}
	dialer := &net.Dialer{
		Timeout: dialTimeout,
		// A sink whose host vanished sends no FIN: probes find out.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: dialTimeout,
		ForceAttemptHTTP2:     true,
	}
	return &Sink{base: u, token: token, http: &http.Client{
		Transport: tr,
		// A redirect is the sink's mistake; following it would carry
		// the viewer elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// token reads the token from where a says.
func (a Auth) token() (string, error) {
	name := a.TokenFile
	if name == "" {
		if t := strings.TrimSpace(os.Getenv(EnvToken)); t != "" {
			return t, nil
		}
		name = os.Getenv(EnvTokenFile)
	}
	if name == "" {
		return "", nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" || strings.ContainsAny(t, "\r\n") {
		return "", fmt.Errorf("read token %s: want one line holding the token", name)
	}
	return t, nil
}

// loopback reports whether host is a loopback address or localhost.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String is the sink's address, for messages.
func (s *Sink) String() string { return s.base.Redacted() }

// StatusError is a sink's refusal: its status and the one line it said.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	msg := http.StatusText(e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return fmt.Sprintf("the sink answered %d %s", e.Code, msg)
}

// Retryable reports whether asking again later may succeed: the sink is
// busy or failing, not refusing the viewer.
func (e *StatusError) Retryable() bool {
	return e.Code >= 500 || e.Code == http.StatusTooManyRequests
}

// get sends a GET for path and query; a response other than 200 is a
// *StatusError.
func (s *Sink) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := s.base.JoinPath(path)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.http.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		// What failed, without the request's URL and expression.
		err = ue.Err
	}
	if err != nil {
		return nil, s.redact(err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return nil, s.redact(&StatusError{Code: resp.StatusCode, Message: line})
}

// redact keeps the token out of an error, whatever a server or proxy
// echoed.
func (s *Sink) redact(err error) error {
	if s.token == "" || !strings.Contains(err.Error(), s.token) {
		return err
	}
	var se *StatusError
	if errors.As(err, &se) {
		return &StatusError{Code: se.Code, Message: strings.ReplaceAll(se.Message, s.token, "[token]")}
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.token, "[token]"))
}

// Port is a port (or a source) a sink serves, as /v1/ports lists it.
type Port struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// maxPortsBody bounds /v1/ports' answer.
const maxPortsBody = 4 << 20

// Ports asks the sink which ports the token may watch.
func (s *Sink) Ports(ctx context.Context) ([]Port, error) {
	resp, err := s.get(ctx, "/v1/ports", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Ports []Port `json:"ports"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPortsBody)).Decode(&body); err != nil {
		return nil, fmt.Errorf("read the sink's ports: %w", s.redact(err))
	}
	return body.Ports, nil
}

// Request is what a viewer asks for.
type Request struct {
	// Ports are names of the port map or sources; none: every port the
	// token may see.
	Ports []string
	// Filter is a tcpdump expression the sink applies.
	Filter string
	// SnapLen cuts frames on the sink; 0 is the sink's default.
	SnapLen int
	// Pcap asks for pcap instead of pcapng.
	Pcap bool
	// Count ends the watch after this many frames; 0: no end.
	Count uint64
}

// query is r as /v1/stream's parameters, with count frames still to come.
func (r Request) query(count uint64) url.Values {
	q := url.Values{"port": r.Ports}
	if r.Filter != "" {
		q.Set("filter", r.Filter)
	}
	if r.SnapLen > 0 {
		q.Set("snaplen", strconv.Itoa(r.SnapLen))
	}
	q.Set("format", "pcapng")
	if r.Pcap {
		q.Set("format", "pcap")
	}
	if count > 0 {
		q.Set("count", strconv.FormatUint(count, 10))
	}
	return q
}
