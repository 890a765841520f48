//go:build !minimal

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/archive"
)

func TestParseWhen(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	now := time.Date(2026, 11, 23, 10, 30, 0, 0, loc)
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{"now", now, ""},
		{"-15m", now.Add(-15 * time.Minute), ""},
		{"-2h", now.Add(-2 * time.Hour), ""},
		{"2026-11-23T10:02:00Z", time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC), ""},
		{"2026-11-23T10:02:00.5+01:00", time.Date(2026, 11, 23, 10, 2, 0, 5e8, loc), ""},
		{"2026-11-23T10:02", time.Date(2026, 11, 23, 10, 2, 0, 0, loc), ""},
		{"2026-11-23 10:02:30", time.Date(2026, 11, 23, 10, 2, 30, 0, loc), ""},
		{"2026-11-22", time.Date(2026, 11, 22, 0, 0, 0, 0, loc), ""},
		{"10:02", time.Date(2026, 11, 23, 10, 2, 0, 0, loc), ""},
		{"09:59:59.25", time.Date(2026, 11, 23, 9, 59, 59, 25e7, loc), ""},
		{"-0s", time.Time{}, "a duration before now"},
		{"-x", time.Time{}, "a duration before now"},
		{"yesterday", time.Time{}, "invalid time"},
		{"25:00", time.Time{}, "invalid time"},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, now)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("%q: %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseFetch(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		args []string
		err  string
		ok   func(fetchFlags) bool
	}{
		{[]string{"s3://captures/dc1", "--port", "vm-1,vm-2", "--from", "-10m", "-w", "x.pcapng", "/var/lib/dpcap", "--port", "pf0"}, "", func(f fetchFlags) bool {
			return len(f.locations) == 2 && f.locations[0].s3 != nil && *f.locations[0].s3 == archive.Location{Bucket: "captures", Prefix: "dc1"} &&
				f.locations[1] == location{arg: "/var/lib/dpcap"} && strings.Join(f.ports, " ") == "vm-1 vm-2 pf0" &&
				f.from.Equal(now.Add(-10*time.Minute)) && f.to.IsZero() && f.out == "x.pcapng" && !f.pcap && f.maxSpan == 24*time.Hour
		}},
		{[]string{"d", "-w", "-", "-F", "pcap", "--endpoint", "http://127.0.0.1:9000", "--path-style", "--max-span", "1h"}, "", func(f fetchFlags) bool {
			return f.pcap && f.client.Endpoint == "http://127.0.0.1:9000" && f.client.PathStyle && f.maxSpan == time.Hour
		}},
		{[]string{"-w", "x"}, "no location", nil},
		{[]string{"d"}, "no output", nil},
		{[]string{"d", "-w", "x", "--from", "10:20", "--to", "10:10"}, "empty window", nil},
		{[]string{"d", "-w", "x", "--port", "a,,b"}, "empty port name", nil},
		{[]string{"d", "-w", "x", "-F", "csv"}, "invalid format", nil},
		{[]string{"d", "-w", "x", "--endpoint", "minio:9000"}, "invalid endpoint", nil},
		{[]string{"s3://B", "-w", "x"}, "invalid bucket name", nil},
		{[]string{"d", "-w", "x", "--max-span", "-1h"}, "invalid --max-span", nil},
		{[]string{"d", "-w", "x", "--bogus"}, "flag provided but not defined", nil},
	}
	for _, tt := range tests {
		f, err := parseFetch(tt.args, now)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !tt.ok(f) {
			t.Errorf("%q: %+v, %v", tt.args, f, err)
		}
	}
}
