package main

import (
	"bytes"
	"net"
	"regexp"
	"strings"
	"testing"
)

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"replay", "x.pcap"}, "no sink"},
		{[]string{"replay", "--sink", "[::1]:3010"}, "exactly one capture file"},
		{[]string{"replay", "--sink", "localhost", "x.pcap"}, `invalid sink "localhost"`},
		{[]string{"replay", "--sink", "[::1]:0", "x.pcap"}, "invalid sink"},
		{[]string{"replay", "--sink", "[::1]:3010", "--pps", "-5", "x.pcap"}, "invalid rate"},
		{[]string{"replay", "--sink", "[::1]:3010", "--udp-src-port", "99999", "x.pcap"}, "invalid port"},
		{[]string{"replay", "--sink", "[::1]:3010", "--loop", "2", "-"}, "--loop needs a file"},
		{[]string{"replay", "--sink", "[::1]:3010", "/no/such.pcap"}, "open /no/such.pcap: no such file or directory"},
		{[]string{"replay", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"-o"}, "flag needs an argument: -o"},
		{[]string{"-o", "json"}, "no command after the flags"},
		{[]string{"--bogus", "status"}, "unknown flag --bogus before the command"},
		{[]string{"-o", "json", "stop"}, "flag provided but not defined: -o"},
		{[]string{"--socket", "/x", "replay", "f"}, "flag provided but not defined: -socket"},
		{[]string{"-o", "csv", "status"}, "invalid output format"},
		{[]string{"start", "--sink-node-ip", "::1", "--udp-dst-port", "1", "--vf", "a", "--for", "soon"}, `invalid --for "soon"`},
		{[]string{"start", "--sink-node-ip", "::1", "--udp-dst-port", "1", "--vf", "a", "--for", "-1m"}, `invalid --for "-1m"`},
		{[]string{"start", "--sink-node-ip", "::1", "--udp-dst-port", "1", "--vf", "a", "--until", "-5m"}, "want a time to come"},
		{[]string{"start", "--sink-node-ip", "::1", "--udp-dst-port", "1", "--vf", "a", "--until", "2020-01-01T00:00:00Z"}, "--until 2020-01-01T00:00:00Z has passed"},
		{[]string{"start", "--sink-node-ip", "::1", "--udp-dst-port", "1", "--vf", "a", "--for", "1m", "--until", "2999-01-01 10:00"}, "give --for or --until, not both"},
		{[]string{"serve", "--max-duration", "-1h"}, "invalid --max-duration -1h0m0s"},
		{[]string{"serve", "--listen-tls", ":9312", "--tls-cert", "c"}, "--listen-tls needs --tls-cert, --tls-key and --client-ca"},
		{[]string{"status", "--host", "http://hv-1:9312"}, `invalid host "http://hv-1:9312": want https://NAME:PORT`},
		{[]string{"status", "--host", "https://hv-1"}, `invalid host "https://hv-1"`},
		{[]string{"status", "--host", "https://hv-1:9312", "--host", "https://hv-1:9312/"}, "host https://hv-1:9312 is given twice"},
		{[]string{"stop", "--host", "https://hv-1:9312", "--socket", "/s"}, "give --socket or --host/--hosts, not both"},
		{[]string{"status", "--hosts", "/no/such/hosts"}, "--hosts: open /no/such/hosts: no such file or directory"},
		{[]string{"status", "--host", "https://hv-1:9312", "--cert", "c.pem"}, "a client certificate needs both its certificate and its key file"},
		{[]string{"fetch", "/tmp", "--capture", "a b", "-w", "x"}, `invalid capture id "a b"`},
		{[]string{"capture", "--sink", "https://s:9311", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x"}, "no port: give --vf NAMES or --pf 0"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "--ca", "ca.pem", "-w", "x"}, "--token-file and --ca are for --sink"},
		{[]string{"capture", "--vf", "vm-1", "--sink", "https://s:9311", "--udp-dst-port", "1", "-w", "x"}, "no sink: give --sink-node-ip"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--socket", "/s", "--host", "https://hv-1:9312"}, "give --socket or --host/--hosts, not both"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--host", "http://hv-1:9312"}, `invalid host "http://hv-1:9312": want https://NAME:PORT`},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--hosts", "/no/such/hosts"}, "--hosts: open /no/such/hosts: no such file or directory"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--host", "https://hv-1:9312", "--timeout", "0s"}, "invalid --timeout 0s"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--host", "https://hv-1:9312", "--key", "k.pem"}, "a client certificate needs both its certificate and its key file"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--host", "https://hv-1:9312", "--token-file", "t"}, "--token-file and --ca are for --sink"},
		{[]string{"capture", "--vf", "vm-1", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--host", "https://hv-1:9312", "--ca", "/no/such/ca.pem"}, "/no/such/ca.pem"},
		{[]string{"capture", "--vf", "vm-1", "--sink", "https://s:9311", "--sink-node-ip", "::1", "-w", "x"}, "no UDP port: give --udp-dst-port"},
		{[]string{"capture", "--vf", "vm-1", "--sink", "https://s:9311", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--for", "soon"}, `invalid --for "soon"`},
		{[]string{"capture", "--vf", "vm-1", "--sink", "https://s:9311", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "--for", "1m", "--until", "2999-01-01 10:00"}, "give --for or --until, not both"},
		{[]string{"capture", "--vf", "vm-1", "--sink", "https://s:9311", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x", "-c", "0"}, `invalid count "0"`},
		{[]string{"capture", "--vf", "vm-1", "--sink", "ftp://s", "--sink-node-ip", "::1", "--udp-dst-port", "1", "-w", "x"}, `invalid sink URL "ftp://s"`},
		{[]string{"capture", "--vf", "vm-1", "--sink", "https://s:9311", "--token", "secret", "-w", "x"}, "flag provided but not defined: -token"},
		{[]string{"capture", "start", "--vf", "a", "--sink-node-ip", "::1"}, "dpcap start: no UDP port: give --udp-dst-port"},
		{[]string{"capture", "stop", "--bogus"}, "dpcap stop: flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			if lines := strings.Count(stderr.String(), "\n"); lines != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr = %q, want one line containing %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestHelpExits0(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"replay", "--help"}, {"capture", "--help"}, {"capture", "start", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage: dpcap") {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout.String())
		}
	}
}

func TestReplayRefusesNonEthernetFiles(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// tcpdump -i any writes Linux cooked headers (LINUX_SLL, 113), not Ethernet.
	if code := run([]string{"replay", "--sink", "[::1]:9", "../../testdata/any-sll.pcap"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "replay needs Ethernet frames") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

// TestGlobalFlagsEitherSide checks that the global flags may come before
// the command, where they mean what they mean after it.
func TestGlobalFlagsEitherSide(t *testing.T) {
	tests := []struct{ in, want string }{
		{"status", "status"},
		{"-o json status", "status -o json"},
		{"--socket /s -o=yaml status --extra", "status --socket /s -o=yaml --extra"},
		{"--socket=/s start --vf vm-1", "start --socket=/s --vf vm-1"},
		{"status -o json", "status -o json"},
		{"--help", "--help"},
		// dpservice-cli's spelling.
		{"capture start --vf vm-1", "start --vf vm-1"},
		{"--socket /s capture status", "status --socket /s"},
		{"capture --socket /s stop", "stop --socket /s"},
		{"capture --vf vm-1 --for 2m", "capture --vf vm-1 --for 2m"},
		{"capture", "capture"},
	}
	for _, tt := range tests {
		got, err := commandFirst(strings.Fields(tt.in))
		got = seedSpelling(got)
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// The same request either way: both reach the socket named.
	for _, args := range [][]string{{"--socket", "/nonexistent/x.sock", "status"}, {"status", "--socket", "/nonexistent/x.sock"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "cannot reach dpcap serve at /nonexistent/x.sock") {
			t.Errorf("%q: exit %d, %s", args, code, stderr.String())
		}
	}
}

// TestReplayExits1WhenTheSinkRefuses replays to a port on loopback where
// nothing listens: one packet (refused after the last send) or the whole
// file, it exits 1 with one line saying how many were refused; with a
// listener there, 0.
func TestReplayExits1WhenTheSinkRefuses(t *testing.T) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sink := pc.LocalAddr().String()
	pc.Close() // nothing listens there now
	for _, count := range []string{"1", "0"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"replay", "--sink", sink, "--count", count, "../../testdata/vm-traffic.pcap"}, &stdout, &stderr)
		refusal := regexp.MustCompile(`(?m)^dpcap replay: the sink refused [1-9][0-9]* of the [0-9]+ packets sent .*$`)
		if code != 1 || !refusal.MatchString(stderr.String()) {
			t.Errorf("--count %s to a closed port: exit %d, stderr %q", count, code, stderr.String())
		}
	}
	pc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"replay", "--sink", pc.LocalAddr().String(), "../../testdata/vm-traffic.pcap"}, &stdout, &stderr); code != 0 || strings.Contains(stderr.String(), "refused") {
		t.Errorf("to a listener: exit %d, stderr %q", code, stderr.String())
	}
}
