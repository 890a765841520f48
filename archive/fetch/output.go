package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/dpcap/dpcap/internal/atomicfile"
)

// Output is where a fetch writes: a regular file is written under a
// temporary name in its directory and renamed over the name when
// complete; a fifo or a character device (a terminal, /dev/null) is
// written into. Nothing at the name is ever replaced by something else:
// a symbolic link is followed, never overwritten.
type Output struct {
	*os.File
	// file is the regular file renamed into place on Commit; nil when the
	// output is written into directly.
	file *atomicfile.File
}

// Mode is the mode a regular output file is created with, less the
// umask: sinkd's captures' mode, as fetched packets are the same evidence.
const Mode = 0o640

// Create opens the output named name. ctx ends a wait for a fifo's
// reader.
func Create(ctx context.Context, name string) (*Output, error) {
	st, err := os.Stat(name)
	if fd, ok := ownFD(name); err == nil && ok {
		// /dev/stdout and the like: written into, as -w -, whatever the
		// descriptor is (a file opened for appending, a socket).
		dup, err := syscall.Dup(fd)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		return &Output{File: os.NewFile(uintptr(dup), name)}, nil
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if lst, lerr := os.Lstat(name); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("create %s: a symbolic link to nothing", name)
		}
		return createTemp(name)
	case err != nil:
		return nil, fmt.Errorf("create %s: %w", name, err)
	case st.Mode().IsRegular():
		// Through a link, the file it names is replaced; the link stays.
		target, err := filepath.EvalSymlinks(name)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		if tst, err := os.Stat(target); err != nil || !os.SameFile(st, tst) {
			// A magic link of /proc (/dev/stdout) to a deleted file.
			return nil, fmt.Errorf("create %s: the file it names cannot be found by name (%s)", name, target)
		}
		return createTemp(target)
	case st.Mode()&fs.ModeNamedPipe != 0, st.Mode()&fs.ModeCharDevice != 0:
		return openInto(ctx, name)
	}
	return nil, fmt.Errorf("create %s: refused: it is a %s, not a regular file, a fifo or a character device", name, kind(st.Mode()))
}

// ownFD reports whether name is, through symbolic links, one of this
// process's open descriptors (/dev/stdout, /dev/fd/N, /proc/self/fd/N),
// and which.
func ownFD(name string) (int, bool) {
	self := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd"
	for range 40 { // the kernel's limit on links followed
		dir, err := filepath.EvalSymlinks(filepath.Dir(name))
		if err != nil {
			return 0, false
		}
		if dir == self {
			fd, err := strconv.Atoi(filepath.Base(name))
			return fd, err == nil
		}
		next, err := os.Readlink(filepath.Join(dir, filepath.Base(name)))
		if err != nil {
			return 0, false
		}
		if !filepath.IsAbs(next) {
			next = filepath.Join(dir, next)
		}
		name = next
	}
	return 0, false
}

// kind names a file type for an error.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "file of type " + m.Type().String()
}

// openInto opens a fifo or a character device for writing, without
// creating or truncating anything. Opening a fifo waits for a reader: in
// a goroutine, so that ctx ends the wait.
func openInto(ctx context.Context, name string) (*Output, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_NOCTTY, 0)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, fmt.Errorf("open %s: %w", name, o.err)
		}
		return &Output{File: o.f}, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, fmt.Errorf("open %s: %w", name, context.Cause(ctx))
	}
}

// createTemp creates a new file beside target, to be renamed to it.
func createTemp(target string) (*Output, error) {
	f, err := atomicfile.Create(target, atomicfile.Options{Perm: Mode})
	if err != nil {
		return nil, err
	}
	return &Output{File: f.File, file: f}, nil
}

// Name is the file the output ends up in.
func (o *Output) Name() string {
	if o.file != nil {
		return o.file.Target()
	}
	return o.File.Name()
}

// Regular reports whether the output is a regular file, which only a
// Commit gives its name.
func (o *Output) Regular() bool { return o.file != nil }

// Commit makes a regular file's output durable (the file, then the
// directory holding its name) and gives it its name; it closes a fifo or
// device.
func (o *Output) Commit() error {
	if o.file != nil {
		return o.file.Commit()
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("write %s: %w", o.Name(), err)
	}
	return nil
}

// Abort leaves nothing of a regular file's output behind; the file at its
// name, if any, is untouched.
func (o *Output) Abort() {
	if o.file != nil {
		o.file.Abort()
		return
	}
	o.Close()
}
