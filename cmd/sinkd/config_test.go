package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeFlags returns the rows of README.md's flag table for sinkd: the
// flag each row names, and its meaning.
func readmeFlags(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## sinkd\n")
	if !ok {
		t.Fatal("README.md has no section ## sinkd")
	}
	_, table, ok := strings.Cut(sec, "\n| flag | meaning |\n| --- | --- |\n")
	if !ok {
		t.Fatal("README.md's sinkd section has no flag table")
	}
	rows := map[string]string{}
	name := regexp.MustCompile("^\\| `--?([A-Za-z][\\w-]*)[ `]")
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "|") {
			break
		}
		m := name.FindStringSubmatch(line)
		if m == nil {
			continue // EXPRESSION
		}
		rows[m[1]] = line
	}
	return rows
}

// readmeDefault is the default a row of README's flag table states:
// "default `64m`" or "default 256", not "default: the host name".
var readmeDefault = regexp.MustCompile("default (?:`([^`]+)`|([^\\s`);,:]+))")

// TestFlagsDocumented: every flag sinkd registers, its outputs' included,
// is in --help and in README.md's flag table, and the table's default,
// where it states one, is the flag's.
func TestFlagsDocumented(t *testing.T) {
	help := usage()
	rows := readmeFlags(t)
	fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
	defineFlags(fs, &config{})
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		if !regexp.MustCompile(`(^|[\s(,])` + dash + regexp.QuoteMeta(f.Name) + `($|[^\w-])`).MatchString(help) {
			t.Errorf("%s%s is not in sinkd --help", dash, f.Name)
		}
		row, ok := rows[f.Name]
		if !ok {
			t.Errorf("%s%s is not in README.md's flag table", dash, f.Name)
			return
		}
		delete(rows, f.Name)
		if m := readmeDefault.FindStringSubmatch(row); m != nil {
			if got := m[1] + m[2]; got != defaultOf(f) {
				t.Errorf("README.md: %s%s defaults to %q, the flag to %q", dash, f.Name, got, defaultOf(f))
			}
		}
	})
	for name := range rows {
		t.Errorf("README.md's flag table names %s, which sinkd does not have", name)
	}
	if n < 30 {
		t.Fatalf("only %d flags registered", n)
	}
}

// A port map that cannot be read is a bad command line, exit 2, before any
// file is made: the flags are parsed without I/O, the map read first
// thing after.
func TestRunPortMapUnreadable(t *testing.T) {
	dir := t.TempDir()
	var stderr strings.Builder
	if code := run([]string{"-w", dir + "/x.pcap", "--metrics-addr", "", "--port-map", dir + "/no-such-map.json"}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
	want := "sinkd: read port map: open " + dir + "/no-such-map.json: no such file or directory (see sinkd --help)\n"
	if stderr.String() != want {
		t.Fatalf("stderr %q, want %q", stderr.String(), want)
	}
	if _, err := os.Stat(dir + "/x.pcap"); err == nil {
		t.Fatal("a capture file was made")
	}
}
