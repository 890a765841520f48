package upload

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestGiveSpool: root makes a missing spool directory for the -Z user and
// hands it over; a name that exists already, a symbolic link above all,
// is left to that user to check, its target untouched.
func TestGiveSpool(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	if err := GiveSpool(spool, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(spool)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm()&^0o750 != 0 {
		t.Errorf("spool %v owned by %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	target := filepath.Join(dir, "roots")
	mkdir(t, target, 0o700)
	link := filepath.Join(dir, "planted")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := GiveSpool(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the link's target was given away: %v", err)
	}
}
