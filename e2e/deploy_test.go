package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verifyUnits runs systemd-analyze verify on the units, pointed at the
// built binaries (verify checks ExecStart= exists), with extra appended.
func verifyUnits(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	var units []string
	for _, u := range []string{"sinkd.service", "dpcap.service"} {
		b, err := os.ReadFile(filepath.Join("../deploy/systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/", binDir+"/") + extra
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	out, _ := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// TestSystemdUnits has systemd check the shipped units.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing; 'make test' installs it")
	}
	if out := verifyUnits(t, ""); out != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	// The check is real: a mistake is reported.
	if out := verifyUnits(t, "[Service]\nProtectSystem=sometimes\n"); !strings.Contains(out, "sometimes") {
		t.Errorf("a bad directive went unnoticed: %q", out)
	}
}
