package control

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"

	"golang.org/x/net/netutil"

	"github.com/dpcap/dpcap/sink/live/access"
)

// ServerTLS returns the configuration of the API's TCP listener: TLS 1.2 or
// later with certFile and keyFile, read again when renewed (as sinkd's
// live endpoint does), and a client certificate required and verified
// against the authorities in clientCAFile. logger hears of each renewal
// read, or that did not load.
func ServerTLS(certFile, keyFile, clientCAFile string, logger *slog.Logger) (*tls.Config, error) {
	cfg, err := access.LoadTLS(certFile, keyFile, func(err error) {
		if err != nil {
			logger.Warn("--tls-cert and --tls-key cannot be read again: the pair read last stays", "cert", certFile, "key", keyFile, "err", err)
			return
		}
		logger.Info("--tls-cert and --tls-key read again", "cert", certFile, "key", keyFile)
	})
	if err != nil {
		return nil, err
	}
	if cfg.ClientCAs, err = loadPool(clientCAFile); err != nil {
		return nil, err
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

// ListenTLS listens for the API on the TCP address addr with cfg, which
// must require and verify client certificates (ServerTLS): the API is never
// served on TCP without them, loopback or not.
func ListenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	if cfg == nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		return nil, errors.New("listen on " + addr + ": the API on TCP needs client certificates (--tls-cert, --tls-key, --client-ca)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &tlsListener{tls.NewListener(ln, cfg), ln, cfg}, nil
}

// tlsListener is ListenTLS's listener. Serve bounds the TCP connections
// under TLS, so that requests still see theirs (http.Request.TLS: who
// the client is).
type tlsListener struct {
	net.Listener
	tcp net.Listener
	cfg *tls.Config
}

// limit bounds ln's connections to n.
func limit(ln net.Listener, n int) net.Listener {
	if t, ok := ln.(*tlsListener); ok {
		return tls.NewListener(netutil.LimitListener(t.tcp, n), t.cfg)
	}
	return netutil.LimitListener(ln, n)
}

// ClientTLS returns a client's configuration for dpcap serve's TCP
// listener: TLS 1.2 or later, the client certificate in certFile and
// keyFile (none when both are empty), the server verified against caFile
// (the system's authorities when empty).
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case certFile != "" && keyFile != "":
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate %s and key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case certFile != "" || keyFile != "":
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// loadPool reads the PEM certificates of file.
func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("TLS: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// clientOf names who sent r, for the log: a TLS client by its
// certificate's subject; else the unix socket's peer, whom the listener
// let in by its credentials.
func clientOf(r *http.Request) string {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0].Subject.String()
	}
	return "unix socket"
}
