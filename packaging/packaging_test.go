// Package packaging holds how dpcap is packaged (packaging/deb's nfpm
// configuration, packaging/mkimage, a module of its own); its tests build
// the container image with make and read it back.
package packaging

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainerImage reads the OCI layout make image writes: its config
// (entrypoint, user, labels), the tag the Kubernetes manifests use, and
// its layer, whose sinkd and dpcap run from it alone (chroot).
func TestContainerImage(t *testing.T) {
	if out, err := exec.Command("make", "-C", "..", "image").CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
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
