package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// makeTargets runs make in the repository for targets and returns the
// files matching glob under bin/ afterwards.
func makeTargets(t *testing.T, glob string, targets ...string) []string {
	t.Helper()
	out, err := exec.Command("make", append([]string{"-C", ".."}, targets...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(targets, " "), err, out)
	}
	m, _ := filepath.Glob(filepath.Join("../bin", glob))
	return m
}

// TestDebianPackage installs the package built by make deb on this
// machine, checks its files, users and units, runs sinkd from it as the
// unit does (as the packaged user, with the packaged /etc/default), and
// removes and purges it: only the captures remain, those in the README's
// /var/lib/dpcap included, while dpcap serve's state goes.
func TestDebianPackage(t *testing.T) {
	if exec.Command("dpkg", "-s", "dpcap").Run() == nil {
		t.Fatal("a dpcap package is installed on this machine: this test installs and removes its own")
	}
	deb := oneDeb(t, "VERSION=0.1.0")
	hadUser := exec.Command("getent", "passwd", "sinkd").Run() == nil
	had := map[string]bool{}
	for _, d := range []string{"/var/lib/sinkd", "/var/lib/dpcap", serveState} {
		_, err := os.Stat(d)
		had[d] = err == nil
	}
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "dpcap").Run()
		for d, was := range had {
			if !was { // never a capture directory this test did not make
				os.RemoveAll(d)
			}
		}
		if !hadUser {
			exec.Command("userdel", "sinkd").Run()
			exec.Command("groupdel", "sinkd").Run()
			exec.Command("groupdel", "dpcap").Run()
		}
	})
	dpkg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("dpkg", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dpkg("-i", deb)
	dpkg("-i", deb) // again, as a reinstall does: the scripts are idempotent
	// State an earlier version kept among the captures moves to dpcap
	// serve's own directory at the upgrade, tags included.
	if err := os.WriteFile("/var/lib/dpcap/tags.json", []byte(`{"tags": {"vm-old": 7}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// An upgrade keeps a conffile the admin edited, without a prompt (the
	// new version's is the same), and the user and directory as they were.
	edited, err := os.ReadFile("/etc/default/sinkd")
	if err != nil {
		t.Fatal(err)
	}
	edited = append(edited, "# edited by the admin\n"...)
	if err := os.WriteFile("/etc/default/sinkd", edited, 0o644); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), filepath.Base(deb))
	if err := os.Rename(deb, old); err != nil {
		t.Fatal(err)
	}
	upgrade := oneDeb(t, "VERSION=0.1.1")
	dpkg("-i", upgrade)
	if v := dpkg("-s", "dpcap"); !strings.Contains(v, "\nVersion: 0.1.1+") {
		t.Errorf("after the upgrade:\n%s", v)
	}
	// Depends names the libraries the binaries link, with versions.
	if v := dpkg("-s", "dpcap"); !strings.Contains(v, "libc6 (>= 2.") || !strings.Contains(v, "libpcap0.8 (>= ") || !strings.Contains(v, "adduser") {
		t.Errorf("Depends:\n%s", v)
	}
	if b, _ := os.ReadFile("/etc/default/sinkd"); string(b) != string(edited) {
		t.Errorf("the upgrade replaced the edited /etc/default/sinkd:\n%s", b)
	}
	if b, err := os.ReadFile(filepath.Join(serveState, "tags.json")); err != nil || !strings.Contains(string(b), `"vm-old": 7`) {
		t.Errorf("the upgrade did not move the old tags to %s: %v %s", serveState, err, b)
	}
	if _, err := os.Stat("/var/lib/dpcap/tags.json"); err == nil {
		t.Error("the old tags are still among the captures after the upgrade")
	}
	files := strings.Fields(dpkg("-L", "dpcap"))

	// Files, owners, users, conffiles.
	for _, f := range []string{"/usr/bin/sinkd", "/usr/bin/dpcap", "/lib/systemd/system/sinkd.service",
		"/lib/systemd/system/dpcap.service", "/etc/default/sinkd", "/etc/default/dpcap"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	st, err := os.Stat("/var/lib/sinkd")
	if err != nil {
		t.Fatal(err)
	}
	uid := lookupID(t, "-u", "sinkd")
	if sys := st.Sys().(*syscall.Stat_t); int(sys.Uid) != uid || st.Mode().Perm() != 0o750 {
		t.Errorf("/var/lib/sinkd: uid %d mode %v, want sinkd's (%d) and 0750", sys.Uid, st.Mode().Perm(), uid)
	}
	if conf := dpkg("-s", "dpcap"); !strings.Contains(conf, "/etc/default/sinkd") || !strings.Contains(conf, "/etc/default/dpcap") {
		t.Errorf("conffiles not declared:\n%s", conf)
	}
	if out, _ := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/sinkd.service", "/lib/systemd/system/dpcap.service").CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	unit, _ := os.ReadFile("/lib/systemd/system/sinkd.service")
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/sinkd -Z sinkd") {
		t.Errorf("the unit does not start the packaged binary:\n%s", unit)
	}
	// systemd is not PID 1 here, so this is read, not run: StateDirectory=
	// without User= makes systemd chown the directory and the captures to
	// root at each start, and sinkd (-Z sinkd) could write no next file.
	if strings.Contains(string(unit), "\nStateDirectory=") && !strings.Contains(string(unit), "\nUser=") {
		t.Error("sinkd.service has StateDirectory= without User=: systemd would give /var/lib/sinkd to root")
	}

	// sinkd as the unit starts it, in a namespace; envelopes from another.
	hv, sk := newNS(t), newNS(t)
	link(t, hv, sk, 1600)
	cmd := sk.cmd("sh", "-c", `set -a; . /etc/default/sinkd; exec /usr/bin/sinkd -Z sinkd -w "$SINKD_OUTPUT" $SINKD_FLAGS`)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &daemon{ns: sk, metricsAddr: defaultMetricsAddr, cmd: cmd, stderr: &stderr}
	waitFor(t, "sinkd's /readyz", func() bool { code, _ := d.get(t, "/readyz"); return code == 200 })
	if got := procUID(t, cmd.Process.Pid); got != uid {
		t.Errorf("sinkd runs as uid %d, want sinkd's %d", got, uid)
	}
	replay(t, hv, "[2001:db8:1::2]:3010", vmTraffic)
	d.waitMetric(t, "sinkd_packets_written_total", 74)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sinkd: %v\n%s", err, stderr.String())
	}
	captures, _ := filepath.Glob("/var/lib/sinkd/capture-*.pcapng")
	if len(captures) != 1 {
		t.Fatalf("captures %v, want one file", captures)
	}
	checkWithTools(t, captures[0], 74)
	if st, _ := os.Stat(captures[0]); int(st.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("%s is not sinkd's", captures[0])
	}
	// A capture where the README's examples write them
	// (sinkd --port 3010 -w /var/lib/dpcap/vf.pcap).
	evidence, err := os.ReadFile(captures[0])
	if err != nil {
		t.Fatal(err)
	}
	readmeCapture := "/var/lib/dpcap/vf.pcapng"
	if err := os.WriteFile(readmeCapture, evidence, 0o640); err != nil {
		t.Fatal(err)
	}

	// The packaged dpcap serve with its default state directory: a capture
	// started and left saved, as a daemon stopped by the removal leaves it.
	socket := filepath.Join(t.TempDir(), "dpcap.sock")
	serve := hv.cmd("/usr/bin/dpcap", "serve", "--backend", "software", "--socket", socket)
	var serveLog syncBuffer
	serve.Stderr = &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	waitFor(t, "dpcap serve to answer", func() bool { _, code := dpcap(t, "status", "--socket", socket); return code == 0 })
	if out, code := dpcap(t, "start", "--socket", socket, "--sink-node-ip", "2001:db8:1::2", "--udp-dst-port", "3010", "--vf", "e2e0"); code != 0 {
		t.Fatalf("dpcap start: exit %d\n%s\n%s", code, out, serveLog.String())
	}
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	stateFiles := []string{"capture.json", "portmap.json", "tags.json"}
	for _, f := range stateFiles {
		if _, err := os.Stat(filepath.Join(serveState, f)); err != nil {
			t.Errorf("dpcap serve's state: %v", err)
		}
	}

	// Remove: nothing of the package's is left but the conffiles and the
	// directory holding the capture.
	dpkg("-r", "dpcap")
	for _, f := range files {
		st, err := os.Stat(f) // followed: /lib is a link to usr/lib here
		if err != nil || st.IsDir() && f != "/var/lib/sinkd" {
			continue // gone, or a shared directory such as /usr/bin
		}
		if f != "/etc/default/sinkd" && f != "/etc/default/dpcap" {
			t.Errorf("left after dpkg -r: %s", f)
		}
	}
	if _, err := os.Stat(captures[0]); err != nil {
		t.Errorf("the capture went with the package: %v", err)
	}
	for _, f := range stateFiles {
		if _, err := os.Stat(filepath.Join(serveState, f)); err != nil {
			t.Errorf("dpkg -r removed dpcap serve's state: %v", err)
		}
	}
	// Purge: the conffiles and dpcap serve's state go too; the captures
	// stay, wherever they were written.
	dpkg("-P", "dpcap")
	for _, f := range []string{"/etc/default/sinkd", "/etc/default/dpcap", serveState} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("left after dpkg -P: %s", f)
		}
	}
	if _, err := os.Stat(captures[0]); err != nil {
		t.Errorf("the capture went with the purge: %v", err)
	}
	if b, err := os.ReadFile(readmeCapture); err != nil || !bytes.Equal(b, evidence) {
		t.Errorf("the capture in /var/lib/dpcap went with the purge: %v", err)
	}
}

// serveState is the packaged dpcap serve's state directory.
const serveState = "/var/lib/dpcap-serve"

// oneDeb runs make deb with vars and returns the one package it leaves in
// bin/.
func oneDeb(t *testing.T, vars ...string) string {
	t.Helper()
	debs := makeTargets(t, "dpcap_*_amd64.deb", append([]string{"deb"}, vars...)...)
	if len(debs) != 1 {
		t.Fatalf("make deb %s left %v in bin/, want one package", strings.Join(vars, " "), debs)
	}
	return debs[0]
}

func lookupID(t *testing.T, flag, name string) int {
	t.Helper()
	out, err := exec.Command("id", flag, name).Output()
	if err != nil {
		t.Fatalf("id %s %s: %v", flag, name, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// procUID returns the real uid of a running process.
func procUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no Uid in /proc status")
	return -1
}
