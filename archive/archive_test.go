package archive

import (
	"strings"
	"testing"
	"time"
)

// Metadata round-trips, and stays within S3's bound whatever the path
// and sources: the path keeps its end, the sources list is cut and says so.
func TestMetaHeaders(t *testing.T) {
	first := time.Date(2026, 11, 23, 10, 2, 0, 123456789, time.UTC)
	long := "/" + strings.Repeat("ä-very-long-directory/", 200) + "cap.pcapng3"
	var many []string
	for range 300 {
		many = append(many, "port-with-a-long-name-ü")
	}
	for _, tc := range []struct {
		name      string
		m         Meta
		truncated bool
		file      string
	}{
		{"plain", Meta{Sink: "sink-a", Host: "host a", File: "/var/lib/dpcap/cap.pcapng3", Format: "pcapng", First: first, Last: first.Add(time.Minute),
			Packets: 7, Bytes: 4096, Sources: []string{"vm-1", "pf0", "vm,2 ü"}, Captures: []string{"20261207-213045.123-3fa9c2", "20261207-213112-00aa01"}}, false, "/var/lib/dpcap/cap.pcapng3"},
		{"huge", Meta{Sink: "sink-a", Host: strings.Repeat("h", 300), File: long, Format: "pcapng", First: first, Last: first,
			Sources: many, Captures: many}, true, ".../cap.pcapng3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.m.Headers()
			size := 0
			for k, v := range h {
				size += len("x-amz-meta-") + len(k) + len(v)
				for _, r := range v {
					if r > 127 {
						t.Errorf("%s: %q is not US-ASCII", k, v)
						break
					}
				}
			}
			if size > MetaLimit {
				t.Errorf("%d bytes of metadata, over %d", size, MetaLimit)
			}
			m, err := ParseMeta(h)
			if err != nil {
				t.Fatal(err)
			}
			if m.File != tc.file || m.SourcesTruncated != tc.truncated || !m.First.Equal(tc.m.First) || !m.Last.Equal(tc.m.Last) ||
				m.Packets != tc.m.Packets || m.Bytes != tc.m.Bytes || m.Sink != tc.m.Sink {
				t.Errorf("read back %+v", m)
			}
			if n := len(m.Sources); n == 0 || n > len(tc.m.Sources) || (!tc.truncated && n != len(tc.m.Sources)) {
				t.Fatalf("%d sources read back of %d", n, len(tc.m.Sources))
			}
			for i, s := range m.Sources {
				if s != tc.m.Sources[i] {
					t.Errorf("source %d: %q, want %q", i, s, tc.m.Sources[i])
				}
			}
			// Captures that do not fit, or are no ids, are "any": such a
			// file is read for every capture.
			for _, id := range tc.m.Captures {
				if !m.HasCapture(id) {
					t.Errorf("capture %q read back as %q", id, m.Captures)
				}
			}
			if m.HasCapture("20200101-000000.000-000000") != tc.truncated {
				t.Errorf("captures %q hold an id never listed", m.Captures)
			}
		})
	}
}

// Keys: what Key writes ParseKey reads; names that are not the layout's
// are refused, a last packet older than the first (a clock stepped back)
// is read as written.
func TestParseKey(t *testing.T) {
	l := Location{Bucket: "captures", Prefix: "dc1"}
	first := time.Date(2026, 11, 23, 10, 2, 0, 5, time.UTC)
	key := l.Key("sink-a", first, first.Add(time.Second), "/var/lib/dpcap/cap .pcap")
	if want := "dc1/2026/11/23/10/sink-a/20261123T100200.000000005Z_20261123T100201.000000005Z_cap-.pcap"; key != want {
		t.Fatalf("key %s, want %s", key, want)
	}
	ki, err := ParseKey(key)
	if err != nil || ki.Sink != "sink-a" || !ki.First.Equal(first) || ki.Name != "cap-.pcap" {
		t.Errorf("ParseKey: %+v %v", ki, err)
	}
	back := l.Key("sink-a", first, first.Add(-time.Hour), "cap.pcap")
	if ki, err := ParseKey(back); err != nil || !ki.Last.Before(ki.First) {
		t.Errorf("a clock stepped back: %+v %v", ki, err)
	}
	for _, bad := range []string{"dc1/README.md", "dc1/2026/11/23/10/sink-a/", "20261123T100200.000000005Z_20261123T100201.000000005Z_cap.pcap",
		"dc1/x/20261123T100200Z_20261123T100201Z_cap.pcap", "dc1/x/20261123T100200.000000005Z_20261123T100201.000000005Z_"} {
		if ki, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want an error", bad, ki)
		}
	}
}

// Sink ids and prefixes that would make a key the store refuses, or one
// that escapes its place, are refused; the rest are taken.
func TestCheckSinkIDAndPrefix(t *testing.T) {
	for id, ok := range map[string]bool{
		"sink-a": true, "s.1": true, "...": true, "a..b": true, "_": true,
		"": false, ".": false, "..": false, "a/b": false, "a b": false, "\x1b": false, strings.Repeat("s", 65): false,
	} {
		if err := CheckSinkID(id); (err == nil) != ok {
			t.Errorf("CheckSinkID(%q) = %v, want ok %v", id, err, ok)
		}
	}
	for prefix, ok := range map[string]bool{
		"": true, "dc1": true, "dc1/rack 2/x": true, "a/...": true, "a/.b": true,
		".": false, "..": false, "a/../b": false, "a/./b": false, "a/ .. /b": false, "a/ /b": false,
		"a\x1bb": false, "a\x07": false, "a\\b": false, "a\xffb": false, strings.Repeat("p", 513): false,
	} {
		if err := (Location{Bucket: "bkt", Prefix: prefix}).CheckPrefix(); (err == nil) != ok {
			t.Errorf("CheckPrefix(%q) = %v, want ok %v", prefix, err, ok)
		}
	}
}
