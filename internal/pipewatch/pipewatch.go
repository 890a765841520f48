//go:build linux

// Package pipewatch tells when the reader of an output goes away: the
// process at the other end of a pipe exits ('sinkd -w - | head -c 100'),
// or a socket is shut down. A writer learns it at its next write (EPIPE),
// which may be long in coming when nothing is written meanwhile; pipewatch
// learns it at once from poll(2), which reports POLLERR on the write end of
// a pipe whose readers are all gone, and POLLHUP on a socket shut down both
// ways (or POLLERR on one reset).
package pipewatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrReaderGone is the cause (context.Cause) of a context Watch ended
// because the reader went away.
var ErrReaderGone = errors.New("the reader of the output went away")

// Watch returns a copy of parent that is cancelled, with cause
// ErrReaderGone, when the reader of f goes away. f is watched when it is a
// pipe, a fifo or a socket; anything else (a file, a terminal) has no
// reader to lose, and the context then ends only with parent or stop.
//
// The watch holds a duplicate of f's descriptor, a wake-up descriptor and a
// thread blocked in poll(2) until stop, which releases them and cancels
// the context; call it once the output is no longer written.
func Watch(parent context.Context, f *os.File) (ctx context.Context, stop func(), err error) {
	ctx, cancel := context.WithCancelCause(parent)
	st, err := f.Stat()
	if err != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("pipewatch: %w", err)
	}
	if st.Mode().Type()&(fs.ModeNamedPipe|fs.ModeSocket) == 0 {
		return ctx, func() { cancel(nil) }, nil
	}
	// A duplicate, so that the caller closing f never leaves poll on a
	// descriptor number reused for something else.
	raw, err := f.SyscallConn()
	if err != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("pipewatch: %w", err)
	}
	dup := -1
	var dupErr error
	if err := raw.Control(func(fd uintptr) { dup, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("pipewatch: duplicate %s: %w", f.Name(), errors.Join(err, dupErr))
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(dup)
		cancel(nil)
		return nil, nil, fmt.Errorf("pipewatch: eventfd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if watch(dup, wake) {
			cancel(ErrReaderGone)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			one := [8]byte{1} // an eventfd adds the 8-byte counter written
			_, _ = unix.Write(wake, one[:])
			<-done
			unix.Close(dup)
			unix.Close(wake)
			cancel(nil)
		})
	}
	return ctx, stop, nil
}

// watch blocks until fd reports an error or a hang-up (true) or wake is
// written to (false).
func watch(fd, wake int) bool {
	// POLLERR and POLLHUP are reported whatever the events asked for;
	// asking for none keeps a writable pipe from waking the poll.
	fds := []unix.PollFd{{Fd: int32(fd)}, {Fd: int32(wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[1].Revents != 0 || fds[0].Revents&unix.POLLNVAL != 0 {
			return false
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			return true
		}
	}
}
