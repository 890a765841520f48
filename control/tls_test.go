package control

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// lister is a recorder that lists its ports (PortLister).
type lister struct{ *recorder }

func (lister) Ports(context.Context) ([]string, error) {
	return []string{"pf0", "vm-1", "vm-2", "vm-3"}, nil
}

// tlsServer serves a server over b on a loopback TCP port with mutual TLS
// and returns its URL and CA; log gets the daemon's lines.
func tlsServer(t *testing.T, b Backend, log *logBuffer) (string, testkit.Certs) {
	t.Helper()
	certs := testkit.NewCerts(t, "127.0.0.1")
	cfg, err := ServerTLS(certs.Cert, certs.Key, certs.CA, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenTLS("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, sessionServer(t, b, t.TempDir(), 0, log), ln)
	return "https://" + ln.Addr().String(), certs
}

// clientOfCA returns the configuration of a client named name whose
// certificate certs' CA signed.
func clientOfCA(t *testing.T, certs testkit.Certs, name string) *tls.Config {
	t.Helper()
	cert, key := certs.ClientCert(t, name)
	cfg, err := ClientTLS(cert, key, certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestMutualTLS: over TCP, a client whose certificate the daemon's CA
// signed gets in (and the log names it for start and stop); one without a
// certificate, or with one another CA signed, is refused at the handshake.
func TestMutualTLS(t *testing.T) {
	log := &logBuffer{}
	url, certs := tlsServer(t, lister{&recorder{}}, log)
	good := clientOfCA(t, certs, "operator-1")
	c := NewRemoteClient(url, good)
	ctx := context.Background()
	if _, err := c.Start(ctx, req); err != nil {
		t.Fatal(err)
	}
	l, err := c.Ports(ctx)
	if err != nil || l.Backend != "recorder" || strings.Join(l.Ports, ",") != "pf0,vm-1,vm-2,vm-3" {
		t.Errorf("ports: %+v, %v", l, err)
	}
	if _, err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`msg="start asked" client="CN=operator-1"`, `msg="stop asked" client="CN=operator-1"`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}

	other := testkit.NewCerts(t, "127.0.0.1")
	ocert, okey := other.ClientCert(t, "intruder")
	for name, files := range map[string][2]string{"no certificate": {"", ""}, "another CA's certificate": {ocert, okey}} {
		cfg, err := ClientTLS(files[0], files[1], certs.CA)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewRemoteClient(url, cfg).Status(ctx)
		var alert tls.AlertError
		var op *net.OpError
		switch {
		case err == nil:
			t.Errorf("%s: got in", name)
		case !errors.As(err, &alert) && !(errors.As(err, &op) && strings.Contains(op.Err.Error(), "tls: ")):
			t.Errorf("%s: refused, but not at the handshake: %v", name, err)
		default:
			t.Logf("%s: %v", name, err)
		}
	}
	if strings.Contains(log.String(), "intruder") {
		t.Errorf("a refused client reached the API:\n%s", log.String())
	}
}

// TestListenTLSNeedsClientCertificates: the API is never served on TCP
// without client certificates required.
func TestListenTLSNeedsClientCertificates(t *testing.T) {
	certs := testkit.NewCerts(t, "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []*tls.Config{nil, {Certificates: []tls.Certificate{pair}},
		{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert, ClientCAs: certs.Pool}} {
		if ln, err := ListenTLS("127.0.0.1:0", cfg); err == nil {
			ln.Close()
			t.Errorf("listening with %+v", cfg)
		}
	}
	if _, err := ServerTLS(certs.Cert, certs.Key, certs.Key, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Error("a client CA file without certificates was taken")
	}
}

// TestPortsNotListed: a backend that cannot list its ports says so.
func TestPortsNotListed(t *testing.T) {
	url, certs := tlsServer(t, &recorder{}, &logBuffer{})
	cfg := clientOfCA(t, certs, "operator-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewRemoteClient(url, cfg).Ports(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != 501 || ae.Message != "the recorder backend cannot list its ports" {
		t.Errorf("got %v", err)
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRenewedServerCertificate: a renewed certificate written over the
// files is served from the next handshake on, without a restart.
func TestRenewedServerCertificate(t *testing.T) {
	log := &logBuffer{}
	url, certs := tlsServer(t, lister{&recorder{}}, log)
	cfg := clientOfCA(t, certs, "operator-1")
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := served()
	newCert, newKey := certs.ServerCert(t, "127.0.0.1")
	later := time.Now().Add(time.Minute) // a changed modification time, however coarse
	for _, f := range [][2]string{{newCert, certs.Cert}, {newKey, certs.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f[1], later, later); err != nil {
			t.Fatal(err)
		}
	}
	if after := served(); after == before {
		t.Errorf("still serving certificate %s after the renewal", before)
	}
	if !strings.Contains(log.String(), `msg="--tls-cert and --tls-key read again"`) {
		t.Errorf("the renewal is not logged:\n%s", log.String())
	}
	if _, err := NewRemoteClient(url, cfg).Status(context.Background()); err != nil {
		t.Errorf("after the renewal: %v", err)
	}
}
