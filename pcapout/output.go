package pcapout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/dpcap/dpcap/internal/atomicfile"
)

// output is a buffered capture file that never leaves a torn record behind.
//
// Records are appended to memory and written in large chunks. When a write
// fails (disk full, I/O error) the file is cut back to the end of the last
// chunk that was written whole, so it stays a valid capture, and the
// packets of the failed chunk are reported as lost.
type output struct {
	f        *os.File
	name     string
	seekable bool
	buf      []byte
	written  int64 // bytes on disk, always at a record boundary
	pending  int   // packets in buf
	records  int   // packets written or buffered
	hdrLen   int   // a stream's header, at the start of buf until written
}

// errNotRegular marks a name held by something other than a regular file
// (a symlink, a fifo, a device, a directory): sinkd never writes through
// it nor removes it, and moves on to the next name.
var errNotRegular = errors.New("not a regular file; left alone")

// errNameRefused marks a name the new file could not take (a file there
// that sinkd may not replace, in a sticky directory or immutable): sinkd
// moves on to the next name.
var errNameRefused = errors.New("the name cannot be taken")

// nameUnusable reports whether err is about the name alone, so that the
// next name may work.
func nameUnusable(err error) bool {
	return errors.Is(err, errNotRegular) || errors.Is(err, errNameRefused)
}

// create makes name a new capture file holding what is buffered (the
// header), with permissions for the capturing user and group only.
//
// The file is made under a temporary name with O_EXCL and renamed into
// place with its header (internal/atomicfile), so that no pre-existing inode is ever
// written (a hard link or someone else's file planted at the name keeps its
// content: the rename only takes the name), a reader of the name never sees
// a file without a header, and a disk too full for the header leaves
// nothing behind. A regular file already at name (an older capture, or the
// ring's own previous file) is replaced, as tcpdump overwrites; anything
// else is refused with errNotRegular.
func (o *output) create(name string, owner *Owner) error {
	if st, err := os.Lstat(name); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("create %s: %s: %w", name, modeName(st.Mode()), errNotRegular)
	}
	// NoSync: files are made on the packet path (each rotation, each new
	// source of a split), where a wait for the disk costs packets; the
	// packets are not synced either, so a synced header would keep little.
	opts := atomicfile.Options{Perm: 0o640, ExactPerm: true, NoSync: true}
	if owner != nil {
		opts.Owner = &atomicfile.Owner{UID: owner.UID, GID: owner.GID}
	}
	f, err := atomicfile.Create(name, opts)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, unwrapPath(err))
	}
	if _, err := f.Write(o.buf); err != nil {
		f.Abort()
		return fmt.Errorf("create %s: %w", name, unwrapPath(err))
	}
	// The file takes the name with its header: no reader sees it without.
	if err := f.Publish(); err != nil {
		var le *os.LinkError
		switch {
		case !errors.As(err, &le):
		case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
			err = fmt.Errorf("a directory: %w", errNotRegular)
		case !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.EIO):
			err = fmt.Errorf("%w: %v", errNameRefused, unwrapPath(err))
		}
		f.Abort()
		return fmt.Errorf("create %s: %w", name, unwrapPath(err))
	}
	o.f, o.name, o.seekable = f.File, name, true
	o.written, o.buf = int64(len(o.buf)), o.buf[:0]
	return nil
}

// modeName says what kind of file a mode is.
func modeName(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeSymlink:
		return "a symlink"
	case fs.ModeNamedPipe:
		return "a fifo"
	case fs.ModeSocket:
		return "a socket"
	case fs.ModeDir:
		return "a directory"
	}
	return "a device"
}

// openStream opens a fifo or a device the user named as the output
// (Wireshark's extcap, a named pipe, /dev/null), written as a stream.
// Opening a fifo waits for a reader, as tcpdump -w FIFO does.
func (o *output) openStream(name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, unwrapPath(err))
	}
	if st, err := f.Stat(); err != nil || st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("open %s: no longer a fifo or a device", name)
	}
	o.f, o.name, o.hdrLen = f, name, len(o.buf)
	return nil
}

// openStdout streams to standard output (a pipe to tcpdump or Wireshark).
func (o *output) openStdout() {
	o.f, o.name, o.hdrLen = os.Stdout, "-", len(o.buf)
}

// Write appends p to the buffer; it never fails.
func (o *output) Write(p []byte) (int, error) {
	o.buf = append(o.buf, p...)
	return len(p), nil
}

// size returns the file's size once everything buffered is written.
func (o *output) size() int64 { return o.written + int64(len(o.buf)) }

// flush writes the buffer. It returns the packets and bytes now on disk, or,
// on failure, the packets lost and the error.
func (o *output) flush() (pkts, bytes int, err error) {
	if len(o.buf) == 0 {
		return 0, 0, nil
	}
	pkts, bytes = o.pending, len(o.buf)
	o.pending = 0
	if o.seekable {
		_, err = o.f.WriteAt(o.buf, o.written)
	} else {
		_, err = o.f.Write(o.buf)
	}
	if err != nil {
		o.buf = o.buf[:o.keep()]
		o.records -= pkts
		if o.seekable {
			// Drop whatever part of the chunk reached the disk.
			_ = o.f.Truncate(o.written)
		}
		return pkts, 0, fmt.Errorf("write %s: %w", o.name, unwrapPath(err))
	}
	o.buf = o.buf[:0]
	o.written += int64(bytes)
	return pkts, bytes, nil
}

// discard drops the buffered packets without writing them.
func (o *output) discard() (pkts int) {
	pkts = o.pending
	o.pending = 0
	o.records -= pkts
	o.buf = o.buf[:o.keep()]
	return pkts
}

// keep is how much of buf survives a failed or discarded write: a stream's
// header, until it is written, since every later record needs it (a file
// is created with its header on disk).
func (o *output) keep() int {
	if o.written == 0 {
		return o.hdrLen
	}
	return 0
}

func (o *output) close() error {
	if o.f == os.Stdout {
		return nil
	}
	if err := o.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", o.name, unwrapPath(err))
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
