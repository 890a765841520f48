package access

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

const (
	nocToken    = "noc-0123456789abcdef"
	tenantToken = "tenant-a-secret-token"
	// swappedToken is a token as base64 writes it.
	swappedToken = "q2Vj+cmV0/dG9rZW4x=="
)

func writeTokens(t *testing.T, dir, text string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func request(auth string) *http.Request {
	r := httptest.NewRequest("GET", "/v1/stream", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func TestAuthorize(t *testing.T) {
	path := writeTokens(t, t.TempDir(), "# name token ports\n\nnoc "+nocToken+" *\n  tenant-a "+sum(tenantToken)+" vm-1,vm-2\n", 0o640)
	toks, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		auth    string
		err     error
		name    string
		allowed []string
		denied  []string
	}{
		{auth: "", err: ErrNoToken},
		{auth: "Basic " + nocToken, err: ErrNoToken},
		{auth: "Bearer ", err: ErrNoToken},
		{auth: "Bearer wrong-token-0123456789", err: ErrUnknownToken},
		{auth: "Bearer " + nocToken + "x", err: ErrUnknownToken},
		{auth: "Bearer " + sum(tenantToken), err: ErrUnknownToken}, // the hash is not the token
		{auth: "Bearer " + nocToken, name: "noc", allowed: []string{"vm-1", "pf0", "2001:db8::1 tag 5"}},
		{auth: "bearer  " + tenantToken, name: "tenant-a", allowed: []string{"vm-1", "vm-2"}, denied: []string{"vm-3", "pf0", "", "vm-1,vm-2"}},
	}
	for _, tt := range tests {
		g, err := toks.Authorize(request(tt.auth))
		if !errors.Is(err, tt.err) || g.Name != tt.name {
			t.Errorf("%q: grant %q, %v; want %q, %v", tt.auth, g.Name, err, tt.name, tt.err)
		}
		for _, p := range tt.allowed {
			if !g.Allows(p) {
				t.Errorf("%s may not see %q", g.Name, p)
			}
		}
		for _, p := range tt.denied {
			if g.Allows(p) {
				t.Errorf("%s may see %q", g.Name, p)
			}
		}
	}
	var none *Tokens
	if g, err := none.Authorize(request("")); err != nil || !g.All() || g.Name != "local" {
		t.Errorf("without tokens: %+v, %v", g, err)
	}
}

// TestLoadRefuses checks each kind of bad file, and that no error quotes
// a token.
func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		text string
		mode os.FileMode
		want string
	}{
		{"noc " + nocToken + " *\n", 0o644, "readable by every user"},
		{"", 0o600, "no tokens"},
		{"noc " + nocToken + "\n", 0o600, "line 1: want NAME TOKEN PORTS, found 2 fields"},
		{"noc short-secret *\n", 0o600, "line 1 (noc): token shorter than 16 characters"},
		{"noc sha256:abcd *\n", 0o600, "line 1 (noc): invalid sha256"},
		{"noc " + nocToken + " *\nnoc " + tenantToken + " vm-1\n", 0o600, "line 2: name noc given twice"},
		{"noc " + nocToken + " *\nb " + sum(nocToken) + " vm-1\n", 0o600, "line 2 (b): the same token as an earlier line"},
		{"n/x " + nocToken + " *\n", 0o600, "line 1: invalid name"},
		// The columns swapped: the token, in the name's place, is not
		// quoted back.
		{swappedToken + " noc *\n", 0o600, "line 1: invalid name"},
		{"noc " + nocToken + " vm-1,,vm-2\n", 0o600, `invalid ports "vm-1,,vm-2"`},
	}
	for _, tt := range tests {
		_, err := Load(writeTokens(t, t.TempDir(), tt.text, tt.mode))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.text, err, tt.want)
			continue
		}
		for _, secret := range []string{nocToken, tenantToken, "short-secret", swappedToken} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes a token: %v", err)
			}
		}
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

