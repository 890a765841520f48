package portmap

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	hv := netip.MustParseAddr("2001:db8::10")
	m := Map{Version: Version, Ports: []Port{
		{Name: "vm-1", Source: hv, Tag: 1, Kind: KindVF},
		{Name: "vm-2", Source: hv, Tag: 2, Kind: KindVF},
		{Name: "pf0", Source: hv, Tag: 3, Kind: KindPF},
		{Name: "any-1", Tag: 1},
	}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("2001:db8::11")
	for _, tt := range []struct {
		src  netip.Addr
		tag  uint32
		want string
		ok   bool
	}{
		{hv, 1, "vm-1", true}, {hv, 3, "pf0", true}, {hv, 4, "", false}, {hv, 0, "", false},
		{other, 1, "any-1", true}, {other, 2, "", false},
	} {
		if got, ok := m.Lookup(tt.src, tt.tag); got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%v, %d) = %q, %v; want %q, %v", tt.src, tt.tag, got, ok, tt.want, tt.ok)
		}
	}
}

func writeMap(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	hv := netip.MustParseAddr("2001:db8::10")
	good := Map{Version: Version, Ports: []Port{{Name: "vm-1", Source: hv, Tag: 1, Kind: KindVF}, {Name: "pf0", Source: hv, Tag: 2, Kind: KindPF}}}
	b, _ := json.Marshal(good)
	m, err := Load(writeMap(t, string(b)))
	if err != nil || len(m.Ports) != 2 || m.Ports[1].Name != "pf0" || m.Version != 2 {
		t.Fatalf("round trip: %+v, %v", m, err)
	}
	// A file written before versions reads as version 1.
	m, err = Load(writeMap(t, `{"ports": [{"source": "2001:db8::10", "tag": 1, "name": "vm-1"}]}`))
	if err != nil || m.Version != 1 || m.Ports[0].Tag != 1 || m.Ports[0].Source != netip.MustParseAddr("2001:db8::10") {
		t.Fatalf("version 1: %+v, %v", m, err)
	}
	// Version 2 as dp-service's backend publishes it, with a field from the future.
	m, err = Load(writeMap(t, `{"version": 2, "ports": [
		{"name": "vm-1", "source": "2001:db8::10", "kind": "vf", "ipv4": "::ffff:10.0.0.1", "ipv6": "fd00::1",
		 "underlay_route": "fc00:1::1:0/112", "mac": "02:AA:00:00:00:01", "capture": "20261207-213045.123-3fa9c2", "later": true},
		{"name": "pf0", "source": "2001:db8::10", "kind": "pf"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Port{Name: "vm-1", Source: netip.MustParseAddr("2001:db8::10"), Kind: KindVF,
		IPv4: netip.MustParseAddr("10.0.0.1"), IPv6: netip.MustParseAddr("fd00::1"),
		UnderlayRoute: netip.MustParsePrefix("fc00:1::1:0/112"), MAC: "02:aa:00:00:00:01", Capture: "20261207-213045.123-3fa9c2"}
	if m.Ports[0] != want {
		t.Errorf("version 2: %+v\nwant %+v", m.Ports[0], want)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"ports": []}`, "no ports"},
		{`{"ports": [{"tag": 0, "name": "x"}]}`, "not in 1-"},
		{`{"version": 2, "ports": [{"tag": 1048576, "name": "x"}]}`, "not in 1-"},
		{`{"ports": [{"tag": 1}]}`, "no name"},
		{`{"ports": [{"tag": 1, "name": "\u001b[2J"}]}`, "no name"},
		{`{"ports": [{"tag": 1, "name": "a"}, {"tag": 1, "name": "b"}]}`, "names both"},
		{`{"version": 2, "ports": [{"name": "a"}, {"name": "a"}]}`, "listed twice"},
		{`{"ports": [{"source": "vm-1", "tag": 1, "name": "a"}]}`, "ParseAddr"},
		{`{"version": 3, "ports": [{"name": "a"}]}`, "reads versions 1 and 2"},
		{`{"version": 2, "ports": [{"name": "a", "kind": "vm"}]}`, "kind"},
		{`{"version": 2, "ports": [{"name": "a", "ipv4": "fd00::1"}]}`, "not an IPv4"},
		{`{"version": 2, "ports": [{"name": "a", "ipv6": "10.0.0.1"}]}`, "not an IPv6"},
		{`{"version": 2, "ports": [{"name": "a", "underlay_route": "10.0.0.0/8"}]}`, "not an IPv6 prefix"},
		{`{"version": 2, "ports": [{"name": "a", "mac": "02:00:00:00:00:00:00:01"}]}`, "not an Ethernet"},
		{`{"version": 2, "ports": [{"name": "a", "capture": "id; dpcap capture other"}]}`, "is not an id"},
		{`{"version": 2, "ports": [{"name": "a", "capture": "` + strings.Repeat("1", MaxCaptureLen+1) + `"}]}`, "is not an id"},
		{`{"version": 2, "ports": [{"name": "a"}]} trailing`, "invalid character"},
		{`not json`, "invalid character"},
		{`{"version": 2, "ports": [{"name": "` + strings.Repeat("x", MaxBytes) + `"}]}`, "larger than"},
	} {
		if _, err := Load(writeMap(t, tt.body)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%.80s: err = %v, want %q", tt.body, err, tt.want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
}

// TestReadPortMapCleansNames checks names are bounded and stripped of what
// would corrupt a file or a terminal, and that the notes say so.
func TestReadPortMapCleansNames(t *testing.T) {
	long := strings.Repeat("é", 70000) // 140,000 bytes: wraps a pcapng option length
	ports := []Port{
		{Name: long}, {Name: "vm-\x1b[31mred\x1b[0m"}, {Name: "vm\u202e1gnp.exe"},
		{Name: "a\x00b\x7fc\u0085d\x1b]0;title\x07e"}, {Name: "\xffok\r\n"}, {Name: "vm-2"},
	}
	b, _ := json.Marshal(Map{Version: 2, Ports: ports})
	m, notes, err := Read(writeMap(t, string(b)))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{strings.Repeat("é", MaxNameLen/2), "vm-red", "vm1gnp.exe", "abcde", "\ufffdok", "vm-2"}
	for i, w := range want {
		if m.Ports[i].Name != w {
			t.Errorf("port %d: name %.60q, want %.60q", i+1, m.Ports[i].Name, w)
		}
	}
	if len(notes) != 5 || !strings.Contains(notes[1], `cleaned to "vm-red"`) {
		t.Errorf("notes %q: want one for each of the 5 names changed", notes)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"vm-1":                   "vm-1",
		"  vm 1 ":                "vm 1",
		"\x1b[1;31mX":            "X",
		"\x1bPdcs\x1b\\Y":        "Y",
		"\x1b(BZ":                "Z",
		"tail\x1b":               "tail",
		"tail\x1b[12":            "tail",
		"\u009b31mC1":            "31mC1", // the one-byte CSI is a control character
		strings.Repeat("a", 200): strings.Repeat("a", MaxNameLen),
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMapFileReload: the file is read again only when it changed, or when
// forced; one that cannot be read is reported once, until it changes.
func TestMapFileReload(t *testing.T) {
	path := writeMap(t, `{"ports": [{"tag": 20, "name": "vm-1"}]}`)
	f := &File{Path: path}
	for i, tt := range []struct {
		change  func() error
		force   bool
		changed bool
		name    string // the first port's, or the error's text
	}{
		{nil, false, true, "vm-1"}, // never read
		{nil, false, false, ""},
		{nil, true, true, "vm-1"},
		{func() error { return os.WriteFile(path, []byte(`{"ports": [{"tag": 20, "name": "vm-22"}]}`), 0o644) }, false, true, "vm-22"},
		{func() error { return os.WriteFile(path, []byte(`{"ports": [`), 0o644) }, false, true, "unexpected end of JSON input"},
		{nil, false, false, ""},
		{func() error { return os.Remove(path) }, false, true, "no such file"},
		{nil, false, false, ""},
		{func() error { return os.WriteFile(path, []byte(`{"ports": [{"tag": 20, "name": "vm-3"}]}`), 0o644) }, false, true, "vm-3"},
	} {
		if tt.change != nil {
			if err := tt.change(); err != nil {
				t.Fatal(err)
			}
		}
		m, _, changed, err := f.Reload(tt.force)
		got := ""
		switch {
		case err != nil:
			got = err.Error()
		case changed:
			got = m.Ports[0].Name
		}
		if changed != tt.changed || !strings.Contains(got, tt.name) || (tt.name == "") != (got == "") {
			t.Errorf("step %d: changed %v, %q; want %v, %q", i, changed, got, tt.changed, tt.name)
		}
	}
}
