package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before string // the file at the name before; "" for none
		opts   Options
		perm   fs.FileMode // want, with the umask 022 set below
	}{
		{"new", "", Options{Perm: 0o640}, 0o640},
		{"replaces", "old content", Options{Perm: 0o640}, 0o640},
		{"umask", "", Options{Perm: 0o666}, 0o644},
		{"exact", "", Options{Perm: 0o666, ExactPerm: true}, 0o666},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := syscall.Umask(0o022)
			defer syscall.Umask(old)
			dir := t.TempDir()
			name := filepath.Join(dir, "f")
			if tt.before != "" {
				if err := os.WriteFile(name, []byte(tt.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(name, []byte("new content"), tt.opts); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(name)
			if err != nil || string(b) != "new content" {
				t.Fatalf("read back %q, %v", b, err)
			}
			st, _ := os.Stat(name)
			if st.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), tt.perm)
			}
			if got, _ := os.ReadDir(dir); len(got) != 1 {
				t.Errorf("the directory holds %d entries, want the file alone", len(got))
			}
		})
	}
}

// TestAbortLeavesTheOld checks that a file never committed leaves what
// was at the name as it was, and no temporary file.
func TestAbortLeavesTheOld(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := os.WriteFile(name, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(name, Options{Perm: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("partial"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(name); string(b) != "old" {
		t.Errorf("before the commit the name holds %q", b)
	}
	f.Abort()
	if b, _ := os.ReadFile(name); string(b) != "old" {
		t.Errorf("after the abort the name holds %q", b)
	}
	if got, _ := os.ReadDir(dir); len(got) != 1 {
		t.Errorf("the directory holds %d entries, want the old file alone", len(got))
	}
}

// TestRenameFails checks that a rename that cannot happen (a directory
// at the name) leaves it, removes the temporary file and says so with
// the rename's error.
func TestRenameFails(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "d")
	if err := os.Mkdir(name, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(name, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(name, []byte("data"), Options{Perm: 0o600})
	var le *os.LinkError
	if !errors.As(err, &le) {
		t.Fatalf("error %v, want the rename's", err)
	}
	if st, err := os.Stat(name); err != nil || !st.IsDir() {
		t.Errorf("the directory at the name is gone: %v", err)
	}
	if got, _ := os.ReadDir(dir); len(got) != 1 {
		t.Errorf("the directory holds %d entries, want d alone", len(got))
	}
}

// TestDirSyncFails checks that a directory that cannot be synced is an
// error, and that the file has its name all the same.
func TestDirSyncFails(t *testing.T) {
	defer func(f func(*os.File) error) { syncDir = f }(syncDir)
	syncDir = func(*os.File) error { return syscall.EIO }
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	err := WriteFile(name, []byte("data"), Options{Perm: 0o600})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("error %v, want EIO", err)
	}
	if b, _ := os.ReadFile(name); string(b) != "data" {
		t.Errorf("the name holds %q", b)
	}
}

// TestPublishKeepsOpen checks that a published file has its name and
// takes more writes.
func TestPublishKeepsOpen(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	f, err := Create(name, Options{Perm: 0o600, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("header")
	if err := f.Publish(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(name); string(b) != "header" {
		t.Errorf("after Publish the name holds %q", b)
	}
	f.WriteString(" and more")
	f.Abort() // closes; the published file stays
	if b, _ := os.ReadFile(name); string(b) != "header and more" {
		t.Errorf("the name holds %q", b)
	}
}

// TestTempDir checks that the temporary file is made where asked and
// leaves nothing there.
func TestTempDir(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	f, err := Create(filepath.Join(dir, "f"), Options{Perm: 0o600, TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(f.Name()) != tmp {
		t.Errorf("temporary file %s, want it in %s", f.Name(), tmp)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadDir(tmp); len(got) != 0 {
		t.Errorf("%s holds %d entries after the commit", tmp, len(got))
	}
}
