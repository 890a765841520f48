package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/internal/testkit"
)

// TestAllowOnlyNamedSources sends envelopes from two senders; --allow
// names one: the other's are counted, never written.
func TestAllowOnlyNamedSources(t *testing.T) {
	hv1, hv2, sk := testkit.NewNetNS(t), testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv1, sk, 1600, 1)
	testkit.Link(t, hv2, sk, 1600, 2)
	out := filepath.Join(t.TempDir(), "out.pcap")
	d := startSinkd(t, sk, "-w", out, "--allow", "2001:db8:1::/64,198.51.100.1")
	replay(t, hv1, "[2001:db8:1::2]:3010", vmTraffic)              // allowed prefix
	replay(t, hv2, "[2001:db8:2::2]:3010", vmTraffic)              // not named
	replay(t, hv2, "198.51.100.2:3010", vmTraffic, "--count", "5") // allowed address, over IPv4
	m := d.waitMetric(t, "sinkd_packets_received_total", 74+74+5)
	code, stderr := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := m[`sinkd_packets_dropped_total{reason="source_not_allowed"}`]; got != 74 {
		t.Errorf("denied %v, want 74", got)
	}
	if !strings.Contains(stderr, "74 packets from sources --allow does not name") {
		t.Errorf("summary:\n%s", stderr)
	}
	equalFrames(t, readFrames(t, out), append(testkit.VMFrames(t), testkit.VMFrames(t)[:5]...))
}

// TestRunAsUser starts sinkd as root with -Z nobody: it runs without root,
// its files belong to nobody, and rotation still works.
func TestRunAsUser(t *testing.T) {
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	d := startSinkd(t, ns, "-w", filepath.Join(dir, "cap.pcap"), "-C", "10k", "-Z", "nobody")
	status, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && (f[0] == "Uid:" || f[0] == "Gid:") && (f[1] != "65534" || f[2] != "65534" || f[3] != "65534") {
			t.Errorf("still %s", line)
		}
		if len(f) == 2 && f[0] == "CapEff:" && f[1] != "0000000000000000" {
			t.Errorf("capabilities left: %s", line)
		}
	}
	replay(t, ns, "[::1]:3010", vmTraffic, "--loop", "3")
	d.waitMetric(t, "sinkd_packets_written_total", 3*74)
	d.stop(t, syscall.SIGTERM)
	names := testkit.DirNames(t, dir)
	if len(names) < 2 {
		t.Fatalf("files %v: want rotation", names)
	}
	total := 0
	for _, n := range names {
		p := filepath.Join(dir, n)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: owner %d, mode %v", n, st.Uid, fi.Mode().Perm())
		}
		c := len(readFrames(t, p))
		checkWithTools(t, p, c)
		total += c
	}
	if total != 3*74 {
		t.Errorf("files hold %d packets, want %d", total, 3*74)
	}
	bad := ns.Cmd(bin("sinkd"), "-w", filepath.Join(t.TempDir(), "x.pcap"), "-Z", "no-such-user-here", "--metrics-addr", "")
	if out, _ := bad.CombinedOutput(); bad.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "-Z no-such-user-here") {
		t.Errorf("an unknown user: exit %d\n%s", bad.ProcessState.ExitCode(), out)
	}
}

// serveWithGroup starts dpcap serve with --group group on a socket others
// can reach, and returns the socket and the daemon's log.
func serveWithGroup(t *testing.T, group string) (string, *syncBuffer) {
	t.Helper()
	ns := testkit.NewNetNS(t)
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(dir, "dpcap.sock")
	serve := ns.Cmd(bin("dpcap"), "serve", "--backend", "software", "--port", "vm-1=lo", "--group", group,
		"--socket", socket, "--state-dir", filepath.Join(dir, "state"))
	stderr := &syncBuffer{}
	serve.Stderr = stderr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	testkit.Eventually(t, 10*time.Second, "the API socket", func() bool { _, err := os.Stat(socket); return err == nil })
	return socket, stderr
}

// statusAs runs dpcap status as user; with group "", runuser gives the user
// its groups from /etc/group, supplementary ones included.
func statusAs(socket, user, group string) (string, int) {
	args := []string{"-u", user}
	if group != "" {
		args = append(args, "-g", group)
	}
	cmd := exec.Command("runuser", append(args, "--", bin("dpcap"), "status", "--socket", socket)...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// TestControlSocketKnowsItsPeers checks the API's socket: group members
// get in, and a stranger is refused by its credentials even when the
// socket file's mode would let it connect.
func TestControlSocketKnowsItsPeers(t *testing.T) {
	socket, stderr := serveWithGroup(t, "nogroup")
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != 65534 {
		t.Fatalf("socket mode %v group %d, want 0660 nogroup", fi.Mode().Perm(), st.Gid)
	}
	if out, code := statusAs(socket, "nobody", "nogroup"); code != 0 || !strings.Contains(out, "NOT ACTIVE") {
		t.Errorf("a member of the group: exit %d\n%s", code, out)
	}
	if err := os.Chmod(socket, 0o666); err != nil { // a mistake an operator could make
		t.Fatal(err)
	}
	if out, code := statusAs(socket, "daemon", "daemon"); code != 1 || !strings.Contains(out, "cannot reach dpcap serve") {
		t.Errorf("a stranger: exit %d\n%s", code, out)
	}
	if !strings.Contains(stderr.String(), "refused an API connection") {
		t.Errorf("the daemon did not log the refusal:\n%s", stderr.String())
	}
}

// TestControlSocketAdmitsSupplementaryGroups: a user added to the --group
// with usermod -aG (a supplementary group, not its primary one) gets in;
// the kernel's SO_PEERGROUPS says so.
func TestControlSocketAdmitsSupplementaryGroups(t *testing.T) {
	user, group := fmt.Sprintf("dpcapu%d", os.Getpid()), fmt.Sprintf("dpcapg%d", os.Getpid())
	for _, c := range [][]string{
		{"groupadd", group},
		{"useradd", "--no-create-home", "--no-user-group", "--gid", "nogroup", "--shell", "/usr/sbin/nologin", user},
		{"usermod", "-aG", group, user},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("userdel", user).Run()
		exec.Command("groupdel", group).Run()
	})
	socket, _ := serveWithGroup(t, group)
	if out, code := statusAs(socket, user, ""); code != 0 || !strings.Contains(out, "NOT ACTIVE") {
		t.Errorf("a member by a supplementary group: exit %d\n%s", code, out)
	}
	if err := os.Chmod(socket, 0o666); err != nil {
		t.Fatal(err)
	}
	if out, code := statusAs(socket, "nobody", ""); code != 1 || !strings.Contains(out, "cannot reach dpcap serve") {
		t.Errorf("a user outside the group: exit %d\n%s", code, out)
	}
}
