package pcapout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
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
	hdrLen   int   // file header bytes at the start of buf until written
}

// createFile opens name for writing without following a symlink planted in
// its place, with permissions for the capturing user and group only.
func createFile(name string) (*output, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, unwrapPath(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create %s: %w", name, unwrapPath(err))
	}
	// A fifo (Wireshark's extcap, a named pipe) is written as a stream.
	return &output{f: f, name: name, seekable: st.Mode().IsRegular()}, nil
}

// stdoutOutput streams to standard output (a pipe to tcpdump or Wireshark).
func stdoutOutput() *output {
	return &output{f: os.Stdout, name: "-"}
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

// keep is how much of buf survives a failed or discarded write: the file
// header, until it is on disk, since every later record needs it.
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
	return err
}
