package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/control/hosts"
	"github.com/dpcap/dpcap/internal/testkit"
)

// hypervisor starts a dpcap serve (software backend, every interface a
// port) in ns with the API on TCP at addr over mutual TLS, and a VM port
// of its own, tap.
func hypervisor(t *testing.T, ns *testkit.NetNS, addr, tap string, certs testkit.Certs) *dpcapd {
	t.Helper()
	ns.Run(t, "ip", "link", "add", tap, "type", "veth", "peer", "name", tap+"-vm")
	ns.Run(t, "ip", "link", "set", tap, "up")
	ns.Run(t, "ip", "link", "set", tap+"-vm", "up")
	dir := t.TempDir()
	socket := filepath.Join(dir, "dpcap.sock")
	return startServeArgs(t, ns, socket, []string{"serve", "--backend", "software", "--socket", socket, "--state-dir", filepath.Join(dir, "state"),
		"--listen-tls", addr, "--tls-cert", certs.Cert, "--tls-key", certs.Key, "--client-ca", certs.CA})
}

// The rack's two hypervisors' dpcap serve (--listen-tls).
const (
	rackHV1 = "https://[2001:db8:1::2]:9312"
	rackHV2 = "https://[2001:db8:2::2]:9312"
)

// rack is two dpcap serve in two hypervisor namespaces, hv-1 with VM port
// tap-vm1 and hv-2 with tap-vm2, reached over mutual TLS from an
// operator's namespace, ops (2001:db8:1::1 towards hv-1 ::2, 2001:db8:2::1
// towards hv-2 ::2); hostsFile lists both.
type rack struct {
	ops, hv1, hv2 *testkit.NetNS
	d1, d2        *dpcapd
	certs         testkit.Certs
	cert, key     string // operator-1's client certificate
	hostsFile     string
	mtls          []string // the environment that gives cert, key and CA
}

