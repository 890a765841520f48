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
// that does not load keeps the one loaded last. onReload, when not nil,
// hears of each reading after the first: nil for a new pair, else its
// error, each new one once (a renewal that sinkd, after -Z, may not read
// would otherwise go unnoticed until the old certificate expires).
func LoadTLS(certFile, keyFile string, onReload func(error)) (*tls.Config, error) {
	c := &certs{cert: certFile, key: keyFile, onReload: onReload}
	if err := c.load(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}, nil
}

// certs is a certificate pair read again when its files change.
type certs struct {
	cert, key string
	onReload  func(error)
	mu        sync.Mutex
	mods      [2]time.Time
	pair      *tls.Certificate
	// failed is the error of the last reading, said once.
	failed string
}

func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.pair
	err := c.load() // a pair that does not load keeps the last one
	switch {
	case err != nil && err.Error() != c.failed:
		c.failed = err.Error()
	case err == nil && (c.pair != old || c.failed != ""):
		c.failed = ""
	default:
		return c.pair, nil
	}
	if c.onReload != nil {
		c.onReload(err)
	}
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
