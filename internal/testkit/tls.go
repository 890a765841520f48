package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are a certificate authority made for one test and a server
// certificate it signed, as PEM files.
type Certs struct {
	// CA is the authority's certificate; Cert and Key the server's.
	CA, Cert, Key string
	// Pool holds the authority, for a client's tls.Config.
	Pool *x509.CertPool

	dir   string
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// NewCerts makes a CA and a server certificate for hosts (names or IP
// addresses) in a temporary directory. A second call makes another CA,
// which the first one's clients do not trust.
func NewCerts(t testing.TB, hosts ...string) Certs {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dpcap test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c := Certs{CA: filepath.Join(dir, "ca.pem"), Pool: x509.NewCertPool(), dir: dir, ca: ca, caKey: caKey}
	c.Pool.AddCert(ca)
	if err := os.WriteFile(c.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Cert, c.Key = c.ServerCert(t, hosts...)
	return c
}

// ServerCert makes another server certificate for hosts signed by c's CA
// (a renewal), and returns its certificate and key files.
func (c Certs) ServerCert(t testing.TB, hosts ...string) (cert, key string) {
	t.Helper()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: hosts[0]}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return c.sign(t, "server-"+rand.Text(), tmpl)
}

// ClientCert makes a client certificate for name (its subject's common
// name) signed by c's CA, and returns its certificate and key files.
func (c Certs) ClientCert(t testing.TB, name string) (cert, key string) {
	t.Helper()
	return c.sign(t, "client-"+name, &x509.Certificate{Subject: pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// sign makes a key and a certificate of tmpl signed by the CA, written to
// base.pem and base-key.pem in c's directory.
func (c Certs) sign(t testing.TB, base string, tmpl *x509.Certificate) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, now.Add(-time.Hour), now.Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &k.PublicKey, c.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(c.dir, base+".pem"), filepath.Join(c.dir, base+"-key.pem")
	for name, b := range map[string]*pem.Block{cert: {Type: "CERTIFICATE", Bytes: der}, key: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(name, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// ClientConfig returns a TLS client configuration that trusts only c's CA.
func (c Certs) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}
}
