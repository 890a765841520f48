package access

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// LoadTLS returns a server configuration (TLS 1.2 or later) with the
// certificate and key in certFile and keyFile. The pair is read again
// when either file changes, at the next handshake, so that a renewed
// certificate (cert-manager, certbot) is served without a restart; a pair
// that does not load keeps the one loaded last.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	c := &certs{cert: certFile, key: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}, nil
}

// certs is a certificate pair read again when its files change.
type certs struct {
	cert, key string
	mu        sync.Mutex
	mods      [2]time.Time
	pair      *tls.Certificate
}

func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.load() // a pair that does not load keeps the last one
	return c.pair, nil
}

// load reads the pair when a file changed since the last reading.
func (c *certs) load() error {
	var mods [2]time.Time
	for i, name := range []string{c.cert, c.key} {
		st, err := os.Stat(name)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		mods[i] = st.ModTime()
	}
	if c.pair != nil && mods == c.mods {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.cert, c.key, err)
	}
	c.pair, c.mods = &pair, mods
	return nil
}
