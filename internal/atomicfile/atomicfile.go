// Package atomicfile writes a file under a temporary name and renames it
// over its name once its data is on disk, so that a crash leaves the old
// file or the new one at the name, never an empty or torn one.
//
// The order is: create the temporary file (O_EXCL, never following a
// link), write, fsync the file, rename it to its name, fsync the
// directory that holds the name. Nothing that lay at the name before is
// ever written: the rename takes the name from it.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Options say how the file is made.
type Options struct {
	// Perm is the file's permissions, less the umask unless ExactPerm.
	Perm      fs.FileMode
	ExactPerm bool
	// Owner, when set, is given the file before it takes its name.
	Owner *Owner
	// TempDir is where the temporary file is made, on the name's file
	// system; the name's directory when empty.
	TempDir string
}

// Owner is a file's user and group.
type Owner struct{ UID, GID int }

// syncDir makes a rename in d durable; tests replace it.
var syncDir = (*os.File).Sync

// File is a file being written under a temporary name; Commit gives it
// its name, Abort removes it.
type File struct {
	*os.File
	name      string
	committed bool
}

// Create makes a new temporary file for name.
func Create(name string, opts Options) (*File, error) {
	dir, base := filepath.Split(name)
	if opts.TempDir != "" {
		dir = opts.TempDir
	}
	for range 100 {
		tmp := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36)+".part")
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, opts.Perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		a := &File{File: f, name: name}
		if opts.ExactPerm {
			err = f.Chmod(opts.Perm)
		}
		if err == nil && opts.Owner != nil {
			err = f.Chown(opts.Owner.UID, opts.Owner.GID)
		}
		if err != nil {
			a.Abort()
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("create %s: no free temporary name in %s", name, dir)
}

// Target is the name the file takes on Commit.
func (f *File) Target() string { return f.name }

// Publish syncs the file, renames it to its name and syncs the
// directory; the file stays open for more writes, which are not atomic.
// A failed rename removes the temporary file; the error wraps the
// rename's *os.LinkError. A failed directory sync leaves the file at its
// name.
func (f *File) Publish() error {
	if err := f.Sync(); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	return f.rename()
}

// Commit syncs and closes the file, renames it to its name and syncs the
// directory. On any error the temporary file is removed, and whatever
// lay at the name is untouched unless the rename happened (only the
// directory sync failed).
func (f *File) Commit() error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	return f.rename()
}

func (f *File) rename() error {
	if err := os.Rename(f.File.Name(), f.name); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	f.committed = true
	d, err := os.Open(filepath.Dir(f.name))
	if err == nil {
		err = syncDir(d)
		d.Close()
	}
	if err != nil {
		return fmt.Errorf("write %s: sync its directory: %w", f.name, err)
	}
	return nil
}

// Abort closes the file and, unless it took its name, removes it.
func (f *File) Abort() {
	f.Close()
	if !f.committed {
		os.Remove(f.File.Name())
	}
}

// WriteFile replaces name with data, atomically and durably.
func WriteFile(name string, data []byte, opts Options) error {
	f, err := Create(name, opts)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Commit()
}