// TestReload checks that a token added or revoked in the file takes effect
// at the next request, and that a file that stops reading keeps the last
// tokens and is reported once.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeTokens(t, dir, "noc "+nocToken+" *\n", 0o600)
	toks, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var reports []string
	toks.OnReload = func(n int, err error) {
		reports = append(reports, strings.Replace(strings.TrimSpace(errText(err)+" "), path, "FILE", 1)+"|"+string(rune('0'+n)))
	}
	rewrite := func(text string, mode os.FileMode) {
		t.Helper()
		writeTokens(t, dir, text, mode)
		// A later modification time, whatever the file system's clock
		// granularity.
		next := time.Now().Add(time.Duration(len(reports)+1) * time.Second)
		if err := os.Chtimes(path, next, next); err != nil {
			t.Fatal(err)
		}
	}
	rewrite("tenant-a "+tenantToken+" vm-1\n", 0o600)
	if _, err := toks.Authorize(request("Bearer " + nocToken)); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("a revoked token: %v", err)
	}
	if g, err := toks.Authorize(request("Bearer " + tenantToken)); err != nil || g.Name != "tenant-a" {
		t.Errorf("an added token: %+v, %v", g, err)
	}
	rewrite("tenant-a "+tenantToken+" vm-1\n", 0o644)
	for range 3 {
		if g, err := toks.Authorize(request("Bearer " + tenantToken)); err != nil || g.Name != "tenant-a" {
			t.Errorf("after a bad reading: %+v, %v", g, err)
		}
	}
	// A file left with no token revokes them all: it reads, and says
	// that nobody may watch.
	rewrite("# every token revoked\n", 0o600)
	if _, err := toks.Authorize(request("Bearer " + tenantToken)); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("a token of a file emptied: %v", err)
	}
	want := []string{"|1", "tokens FILE: readable by every user (mode 0644): chmod o-r it|1", "|0"}
	if strings.Join(reports, "\n") != strings.Join(want, "\n") {
		t.Errorf("reports:\n%s\nwant:\n%s", strings.Join(reports, "\n"), strings.Join(want, "\n"))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCheckExposure(t *testing.T) {
	tests := []struct {
		addr        string
		tls, tokens bool
		ok          bool
	}{
		{"127.0.0.1:9311", false, false, true},
		{"[::1]:9311", false, false, true},
		{"localhost:9311", false, false, true},
		{"127.0.0.2:9311", false, false, true},
		{":9311", false, false, false},
		{"0.0.0.0:9311", false, true, false},
		{"[::]:9311", true, false, false},
		{"sink-1:9311", false, false, false},
		{"192.0.2.1:9311", true, true, true},
		{":9311", true, true, true},
		{"9311", false, false, false},
	}
	for _, tt := range tests {
		if err := CheckExposure(tt.addr, tt.tls, tt.tokens); (err == nil) != tt.ok {
			t.Errorf("%s tls=%v tokens=%v: %v", tt.addr, tt.tls, tt.tokens, err)
		}
	}
}

// TestLoadTLS serves real TLS with LoadTLS's configuration and renews the
// certificate under it.
func TestLoadTLS(t *testing.T) {
	c := testkit.NewCerts(t, "127.0.0.1")
	if _, err := LoadTLS(c.Cert, c.Cert, nil); err == nil {
		t.Error("a certificate as its own key loaded")
	}
	cfg, err := LoadTLS(c.Cert, c.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	// httptest's StartTLS would put its own certificate first.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Listener = tls.NewListener(srv.Listener, cfg)
	srv.Start()
	defer srv.Close()
	url := strings.Replace(srv.URL, "http:", "https:", 1)
	get := func(certs testkit.Certs) error {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: certs.ClientConfig()}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(c); err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	// Renewed by another CA: the next handshake serves the new pair.
	renewed := testkit.NewCerts(t, "127.0.0.1")
	for _, f := range [][2]string{{renewed.Cert, c.Cert}, {renewed.Key, c.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(f[1], later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := get(renewed); err != nil {
		t.Errorf("after renewal: %v", err)
	}
	if err := get(c); err == nil {
		t.Error("the old CA still verifies the renewed certificate")
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("minimum version %x", cfg.MinVersion)
	}
}

// TestLoadTLSSaysWhatARenewalCameTo: a renewed pair that does not load is
// reported, once, while the pair read last is served; a pair that loads
// again is reported too.
func TestLoadTLSSaysWhatARenewalCameTo(t *testing.T) {
	c := testkit.NewCerts(t, "127.0.0.1")
	var heard []error
	cfg, err := LoadTLS(c.Cert, c.Key, func(err error) { heard = append(heard, err) })
	if err != nil {
		t.Fatal(err)
	}
	handshake := func() *tls.Certificate {
		t.Helper()
		pair, err := cfg.GetCertificate(nil)
		if err != nil || pair == nil {
			t.Fatalf("no certificate: %v", err)
		}
		return pair
	}
	first := handshake()
	write := func(name string, b []byte, at time.Duration) {
		t.Helper()
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(at)
		if err := os.Chtimes(name, later, later); err != nil {
			t.Fatal(err)
		}
	}
	write(c.Cert, []byte("not a certificate"), time.Minute)
	for range 2 { // the error is said once
		if handshake() != first {
			t.Error("a pair that does not load replaced the one read last")
		}
	}
	if len(heard) != 1 || heard[0] == nil || !strings.Contains(heard[0].Error(), c.Cert) {
		t.Fatalf("after a broken renewal: heard %v, want its error once", heard)
	}
	renewed := testkit.NewCerts(t, "127.0.0.1")
	for i, f := range [][2]string{{renewed.Cert, c.Cert}, {renewed.Key, c.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		write(f[1], b, time.Duration(2+i)*time.Minute)
	}
	if handshake() == first {
		t.Error("the renewed pair is not served")
	}
	if len(heard) != 2 || heard[1] != nil {
		t.Errorf("after a good renewal: heard %v, want nil last", heard)
	}
}
