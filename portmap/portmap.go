// Package portmap is the contract between dpcap's two daemons: the port map
// that the control plane (dpcap serve, dpcap start) publishes and sinkd
// reads (--port-map) to name the port each copy came from, by the tag in the
// envelope's flow label or by the addresses of the frame it carries.
// docs/PORTMAP.md documents the format.
package portmap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dpcap/dpcap/decap"
)

// The envelope carries no port identity. dpcap's own backends (software,
// dpdk) build one template per captured port and put a tag in the IPv6 flow
// label, which the NIC copies verbatim: the port's tag for good (TagTable).
// dp-service uses one template for all ports
// (flow label 0), so its copies are told apart by what they carry: a VF's
// copy is the VM's own frame (its source MAC and primary addresses), a PF0
// copy is an underlay frame towards a VF's underlay route. dpcap publishes
// both kinds of identity in one Map; sinkd reads it (--port-map).
// docs/PORTMAP.md documents the format.

// Version is the version of the port map format this package writes.
// Version 1 (no "version" field) had tags only; version 2 added the
// addresses. Readers ignore fields they do not know: a field is only added
// within a version, never changed in meaning.
const Version = 2

// Limits on what a port map may hold: its names go verbatim into capture
// files (a pcapng option holds at most 65,535 bytes), file names and
// terminals, and the whole file is read into memory.
const (
	MaxNameLen = 128     // bytes; dp-service's interface ids have at most 63
	MaxBytes   = 1 << 20 // a map of thousands of ports fits
)

// The kinds of port.
const (
	KindVF = "vf" // a VM's port: its copies are the VM's own frames
	KindPF = "pf" // the uplink: its copies are underlay frames
)

// Port is one captured port and what identifies its copies.
type Port struct {
	Name string `json:"name"`
	// Source is the hypervisor's underlay address (the envelopes' source);
	// the zero Addr matches any hypervisor.
	Source netip.Addr `json:"source,omitzero"`
	// Tag is the flow label of the port's envelopes (own backends); 0 when
	// the envelopes are untagged.
	Tag  uint32 `json:"tag,omitempty"`
	Kind string `json:"kind,omitempty"`
	// IPv4 and IPv6 are a VF's primary addresses: the inner source of the
	// VM's frames. MAC is the VM's MAC, once learned ("" before).
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	IPv6 netip.Addr `json:"ipv6,omitzero"`
	MAC  string     `json:"mac,omitempty"`
	// UnderlayRoute is a VF's underlay address range: a PF0 copy whose
	// inner IPv6 destination is in it is traffic towards this VF.
	UnderlayRoute netip.Prefix `json:"underlay_route,omitzero"`
	// Capture is the id of the capture the port is in (dpcap status
	// shows it), which sinkd writes with the port's copies.
	Capture string `json:"capture,omitempty"`
}

// Map is the published map, as JSON (docs/PORTMAP.md):
//
//	{"version": 2, "ports": [{"name": "vm-1", "source": "2001:db8::10",
//	  "kind": "vf", "ipv4": "10.0.0.1", "underlay_route": "fc00::1/128"}, …]}
type Map struct {
	Version int    `json:"version"`
	Ports   []Port `json:"ports"`
}

// Validate checks the map: a known version, names set, bounded and unique
// per source, tags in range and unique per source (and present in version
// 1), kinds known, addresses of the right family and MACs well formed.
func (m Map) Validate() error {
	if m.Version != 1 && m.Version != Version {
		return fmt.Errorf("version %d: this dpcap reads versions 1 and %d", m.Version, Version)
	}
	type key struct {
		src netip.Addr
		tag uint32
	}
	tags := map[key]string{}
	type nameKey struct {
		src  netip.Addr
		name string
	}
	names := map[nameKey]bool{}
	for i, p := range m.Ports {
		if err := p.validate(m.Version); err != nil {
			return fmt.Errorf("port %d: %w", i+1, err)
		}
		nk := nameKey{p.Source, p.Name}
		if names[nk] {
			return fmt.Errorf("port %q of %v is listed twice", p.Name, anySource(p.Source))
		}
		names[nk] = true
		if p.Tag == 0 {
			continue
		}
		k := key{p.Source, p.Tag}
		if other, dup := tags[k]; dup {
			return fmt.Errorf("tag %d of %v names both %q and %q", p.Tag, anySource(p.Source), other, p.Name)
		}
		tags[k] = p.Name
	}
	return nil
}

