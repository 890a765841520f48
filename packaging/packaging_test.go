// Package packaging holds how dpcap is packaged (packaging/deb's nfpm
// configuration, packaging/mkimage, a module of its own); its tests build
// the Debian package and the container image with make and try them.
package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/internal/testkit"
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
	if os.Geteuid() != 0 {
		t.Fatal("this test installs a package and makes network namespaces: it needs root ('sudo make test')")
	}
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
	// A "hypervisor" and a sink, joined by the veth pair e2e0 (2001:db8:1::1
	// and ::2, neighbours resolved).
	hv, sk := testkit.NewNetNS(t), testkit.NewNetNS(t)
	testkit.Link(t, hv, sk, 1600, 1)
	cmd := sk.Cmd("sh", "-c", `set -a; . /etc/default/sinkd; exec /usr/bin/sinkd -Z sinkd -w "$SINKD_OUTPUT" $SINKD_FLAGS`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testkit.Eventually(t, 30*time.Second, "sinkd's /readyz", func() bool { return sk.Cmd("curl", "-sf", "http://127.0.0.1:9310/readyz").Run() == nil })
	if got := procUID(t, cmd.Process.Pid); got != uid {
		t.Errorf("sinkd runs as uid %d, want sinkd's %d", got, uid)
	}
	if out, err := hv.Cmd("/usr/bin/dpcap", "replay", "--sink", "[2001:db8:1::2]:3010", vmTraffic).CombinedOutput(); err != nil {
		t.Fatalf("dpcap replay: %v\n%s", err, out)
	}
	testkit.Eventually(t, 30*time.Second, "sinkd to write 74 packets", func() bool {
		out, _ := sk.Cmd("curl", "-sf", "http://127.0.0.1:9310/metrics").Output()
		return strings.Contains(string(out), "\nsinkd_packets_written_total 74\n")
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sinkd: %v\n%s", err, stderr.String())
	}
	captures, _ := filepath.Glob("/var/lib/sinkd/capture-*.pcapng")
	if len(captures) != 1 {
		t.Fatalf("captures %v, want one file", captures)
	}
	if pkts, _, err := pcapfile.ReadFile(captures[0]); err != nil || len(pkts) != 74 {
		t.Errorf("%s holds %d packets (%v), want 74", captures[0], len(pkts), err)
	}
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
	serve := hv.Cmd("/usr/bin/dpcap", "serve", "--backend", "software", "--socket", socket)
	var serveLog bytes.Buffer
	serve.Stderr = &serveLog
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	testkit.Eventually(t, 30*time.Second, "dpcap serve to answer", func() bool { return exec.Command("/usr/bin/dpcap", "status", "--socket", socket).Run() == nil })
	if out, err := exec.Command("/usr/bin/dpcap", "start", "--socket", socket, "--sink-node-ip", "2001:db8:1::2", "--udp-dst-port", "3010", "--vf", "e2e0").CombinedOutput(); err != nil {
		serve.Process.Kill()
		serve.Wait()
		t.Fatalf("dpcap start: %v\n%s\n%s", err, out, serveLog.String())
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

// vmTraffic is the real capture shipped in testdata.
const vmTraffic = "../testdata/vm-traffic.pcap"

// TestContainerImage reads the OCI layout make image writes: its config
// (entrypoint, user, labels), the tag the Kubernetes manifests use, and
// its layer, whose sinkd and dpcap run from it alone (chroot).
func TestContainerImage(t *testing.T) {
	makeTargets(t, "image", "image")
	blob := func(digest string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("../bin/image/blobs", strings.Replace(digest, ":", "/", 1)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	// Every file of the layout readable by all: another user may push it.
	err := filepath.WalkDir("../bin/image", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm()&0o444 != 0o444 {
				t.Errorf("%s: mode %v, not readable by all", p, info.Mode())
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../bin/image/index.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, b)
	}
	tag := index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
	// containerd (ctr import, the kubelet's store) files it under this
	// name; the pod specs' dpcap/dpcap:TAG is short for it.
	if got, want := index.Manifests[0].Annotations["io.containerd.image.name"], "docker.io/dpcap/dpcap:"+tag; got != want {
		t.Errorf("io.containerd.image.name %q, want %q", got, want)
	}
	for _, m := range []string{"../deploy/kubernetes/sinkd.yaml", "../deploy/kubernetes/dpcap.yaml"} {
		y, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(y), "image: dpcap/dpcap:"+tag+"\n") {
			t.Errorf("%s does not use the image make image builds (dpcap/dpcap:%s)", m, tag)
		}
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest, MediaType string }
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v %+v", err, manifest)
	}
	var config struct {
		Architecture, OS string
		Config           struct {
			Entrypoint []string
			User       string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal(blob(manifest.Config.Digest), &config); err != nil {
		t.Fatal(err)
	}
	// The tarball docker/podman load holds the same image under that tag.
	var loaded []struct {
		Config   string
		RepoTags []string
	}
	if err := json.Unmarshal(tarMember(t, "../bin/dpcap-image.tar", "manifest.json"), &loaded); err != nil ||
		len(loaded) != 1 || loaded[0].Config != manifest.Config.Digest || strings.Join(loaded[0].RepoTags, " ") != "dpcap/dpcap:"+tag {
		t.Errorf("bin/dpcap-image.tar's manifest.json: %v %+v, want config %s tagged dpcap/dpcap:%s", err, loaded, manifest.Config.Digest, tag)
	}
	c := config.Config
	if config.OS != "linux" || config.Architecture != "amd64" || strings.Join(c.Entrypoint, " ") != "/usr/bin/sinkd" ||
		c.User != "65532:65532" || c.Labels["org.opencontainers.image.version"] != tag ||
		c.Labels["org.opencontainers.image.source"] == "" || c.Labels["org.opencontainers.image.revision"] == "" {
		t.Errorf("config: %+v", config)
	}

	// The layer, unpacked: the binaries run with nothing but what it holds.
	root := t.TempDir()
	zr, err := gzip.NewReader(strings.NewReader(string(blob(manifest.Layers[0].Digest))))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, os.FileMode(h.Mode))
		case tar.TypeReg:
			data, _ := io.ReadAll(tr)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("%s: type %c; the layer holds only files and directories", h.Name, h.Typeflag)
		}
	}
	// The unpacked tree as a runtime would give it: / searchable, /tmp
	// sticky and world-writable (tar modes past 0777 need a chmod here).
	os.Chmod(root, 0o755)
	os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky)
	for _, n := range []string{"usr/bin/sinkd", "usr/bin/dpcap", "etc/passwd", "usr/share/doc/libpcap0.8/copyright"} {
		if !names[n] {
			t.Errorf("the layer lacks %s", n)
		}
	}
	for _, argv := range [][]string{{"/usr/bin/sinkd", "--help"}, {"/usr/bin/dpcap", "--help"}} {
		cmd := exec.Command("chroot", append([]string{"--userspec=65532:65532", root}, argv...)...)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage") {
			t.Errorf("%s in the image: %v\n%s", argv[0], err, out)
		}
	}
	// libpcap is in the image: a filter expression compiles and filters.
	in, err := os.ReadFile("../testdata/envelopes/nic-ether.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp/in.pcap"), in, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("chroot", "--userspec=65532:65532", root, "/usr/bin/sinkd", "-r", "/tmp/in.pcap", "-w", "/tmp/out.pcap", "icmp or icmp6").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "filtered") {
		t.Errorf("sinkd -r with a filter in the image: %v\n%s", err, out)
	}
}

// tarMember returns the contents of the member name of the tar file path.
func tarMember(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", path, name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("%s: %s: %v", path, name, err)
			}
			return b
		}
	}
}
