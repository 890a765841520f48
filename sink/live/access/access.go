// Package access decides who may watch sinkd's live viewers (package
// sink/live) and what: bearer tokens read from a file, each with the ports
// it may see, and the rule that an endpoint reachable beyond loopback
// needs TLS and tokens.
//
// A token is a tenant's key to its own ports: the file lists, per line, a
// name (what logs say), the token (or its SHA-256, so that the file need
// not hold it) and the ports. The token itself is never kept: requests are
// checked by the hash of what they present, compared in constant time.
package access

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

const (
	// MinTokenLen is the shortest token taken: 16 characters of a
	// random token are 80 bits or more.
	MinTokenLen = 16
	// maxFileSize bounds a tokens file.
	maxFileSize = 1 << 20
	// hashPrefix marks a token given by its SHA-256.
	hashPrefix = "sha256:"
)

// The reasons a request is refused.
var (
	// ErrNoToken: the request carries no bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrUnknownToken: the token is not in the file.
	ErrUnknownToken = errors.New("unknown token")
)

// Grant is what one request may see.
type Grant struct {
	// Name names the token (or "local" on loopback without tokens), for
	// logs.
	Name  string
	all   bool
	ports map[string]bool
}

// All reports whether the grant covers every port and source.
func (g Grant) All() bool { return g.all }

// Allows reports whether the grant covers the port named port.
func (g Grant) Allows(port string) bool { return g.all || port != "" && g.ports[port] }

// Tokens are the tokens of a --live-tokens file. The file is read again
// when it changes, so that a token can be added or revoked without a
// restart (a file left without tokens revokes them all); a file that no
// longer reads keeps the tokens read last. A nil *Tokens lets everyone
// in: a loopback endpoint without tokens.
type Tokens struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	list []entry
	// failed is the error of the last reading, said once.
	failed string
	// OnReload, when set, hears of each reading after the first: the
	// error, or nil and the number of tokens.
	OnReload func(n int, err error)
}

type entry struct {
	name  string
	hash  [sha256.Size]byte
	grant Grant
}

// Load reads a tokens file. It must be a regular file that other users
// cannot read.
func Load(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.load(); err != nil {
		return nil, err
	}
	// At start a file without tokens is a mistake; read again, it is
	// every token revoked.
	if len(t.list) == 0 {
		return nil, fmt.Errorf("tokens %s: no tokens", path)
	}
	return t, nil
}

// load reads the file when it changed since the last reading.
func (t *Tokens) load() error {
	f, err := os.Open(t.path)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return fmt.Errorf("tokens: %w", err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("tokens %s: not a regular file", t.path)
	case st.Mode().Perm()&0o004 != 0:
		return fmt.Errorf("tokens %s: readable by every user (mode %04o): chmod o-r it", t.path, st.Mode().Perm())
	case st.Size() > maxFileSize:
		return fmt.Errorf("tokens %s: larger than %d bytes", t.path, maxFileSize)
	case st.ModTime().Equal(t.mod) && st.Size() == t.size:
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fmt.Errorf("tokens %s: %w", t.path, err)
	}
	list, err := parse(b)
	if err != nil {
		return fmt.Errorf("tokens %s: %w", t.path, err)
	}
	t.list, t.mod, t.size = list, st.ModTime(), st.Size()
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// reload reads the file again when it changed, and tells OnReload what
// came of it: each new set of tokens, each new error once.
func (t *Tokens) reload() {
	mod := t.mod
	err := t.load()
	switch {
	case err != nil && err.Error() != t.failed:
		t.failed = err.Error()
	case err == nil && (t.failed != "" || !t.mod.Equal(mod)):
		t.failed = ""
	default:
		return
	}
	if t.OnReload != nil {
		t.OnReload(len(t.list), err)
	}
}

// parse reads the lines "NAME TOKEN PORTS". Errors name the line, never
// its token.
func parse(b []byte) ([]entry, error) {
	var list []entry
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxFileSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want NAME TOKEN PORTS, found %d fields", n, len(f))
		}
		e := entry{name: f[0], grant: Grant{Name: f[0]}}
		switch {
		case !nameRE.MatchString(e.name):
			// Not quoted: it may be a token written in the wrong column.
			return nil, fmt.Errorf("line %d: invalid name: letters, digits and ._@- only, at most 64", n)
		case names[e.name]:
			return nil, fmt.Errorf("line %d: name %s given twice", n, e.name)
		}
		names[e.name] = true
		var err error
		if e.hash, err = tokenHash(f[1]); err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, e.name, err)
		}
		if hashes[e.hash] {
			return nil, fmt.Errorf("line %d (%s): the same token as an earlier line", n, e.name)
		}
		hashes[e.hash] = true
		if f[2] == "*" {
			e.grant.all = true
		} else {
			e.grant.ports = map[string]bool{}
			for _, p := range strings.Split(f[2], ",") {
				if p == "" || p == "*" {
					return nil, fmt.Errorf("line %d (%s): invalid ports %q: want * or NAME[,NAME...]", n, e.name, f[2])
				}
				e.grant.ports[p] = true
			}
		}
		list = append(list, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

// tokenHash returns the SHA-256 of a token as the file gives it.
func tokenHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	if hx, ok := strings.CutPrefix(s, hashPrefix); ok {
		if b, err := hex.DecodeString(hx); err != nil || len(b) != sha256.Size {
			return h, errors.New("invalid sha256: want 64 hexadecimal digits")
		} else {
			copy(h[:], b)
		}
		return h, nil
	}
	if len(s) < MinTokenLen {
		return h, fmt.Errorf("token shorter than %d characters", MinTokenLen)
	}
	return sha256.Sum256([]byte(s)), nil
}

// Authorize returns what the bearer token of r may see. The token file is
// read again first if it changed.
func (t *Tokens) Authorize(r *http.Request) (Grant, error) {
	if t == nil {
		return Grant{Name: "local", all: true}, nil
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return Grant{}, ErrNoToken
	}
	h := sha256.Sum256([]byte(tok))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reload()
	var g Grant
	found := 0
	// Every entry is compared, so the time taken says nothing of which
	// one matched.
	for _, e := range t.list {
		m := subtle.ConstantTimeCompare(h[:], e.hash[:])
		if m == 1 {
			g = e.grant
		}
		found |= m
	}
	if found == 0 {
		return Grant{}, ErrUnknownToken
	}
	return g, nil
}

// bearer takes the token of an Authorization header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

// CheckExposure says whether an endpoint at addr (host:port) may serve
// with what it has: one reachable beyond loopback (any address but a
// loopback one or "localhost", or all addresses) needs TLS and tokens.
func CheckExposure(addr string, tls, tokens bool) error {
	if tls && tokens {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is reachable beyond this host: it needs TLS and tokens", addr)
}
