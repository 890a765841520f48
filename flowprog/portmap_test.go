package flowprog

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAssignAndLookup(t *testing.T) {
	hv := netip.MustParseAddr("2001:db8::10")
	m := AssignTags(hv, []string{"vm-1", "vm-2", "pf0"})
	m.Ports = append(m.Ports, PortTag{Tag: 1, Name: "any-1"})
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

func TestLoadPortMap(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "m.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := AssignTags(netip.MustParseAddr("2001:db8::10"), []string{"vm-1", "pf0"})
	b, _ := json.Marshal(good)
	m, err := LoadPortMap(write(string(b)))
	if err != nil || len(m.Ports) != 2 || m.Ports[1].Name != "pf0" {
		t.Fatalf("round trip: %+v, %v", m, err)
	}
	for body, want := range map[string]string{
		`{"ports": []}`:                                                 "no ports",
		`{"ports": [{"tag": 0, "name": "x"}]}`:                          "not in 1-",
		`{"ports": [{"tag": 1048576, "name": "x"}]}`:                    "not in 1-",
		`{"ports": [{"tag": 1}]}`:                                       "has no name",
		`{"ports": [{"tag": 1, "name": "a"}, {"tag": 1, "name": "b"}]}`: "names both",
		`{"ports": [{"source": "vm-1", "tag": 1, "name": "a"}]}`:        "ParseAddr",
		`not json`: "invalid character",
	} {
		if _, err := LoadPortMap(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", body, err, want)
		}
	}
	if _, err := LoadPortMap(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
}