func (p Port) validate(version int) error {
	switch {
	case p.Name == "":
		return errors.New("no name")
	case len(p.Name) > MaxNameLen:
		return fmt.Errorf("name of %d bytes: at most %d", len(p.Name), MaxNameLen)
	case p.Tag > decap.MaxFlowLabel || version == 1 && p.Tag == 0:
		return fmt.Errorf("%q: tag %d is not in 1-%d", p.Name, p.Tag, decap.MaxFlowLabel)
	case p.Kind != "" && p.Kind != KindVF && p.Kind != KindPF:
		return fmt.Errorf("%q: kind %q is neither %q nor %q", p.Name, p.Kind, KindVF, KindPF)
	case p.IPv4.IsValid() && !p.IPv4.Is4():
		return fmt.Errorf("%q: ipv4 %v is not an IPv4 address", p.Name, p.IPv4)
	case p.IPv6.IsValid() && (!p.IPv6.Is6() || p.IPv6.Is4In6()):
		return fmt.Errorf("%q: ipv6 %v is not an IPv6 address", p.Name, p.IPv6)
	case p.UnderlayRoute.IsValid() && !p.UnderlayRoute.Addr().Is6():
		return fmt.Errorf("%q: underlay_route %v is not an IPv6 prefix", p.Name, p.UnderlayRoute)
	}
	if !ValidCapture(p.Capture) {
		return fmt.Errorf("%q: capture %.80q is not an id: at most %d letters, digits, '-', '_' or '.'", p.Name, p.Capture, MaxCaptureLen)
	}
	if p.MAC != "" {
		if hw, err := net.ParseMAC(p.MAC); err != nil || len(hw) != 6 {
			return fmt.Errorf("%q: mac %q is not an Ethernet address", p.Name, p.MAC)
		}
	}
	return nil
}

func anySource(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return "any source"
}

// MaxCaptureLen bounds a capture id: it goes into file metadata, object
// metadata and metric labels.
const MaxCaptureLen = 64

