//go:build !minimal

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dpcap/dpcap/capture/pcapfile"
)

func TestParseWatch(t *testing.T) {
	tests := []struct {
		args   []string
		tty    bool
		sink   string
		filter string
		ports  string
		out    string
		err    string
	}{
		{args: []string{"https://s:9311", "--port", "vm-1", "tcp port 443", "-w", "-"}, sink: "https://s:9311", filter: "tcp port 443", ports: "vm-1", out: "-"},
		{args: []string{"--port", "vm-1,vm-2", "https://s:9311", "tcp", "port", "443", "-c", "5", "and", "not", "icmp"}, sink: "https://s:9311", filter: "tcp port 443 and not icmp", ports: "vm-1 vm-2", out: "-"},
		{args: []string{"s:9311", "-w", "x.pcapng", "--", "-1"}, tty: true, sink: "s:9311", filter: "-1", out: "x.pcapng"},
		{args: []string{"https://s:9311"}, tty: true, err: "no output: give -w FILE"},
		{args: []string{"-w", "-"}, err: "no sink"},
		{args: []string{"s", "-s", "0"}, err: "invalid snap length"},
		{args: []string{"s", "-c", "x"}, err: "invalid count"},
		{args: []string{"s", "--format", "erf"}, err: "erf"},
		{args: []string{"s", "--port", ","}, err: "empty port name"},
		{args: []string{"s", "--token", "x"}, err: "flag provided but not defined: -token"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			f, err := parseWatch(tt.args, tt.tty)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.sink != tt.sink || f.req.Filter != tt.filter || strings.Join(f.req.Ports, " ") != tt.ports || f.out != tt.out {
				t.Errorf("sink %q filter %q ports %q out %q", f.sink, f.req.Filter, f.req.Ports, f.out)
			}
		})
	}
}

func TestWatchCommand(t *testing.T) {
	const token = "watch-token-0123456789"
	url, ca := liveSink(t, token)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.pcapng")
	var stdout, stderr bytes.Buffer
	code := run([]string{"watch", url, "--ca", ca, "--token-file", tokenFile, "-c", "3", "-w", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	pkts, _, err := pcapfile.ReadFile(out)
	if err != nil || len(pkts) != 3 {
		t.Fatalf("%d frames in %s: %v", len(pkts), out, err)
	}
	want := "3 frames received, written to " + out + "\n0 frames lost at the sink for this viewer\n0 reconnections\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}

	// A wrong token: one line with what the sink said, exit 1, no file.
	if err := os.WriteFile(tokenFile, []byte("wrong-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := filepath.Join(dir, "refused.pcapng")
	stderr.Reset()
	code = run([]string{"watch", url, "--ca", ca, "--token-file", tokenFile, "-w", refused}, &stdout, &stderr)
	if code != 1 || stderr.String() != "dpcap watch: the sink answered 401 Unauthorized: no or unknown token\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Lstat(refused); !os.IsNotExist(err) {
		t.Errorf("%s made: %v", refused, err)
	}
}
