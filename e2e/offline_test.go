package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestOfflineDiskFull converts 20,000 envelopes (7.7 MB) onto a 1 MiB
// disk: the file must still be a valid capture of frames converted in
// order, and every packet accounted for: captured (in the file) or
// dropped on a write error.
func TestOfflineDiskFull(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.pcap")
	gen := exec.Command("python3", "scripts/make-bench-input.py", in, "20000")
	gen.Dir = ".."
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("make-bench-input.py: %v\n%s", err, out)
	}
	ref, _ := convert(t, in)
	want := readFrames(t, ref)

	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	out := filepath.Join(dir, "out.pcap")
	b, err := exec.Command(bin("sinkd"), "-r", in, "-w", out).CombinedOutput()
	if err != nil {
		t.Fatalf("sinkd -r onto a full disk: %v\n%s", err, b)
	}
	count := func(what string) int {
		m := regexp.MustCompile(`(?m)^(\d+) ` + what).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no %q in the summary:\n%s", what, b)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	captured, received, dropped := count("packets captured"), count("packets received"), count("packets dropped on write errors")
	if received != 20000 || captured+dropped != received || captured == 0 || dropped == 0 {
		t.Fatalf("received %d, captured %d, dropped on write errors %d:\n%s", received, captured, dropped, b)
	}
	got := readFrames(t, out)
	if len(got) != captured {
		t.Fatalf("the file holds %d frames, the summary says %d captured", len(got), captured)
	}
	// In order, each one of the conversion's: a failed chunk's packets
	// are missing, never torn or out of place.
	j := 0
	for i, g := range got {
		for j < len(want) && !bytes.Equal(g, want[j]) {
			j++
		}
		if j == len(want) {
			t.Fatalf("frame %d of the file is not the next of the conversion's", i)
		}
		j++
	}
	checkWithTools(t, out, captured)
}