// ValidCapture tells whether id can be a capture id (empty: none): at most
// MaxCaptureLen ASCII letters, digits, '-', '_' and '.', so that it needs
// no cleaning or escaping wherever it goes.
func ValidCapture(id string) bool {
	if len(id) > MaxCaptureLen {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Lookup returns the name of tag from src: an entry for src itself, else
// one for any source.
func (m Map) Lookup(src netip.Addr, tag uint32) (string, bool) {
	if tag == 0 {
		return "", false
	}
	var any string
	for _, p := range m.Ports {
		if p.Tag != tag {
			continue
		}
		if p.Source == src {
			return p.Name, true
		}
		if !p.Source.IsValid() {
			any = p.Name
		}
	}
	return any, any != ""
}

// Load reads a port map file as Read does, without the notes.
func Load(path string) (Map, error) {
	m, _, err := Read(path)
	return m, err
}

// Read reads, cleans and validates a port map file of either
// version; a version 1 file reads as Version 1. Names are cleaned of
// control characters and terminal escapes and cut to MaxNameLen; notes
// say which were changed. Files over MaxBytes are refused.
func Read(path string) (Map, []string, error) {
	m, notes, _, err := read(path)
	return m, notes, err
}

// read reads the map as Read does, and describes the file it
// read (nil when it could not be opened).
func read(path string) (Map, []string, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return Map{}, nil, nil, fmt.Errorf("read port map: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Map{}, nil, nil, fmt.Errorf("read port map: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return Map{}, nil, fi, fmt.Errorf("read port map: %w", err)
	}
	if len(b) > MaxBytes {
		return Map{}, nil, fi, fmt.Errorf("port map %s: larger than %d bytes", path, MaxBytes)
	}
	m, notes, err := Parse(b)
	if err != nil {
		return m, nil, fi, fmt.Errorf("port map %s: %w", path, err)
	}
	return m, notes, fi, nil
}

// File is a port map file that changes while sinkd runs: when the
// capture changes, dpcap serve publishes a new map and the operator copies
// it over the old one (cp writes into it, rsync and mv replace it).
type File struct {
	Path string
	read os.FileInfo // the file last read; nil before, or when it could not be opened
	gone bool        // it could not be opened at the last look, which was reported
}

// Readable reports why the file cannot be opened now (sinkd checks once it
// has become -Z's user); while it cannot, Reload stays quiet until it can,
// as after a read that failed.
func (f *File) Readable() error {
	fh, err := os.Open(f.Path)
	if err != nil {
		f.gone = true
		return err
	}
	return fh.Close()
}

// Reload reads the file when it is not the one last read (another inode,
// size or modification time), or whatever it is when force is set.
// changed reports whether it was read; a file that could not be read or
// was refused is not read again until it changes, so err reports it once.
func (f *File) Reload(force bool) (m Map, notes []string, changed bool, err error) {
	if !force {
		fi, err := os.Stat(f.Path)
		switch {
		case err != nil && f.gone:
			return m, nil, false, nil
		case err == nil && f.read != nil && os.SameFile(fi, f.read) && fi.Size() == f.read.Size() && fi.ModTime().Equal(f.read.ModTime()):
			return m, nil, false, nil
		}
	}
	m, notes, fi, err := read(f.Path)
	f.read, f.gone = fi, fi == nil
	return m, notes, true, err
}

// Parse parses, cleans and validates a map as Read does.
func Parse(b []byte) (Map, []string, error) {
	var m Map
	if err := json.Unmarshal(b, &m); err != nil {
		return m, nil, err
	}
	if m.Version == 0 {
		m.Version = 1 // written before versions were
	}
	if len(m.Ports) == 0 {
		return m, nil, errors.New("no ports")
	}
	var notes []string
	for i := range m.Ports {
		p := &m.Ports[i]
		if clean := CleanName(p.Name); clean != p.Name {
			notes = append(notes, fmt.Sprintf("port %d: name %.40q cleaned to %q", i+1, p.Name, clean))
			p.Name = clean
		}
		p.IPv4 = p.IPv4.Unmap()
		p.UnderlayRoute = p.UnderlayRoute.Masked()
		if hw, err := net.ParseMAC(p.MAC); err == nil {
			p.MAC = hw.String()
		}
	}
	return m, notes, m.Validate()
}

// CleanName makes s safe to write into capture files, file names' logs and
// terminals: it removes terminal escape sequences, control and format
// characters (bidirectional overrides too) and invalid UTF-8, trims spaces
// and cuts the result to MaxNameLen bytes on a character boundary.
func CleanName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == 0x1b: // ESC: skip the whole sequence
			i = skipEscape(s, i)
		case r == utf8.RuneError && n == 1, unicode.IsControl(r), unicode.Is(unicode.Cf, r):
		default:
			if b.Len()+n > MaxNameLen {
				return strings.TrimSpace(b.String())
			}
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// skipEscape returns the index after the escape sequence whose ESC ended
// before i: CSI (ESC [ … final byte), OSC, DCS and the like (ESC ] … BEL
// or ST), or an escape of intermediate bytes and a final byte (ESC ( B).
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[':
		for i++; i < len(s); i++ {
			if s[i] >= 0x40 && s[i] <= 0x7e {
				return i + 1
			}
		}
		return i
	case ']', 'P', '_', '^', 'X':
		for i++; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return i
	}
	// nF escapes: intermediate bytes, then one final byte.
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return i
}
