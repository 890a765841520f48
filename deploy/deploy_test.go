// Package deploy holds the deployment files; its tests check them with the
// tools that read them (systemd-analyze, the Kubernetes schemas, a running
// sinkd for the dashboard).
package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// binDir holds sinkd and dpcap, built for these tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := testkit.Build("", "cmd/sinkd", "cmd/dpcap")
	if err != nil {
		fmt.Println("deploy: build failed:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// verifyUnits runs systemd-analyze verify on the units, pointed at the
// built binaries (verify checks ExecStart= exists), with extra appended.
func verifyUnits(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	var units []string
	for _, u := range []string{"sinkd.service", "dpcap.service"} {
		b, err := os.ReadFile(filepath.Join("systemd", u))
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

// TestGrafanaDashboardUsesRealMetrics checks every metric the dashboard
// queries is one a running sinkd serves.
func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/sinkd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	// With the optional parts whose metrics appear only when used: -z,
	// uploads (to a store that is not there) and live viewers.
	body := sinkdMetrics(t, "-w", filepath.Join(t.TempDir(), "x.pcap"), "-C", "1m", "-z", "true",
		"--upload", "s3://captures/x", "--upload-endpoint", "http://127.0.0.1:9", "--upload-path-style",
		"--live", loopbackAddr(t))
	metric := regexp.MustCompile(`sinkd_[a-z_]+`)
	used := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				used++
				if !strings.Contains(body, "\n"+m+" ") && !strings.Contains(body, "\n"+m+"{") {
					t.Errorf("panel %q queries %s, which sinkd does not serve", p.Title, m)
				}
			}
		}
	}
	if used < 8 {
		t.Errorf("the dashboard queries only %d metrics", used)
	}
}

// TestGrafanaDashboardShowsLiveViewers checks the dashboard queries every
// metric of live viewers docs/LIVE.md lists.
func TestGrafanaDashboardShowsLiveViewers(t *testing.T) {
	doc, err := os.ReadFile("../docs/LIVE.md")
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile("grafana/sinkd.json")
	if err != nil {
		t.Fatal(err)
	}
	listed := regexp.MustCompile("(?m)^\\| `(sinkd_live_[a-z_]+)").FindAllStringSubmatch(string(doc), -1)
	if len(listed) < 5 {
		t.Fatalf("docs/LIVE.md lists only %d live metrics", len(listed))
	}
	for _, m := range listed {
		if !regexp.MustCompile(`"expr": "[^"]*\b` + m[1] + `\b`).Match(dash) {
			t.Errorf("the dashboard does not show %s", m[1])
		}
	}
}

// TestKubernetesManifests validates the manifests against the Kubernetes
// API schemas (kubernetes-models, generated from the official OpenAPI
// specs; prometheus-operator's for the PodMonitor).
func TestKubernetesManifests(t *testing.T) {
	if _, err := os.Stat("kubernetes/validate/node_modules"); err != nil {
		t.Fatal("the manifests' validator has no node_modules: run make test-deps (npm ci in deploy/kubernetes/validate)")
	}
	validate := func(files ...string) (string, error) {
		out, err := exec.Command("node", append([]string{"kubernetes/validate/validate.mjs"}, files...)...).CombinedOutput()
		return string(out), err
	}
	out, err := validate("kubernetes/dpcap.yaml", "kubernetes/sinkd.yaml")
	if err != nil || !strings.Contains(out, "6 documents valid, 0 invalid") {
		t.Fatalf("manifests: %v\n%s", err, out)
	}
	// The check is real: a wrong type is reported.
	b, err := os.ReadFile("kubernetes/sinkd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(b), "replicas: 1", "replicas: one", 1)), 0o644)
	if out, err := validate(bad); err == nil || !strings.Contains(out, "replicas must be integer") {
		t.Errorf("a wrong type went unnoticed: %v\n%s", err, out)
	}
}

// loopbackAddr returns a TCP address on loopback that was free a moment
// ago.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sinkdMetrics starts sinkd with args on loopback ports of its own, waits
// until it is ready and returns its /metrics.
func sinkdMetrics(t *testing.T, args ...string) string {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port, addr := udp.LocalAddr().(*net.UDPAddr).Port, loopbackAddr(t)
	udp.Close()
	var stderr strings.Builder
	cmd := exec.Command(filepath.Join(binDir, "sinkd"), append(args, "--listen", "127.0.0.1", "--port", fmt.Sprint(port), "--metrics-addr", addr)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("sinkd exited: %s", stderr.String())
		default:
		}
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sinkd not ready within 30 s")
		}
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body
}