func newRack(t *testing.T) *rack {
	t.Helper()
	r := &rack{ops: testkit.NewNetNS(t), hv1: testkit.NewNetNS(t), hv2: testkit.NewNetNS(t)}
	testkit.Link(t, r.ops, r.hv1, 1500, 1)
	testkit.Link(t, r.ops, r.hv2, 1500, 2)
	r.certs = testkit.NewCerts(t, "2001:db8:1::2", "2001:db8:2::2")
	r.d1 = hypervisor(t, r.hv1, "[2001:db8:1::2]:9312", "tap-vm1", r.certs)
	r.d2 = hypervisor(t, r.hv2, "[2001:db8:2::2]:9312", "tap-vm2", r.certs)
	r.cert, r.key = r.certs.ClientCert(t, "operator-1")
	r.hostsFile = filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(r.hostsFile, []byte("# the rack's hypervisors\n"+rackHV1+"  # hv-1\n\n"+rackHV2+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.mtls = []string{"DPCAP_CERT=" + r.cert, "DPCAP_KEY=" + r.key, "DPCAP_CA=" + r.certs.CA}
	return r
}

// run runs dpcap in the operator's namespace with env added (the
// certificate, say) and returns its output, both streams, and exit code.
func (r *rack) run(env []string, args ...string) (string, int) {
	cmd := r.ops.Cmd(bin("dpcap"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// TestManyHypervisors: two dpcap serve in two hypervisor namespaces, each
// with its own VM port, reached over mutual TLS from an operator's
// namespace. dpcap start --hosts finds the port on the right one and
// starts there only; status over both shows it in one table with a HOST
// column; a port on both or on none is refused in one line; a dead host is
// named and makes the exit status 1; a client without a certificate the
// hosts' CA signed is refused.
func TestManyHypervisors(t *testing.T) {
	r := newRack(t)
	hv1, hv2, certs, d1, d2, cert, key, hostsFile, mtls, run := r.hv1, r.hv2, r.certs, r.d1, r.d2, r.cert, r.key, r.hostsFile, r.mtls, r.run
	hv1URL, hv2URL, deadURL := rackHV1, rackHV2, "https://[2001:db8:1::2]:9399"
	statusOf := func(args ...string) ([]hosts.Status, int, string) {
		t.Helper()
		out, code := run(mtls, append([]string{"status", "-o", "json"}, args...)...)
		var sts []hosts.Status // the list, then stderr's line
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&sts); err != nil {
			t.Fatalf("dpcap status -o json %v: exit %d: %v\n%s", args, code, err, out)
		}
		return sts, code, out
	}
	start := []string{"start", "--hosts", hostsFile, "--sink-node-ip", "2001:db8:2::1", "--udp-dst-port", "3010", "--for", "2m"}

	// A port on both hosts (each has lo), or on none: refused in one
	// line naming the hosts, nothing started.
	for vf, want := range map[string]string{
		"lo":      "port lo is on [2001:db8:1::2]:9312 and [2001:db8:2::2]:9312",
		"tap-vm9": "port tap-vm9 is on none of the hosts",
	} {
		out, code := run(mtls, append(start, "--vf", vf)...)
		if code != 2 || strings.Count(out, "\n") != 1 || !strings.Contains(out, want) || !strings.Contains(out, "nothing was started") {
			t.Errorf("start --vf %s: exit %d, want 2 and one line with %q:\n%s", vf, code, want, out)
		}
	}

	out, code := run(nil, append(start, "-o", "json", "--vf", "tap-vm2", "--cert", cert, "--key", key, "--ca", certs.CA)...)
	var started []hosts.Status
	if code != 0 || json.Unmarshal([]byte(out), &started) != nil || len(started) != 1 || started[0].Host != hv2URL ||
		started[0].Status == nil || !started[0].Status.Active || started[0].Status.ID == "" {
		t.Fatalf("start --vf tap-vm2: exit %d\n%s", code, out)
	}
	id := started[0].Status.ID
	if n1, n2 := tcxPrograms(t, hv1, "tap-vm1"), tcxPrograms(t, hv2, "tap-vm2"); n1 != 0 || n2 != 1 {
		t.Errorf("programs on hv-1's tap-vm1 %d, hv-2's tap-vm2 %d: want 0 and 1", n1, n2)
	}
	sts, code, out := statusOf("--hosts", hostsFile)
	if code != 0 || len(sts) != 2 || sts[0].Host != hv1URL || sts[0].Status == nil || sts[0].Status.Active ||
		sts[1].Host != hv2URL || sts[1].Status == nil || !sts[1].Status.Active || sts[1].Status.ID != id {
		t.Errorf("status over both: exit %d\n%s", code, out)
	}
	table, code := run(mtls, "status", "--host", hv1URL, "--host", hv2URL)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "HOST") ||
		!strings.Contains(lines[1], "[2001:db8:1::2]:9312") || !strings.Contains(lines[1], "not active") ||
		!strings.Contains(lines[2], "[2001:db8:2::2]:9312") || !strings.Contains(lines[2], "ACTIVE") ||
		!strings.Contains(lines[2], id) || !strings.Contains(lines[2], "tap-vm2") {
		t.Errorf("status table: exit %d\n%s", code, table)
	}
	t.Logf("dpcap status --host hv-1 --host hv-2:\n%s", table)

	// A dead third host (nothing listens): named, exit 1; the others
	// shown (the --host ones come before the file's).
	sts, code, out = statusOf("--hosts", hostsFile, "--host", deadURL)
	if code != 1 || len(sts) != 3 || sts[0].Host != deadURL || sts[0].Error == "" || sts[0].Status != nil || sts[2].Status == nil || !sts[2].Status.Active {
		t.Errorf("status with a dead host: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "dpcap status: no answer from [2001:db8:1::2]:9399") {
		t.Errorf("the dead host is not named on stderr:\n%s", out)
	}
	if out, code := run(mtls, append(start, "--host", deadURL, "--vf", "tap-vm1", "--replace")...); code != 1 || !strings.Contains(out, "[2001:db8:1::2]:9399: ") || !strings.Contains(out, "nothing was started") {
		t.Errorf("start with a dead host: exit %d\n%s", code, out)
	}

	// Without a certificate, or with one another CA signed: refused at
	// the handshake, and the daemons see no request.
	other := testkit.NewCerts(t, "2001:db8:1::2")
	ocert, okey := other.ClientCert(t, "intruder")
	for name, env := range map[string][]string{
		"no certificate":           {"DPCAP_CA=" + certs.CA},
		"another CA's certificate": {"DPCAP_CERT=" + ocert, "DPCAP_KEY=" + okey, "DPCAP_CA=" + certs.CA},
	} {
		out, code := run(env, "stop", "--host", hv2URL)
		if code != 1 || !strings.Contains(out, "tls: ") {
			t.Errorf("%s: exit %d\n%s", name, code, out)
		}
	}
	if sts, _, out := statusOf("--host", hv2URL); !sts[0].Status.Active || sts[0].Status.ID != id {
		t.Errorf("a refused client's stop changed the capture:\n%s", out)
	}

	out, code = run(mtls, "stop", "--hosts", hostsFile)
	if code != 0 || out != "[2001:db8:1::2]:9312: capture is not active\n[2001:db8:2::2]:9312: capture stopped\n" {
		t.Errorf("stop over both: exit %d\n%s", code, out)
	}
	if n := tcxPrograms(t, hv2, "tap-vm2"); n != 0 {
		t.Errorf("%d programs left on tap-vm2", n)
	}
	// The daemons name the client of each start and stop.
	log1, log2 := d1.stderr.String(), d2.stderr.String()
	if strings.Contains(log1, "start asked") || strings.Count(log2, `msg="start asked" client="CN=operator-1"`) != 1 ||
		!strings.Contains(log2, `msg="stop asked" client="CN=operator-1"`) || strings.Contains(log1+log2, "intruder") {
		t.Errorf("logs:\nhv-1:\n%s\nhv-2:\n%s", log1, log2)
	}
}

// TestManyHypervisorsCapture: dpcap capture --hosts, from the operator's
// namespace, finds tap-vm2 on hv-2 and starts there only; it reads the
// VM's frames from a sinkd of its own on the operator's address towards
// hv-2, writes exactly a run of what the VM sent, stops hv-2's capture
// at --for or -c, and leaves no mirror on either host. With a dead host among
// them, it is named and nothing is started.
func TestManyHypervisorsCapture(t *testing.T) {
	r := newRack(t)
	// hv-2's VM: tap-vm2's peer, moved into a namespace of its own as vm0.
	vm := testkit.NewNetNS(t)
	r.hv2.Run(t, "ip", "link", "set", "tap-vm2-vm", "netns", vm.Name)
	vm.Run(t, "ip", "link", "set", "tap-vm2-vm", "name", "vm0")
	vm.Run(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "vm0")
	vm.Run(t, "ip", "link", "set", "vm0", "up")
	r.hv2.Run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "tap-vm2")
	capture := []string{"capture", "--hosts", r.hostsFile, "--vf", "tap-vm2", "--sink-node-ip", "2001:db8:2::1", "--udp-dst-port", "3010", "--for", "3s"}

	out, code := r.run(r.mtls, append(capture, "--host", "https://[2001:db8:1::2]:9399", "-w", filepath.Join(t.TempDir(), "none.pcapng"))...)
	if code != 1 || !strings.Contains(out, "[2001:db8:1::2]:9399: ") || !strings.Contains(out, "nothing was started") {
		t.Errorf("capture with a dead host: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	stopVM := numbered(t, vm, dir)
	file := filepath.Join(dir, "out.pcapng")
	begin := time.Now()
	out, code = r.run(r.mtls, append(capture, "-w", file)...)
	took := time.Since(begin)
	sent := stopVM()
	t.Logf("dpcap capture --hosts (%v):\n%s", took.Round(time.Millisecond), out)
	if code != 0 || !strings.Contains(out, " on [2001:db8:2::2]:9312 of tap-vm2 started") ||
		!strings.Contains(out, "its deadline: [2001:db8:2::2]:9312: ") || !strings.Contains(out, "tap-vm2: ") {
		t.Fatalf("capture: exit %d\n%s", code, out)
	}
	if took < 3*time.Second || took > 20*time.Second {
		t.Errorf("capture --for 3s took %v", took)
	}
	if got := checkSentRun(t, file, sent); len(got) < 50 {
		t.Errorf("%d numbered frames written in 3 s of about 100 a second", len(got))
	}
	if n1, n2 := tcxPrograms(t, r.hv1, "tap-vm1"), tcxPrograms(t, r.hv2, "tap-vm2"); n1 != 0 || n2 != 0 {
		t.Errorf("programs left: hv-1's tap-vm1 %d, hv-2's tap-vm2 %d", n1, n2)
	}
	if out, code := r.run(r.mtls, "status", "--hosts", r.hostsFile); code != 0 || strings.Count(out, "not active") != 2 {
		t.Errorf("status after the capture: exit %d\n%s", code, out)
	}

	// Ended by -c long before its deadline: the command stops hv-2's
	// capture itself.
	stopVM = numbered(t, vm, t.TempDir())
	defer stopVM()
	capture[len(capture)-1] = "1m"
	out, code = r.run(r.mtls, append(capture, "-c", "20", "-w", filepath.Join(dir, "c.pcapng"))...)
	if code != 0 || !strings.Contains(out, "-c 20: [2001:db8:2::2]:9312: capture stopped\n") || !strings.Contains(out, "20 frames written") {
		t.Errorf("capture -c 20: exit %d\n%s", code, out)
	}
	if n := tcxPrograms(t, r.hv2, "tap-vm2"); n != 0 {
		t.Errorf("%d programs left on hv-2's tap-vm2 after -c", n)
	}
	if log1 := r.d1.stderr.String(); strings.Contains(log1, "start asked") {
		t.Errorf("hv-1 was asked to start:\n%s", log1)
	}
}
