// Command mkimage builds dpcap's container image without a daemon or a
// registry: an OCI image layout (and a tarball docker/podman load) holding
// sinkd and dpcap, the shared libraries ldd says they need (libpcap for
// filter expressions, and what it needs), their copyright files, and a
// passwd/group naming the unprivileged user the image runs as.
//
//	mkimage --out DIR --tar FILE --tag NAME:TAG --version V --revision R BINARY...
//
// It is a module of its own so that go-containerregistry never enters
// dpcap's own dependencies.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the image runs as: distroless' "nonroot".
const uid, gid = 65532, 65532

func main() {
	out := flag.String("out", "", "OCI image layout directory to write (replaced)")
	tarPath := flag.String("tar", "", "also write a tarball that docker/podman load")
	tag := flag.String("tag", "", "image name and tag, e.g. dpcap/dpcap:0.1.0")
	version := flag.String("version", "", "the image's version label")
	revision := flag.String("revision", "", "the source revision label")
	flag.Parse()
	if *out == "" || *tag == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage --out DIR [--tar FILE] --tag NAME:TAG --version V --revision R BINARY...")
		os.Exit(2)
	}
	if err := run(*out, *tarPath, *tag, *version, *revision, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(out, tarPath, tag, version, revision string, binaries []string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	files, err := collect(binaries)
	if err != nil {
		return err
	}
	layerTar, err := buildLayer(files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/usr/bin/sinkd"},
		Cmd:        []string{"--help"},
		User:       fmt.Sprintf("%d:%d", uid, gid),
		Env:        []string{"PATH=/usr/bin:/bin"},
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "dpcap",
			"org.opencontainers.image.description": "sinkd and dpcap: capture of hardware-offloaded dataplane traffic",
			"org.opencontainers.image.source":      "https://github.com/dpcap/dpcap",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.ref.name":    ref.TagStr(),
		},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
		"io.containerd.image.name":          containerdName(ref),
	})); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	// layout leaves the layer blob 0600 (a temporary file renamed) and
	// index.json 0755: every file 0644, so that whoever pushes the layout
	// (skopeo, crane), not only its builder, can read it.
	if err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o644)
	}); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if tarPath != "" {
		if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
			return fmt.Errorf("write %s: %w", tarPath, err)
		}
	}
	return nil
}

// containerdName is the name containerd (and so the kubelet) files an
// imported image under: a Docker Hub image is docker.io/NAME:TAG there, not
// index.docker.io/..., which ref.Name() gives and no pod spec would match.
func containerdName(ref name.Tag) string {
	reg := ref.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + ref.RepositoryStr() + ":" + ref.TagStr()
}

// epoch dates every file and the image: builds of the same inputs are
// identical.
var epoch = time.Unix(0, 0).UTC()

// collect returns image path → host path for the binaries (in /usr/bin),
// the libraries they load (at the paths ldd gives) and the copyright
// files of the packages those libraries come from.
func collect(binaries []string) (map[string]string, error) {
	files := map[string]string{}
	libLine := regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)
	for _, b := range binaries {
		files["/usr/bin/"+filepath.Base(b)] = b
		out, err := exec.Command("ldd", b).CombinedOutput()
		if err != nil {
			// "not a dynamic executable": a static build needs nothing.
			if strings.Contains(string(out), "not a dynamic executable") {
				continue
			}
			return nil, fmt.Errorf("ldd %s: %v: %s", b, err, out)
		}
		for _, m := range libLine.FindAllStringSubmatch(string(out), -1) {
			files[m[1]] = m[1]
		}
	}
	for path := range files {
		if strings.HasPrefix(path, "/usr/bin/") {
			continue
		}
		// A library ships with its licence or the image is not built.
		pkg, err := exec.Command("dpkg-query", "-S", path).Output()
		if err != nil {
			// The loader's path may be a link dpkg knows by another name.
			real, rerr := filepath.EvalSymlinks(path)
			if rerr != nil {
				return nil, fmt.Errorf("%s: %w", path, rerr)
			}
			if pkg, err = exec.Command("dpkg-query", "-S", real).Output(); err != nil {
				return nil, fmt.Errorf("%s: no Debian package owns it (dpkg-query -S: %v), so its copyright file is unknown", path, err)
			}
		}
		p := strings.SplitN(strings.TrimSpace(string(pkg)), ":", 2)[0]
		c := "/usr/share/doc/" + p + "/copyright"
		if st, err := os.Stat(c); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: package %s has no copyright file %s", path, p, c)
		}
		files[c] = c
	}
	return files, nil
}

// buildLayer writes the one layer: the files (symlinks followed, so a
// library's versioned name holds its bytes), their directories, and
// /etc/passwd, /etc/group and /tmp.
func buildLayer(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var addDir func(string) error
	addDir = func(d string) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := addDir(filepath.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch})
	}
	add := func(path string, mode int64, data []byte) error {
		if err := addDir(filepath.Dir(path)); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path, "/"), Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := os.ReadFile(files[p])
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(files[p])
		if err != nil {
			return nil, err
		}
		if err := add(p, int64(st.Mode().Perm()), data); err != nil {
			return nil, err
		}
	}
	etc := []struct{ path, data string }{
		{"/etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, gid)},
		{"/etc/group", fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", gid)},
	}
	for _, e := range etc {
		if err := add(e.path, 0o644, []byte(e.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
