package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build builds the named commands of this module (as "cmd/sinkd") with
// tags into a new directory that every user may read, for a TestMain to
// run them from; it returns the directory, which the caller removes.
func Build(tags string, cmds ...string) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	dir, err := os.MkdirTemp("", "dpcap-test-bin")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // tests run the binaries as other users too
		os.RemoveAll(dir)
		return "", err
	}
	args := []string{"build"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "-o", dir+"/")
	for _, c := range cmds {
		args = append(args, "./"+c)
	}
	build := exec.Command("go", args...)
	build.Dir = root
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go %v: %w", args, err)
	}
	return dir, nil
}
