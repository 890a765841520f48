package flowprog

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/portmap"
)

// TestAssignIsStable: a port's tag depends on neither the order of the
// ports nor the others captured with it, and once given it stays.
func TestAssignIsStable(t *testing.T) {
	t1 := TagTable{}
	if added, err := t1.Assign([]string{"vm-1", "vm-2"}); err != nil || !slices.Equal(added, []string{"vm-1", "vm-2"}) {
		t.Fatalf("Assign: %v %v", added, err)
	}
	t2 := TagTable{}
	if _, err := t2.Assign([]string{"vm-2", "vm-3", "vm-1"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vm-1", "vm-2"} {
		if t1[n] != t2[n] || t1[n] != PreferredTag(n) {
			t.Errorf("%s: tag %d in one order, %d in another, preferred %d", n, t1[n], t2[n], PreferredTag(n))
		}
	}
	if t1["vm-1"] == t1["vm-2"] {
		t.Fatalf("vm-1 and vm-2 share tag %d", t1["vm-1"])
	}
	before := maps.Clone(t1)
	if added, err := t1.Assign([]string{"vm-2", "pf0", "vm-1"}); err != nil || !slices.Equal(added, []string{"pf0"}) {
		t.Fatalf("Assign again: %v %v", added, err)
	}
	for n, tag := range before {
		if t1[n] != tag {
			t.Errorf("%s's tag changed from %d to %d", n, tag, t1[n])
		}
	}
	if err := t1.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestAssignNeverReuses: a tag held by a port, captured now or not, is
// never given to another; the next free one is, wrapping around.
func TestAssignNeverReuses(t *testing.T) {
	tbl := TagTable{"old": PreferredTag("vm-1"), "older": PreferredTag("vm-1") + 1}
	if _, err := tbl.Assign([]string{"vm-1"}); err != nil {
		t.Fatal(err)
	}
	if want := PreferredTag("vm-1") + 2; tbl["vm-1"] != want {
		t.Errorf("vm-1 got tag %d, want the next free one, %d", tbl["vm-1"], want)
	}
	// A name whose preferred tag is the last one (found by trying
	// port-0, port-1, …) wraps to the first.
	const last = "port-1705065"
	if PreferredTag(last) != decap.MaxFlowLabel {
		t.Fatalf("%s's preferred tag is %d", last, PreferredTag(last))
	}
	tbl = TagTable{"holder": decap.MaxFlowLabel, "next": FirstTag}
	if _, err := tbl.Assign([]string{last}); err != nil || tbl[last] != FirstTag+1 {
		t.Errorf("%s got tag %d (%v), want %d", last, tbl[last], err, FirstTag+1)
	}
}

// TestAssignLeavesOldTags: tags 1 to MaxPorts, which earlier versions gave
// in order, are never given.
func TestAssignLeavesOldTags(t *testing.T) {
	tbl := TagTable{}
	var names []string
	for i := range 5000 {
		names = append(names, fmt.Sprintf("vm-%d", i))
	}
	if _, err := tbl.Assign(names); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for n, tag := range tbl {
		if tag < FirstTag || tag > decap.MaxFlowLabel || seen[tag] {
			t.Fatalf("%s: tag %d (taken twice: %v)", n, tag, seen[tag])
		}
		seen[tag] = true
	}
}

func TestTagTableValidate(t *testing.T) {
	for _, tt := range []struct {
		tbl  TagTable
		want string
	}{
		{TagTable{"vm-1": 0}, "tag 0 is not in"},
		{TagTable{"vm-1": decap.MaxFlowLabel + 1}, "is not in 1-1048575"},
		{TagTable{"vm-1": 20, "vm-2": 20}, "tag 20 is held by both vm-1 and vm-2"},
		{TagTable{"": 20}, "without a name"},
	} {
		if err := tt.tbl.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.tbl, err, tt.want)
		}
	}
}

// TestBuildTakesTheTable: the envelopes carry the table's tags; a port
// missing from it gets its own in the program, not in the table.
func TestBuildTakesTheTable(t *testing.T) {
	cfg := baseConfig()
	cfg.VFs = []string{"vm-2", "vm-1"}
	cfg.Tags = TagTable{"vm-1": 5000, "vm-9": 77}
	p, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"vm-2": PreferredTag("vm-2"), "vm-1": 5000, "pf0": PreferredTag("pf0")}
	for _, port := range p.Tags.Ports {
		tmpl := p.Templates[port.Name]
		label := uint32(tmpl[15]&0x0f)<<16 | uint32(tmpl[16])<<8 | uint32(tmpl[17])
		if port.Tag != want[port.Name] || label != port.Tag {
			t.Errorf("%s: tag %d, flow label %d; want %d", port.Name, port.Tag, label, want[port.Name])
		}
	}
	if len(cfg.Tags) != 2 {
		t.Errorf("Build changed the table: %v", cfg.Tags)
	}
}

// TestTagTablePortMap: the map a table publishes carries the format's
// version, each port's tag and its kind (pf0 is the uplink).
func TestTagTablePortMap(t *testing.T) {
	hv := netip.MustParseAddr("2001:db8::10")
	m := TagTable{"vm-1": 1, "vm-2": 2, "pf0": 3, "vm-9": 9}.PortMap(hv, []string{"vm-1", "vm-2", "pf0"})
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Version != portmap.Version || len(m.Ports) != 3 {
		t.Fatalf("PortMap: version %d, %d ports; want %d, 3", m.Version, len(m.Ports), portmap.Version)
	}
	for i, want := range []portmap.Port{
		{Name: "vm-1", Source: hv, Tag: 1, Kind: portmap.KindVF},
		{Name: "vm-2", Source: hv, Tag: 2, Kind: portmap.KindVF},
		{Name: "pf0", Source: hv, Tag: 3, Kind: portmap.KindPF},
	} {
		if got := m.Ports[i]; got.Name != want.Name || got.Source != want.Source || got.Tag != want.Tag || got.Kind != want.Kind {
			t.Errorf("port %d = %+v; want %+v", i, got, want)
		}
	}
}
