//go:build !minimal

package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dpcap/dpcap/archive/fetch"
	"github.com/dpcap/dpcap/internal/pipewatch"
)

// capOut is where a command's -w writes a capture: standard output for
// "-", else fetch.Create's (a file renamed into place when complete, or a
// fifo or device written into).
type capOut struct {
	io.Writer
	// file is nil for standard output.
	file *fetch.Output
	// piped is whether a reader may go away: standard output, a fifo, a
	// device.
	piped   bool
	unwatch func()
}

// openCapOut opens -w name's output. The returned context ends when the
// reader of a pipe goes away: at once, not at the next write, which a
// slow or stalled input may never bring; a write meanwhile fails with
// EPIPE, not SIGPIPE.
func openCapOut(ctx context.Context, name string, stdout io.Writer) (context.Context, *capOut, error) {
	o := &capOut{Writer: stdout, unwatch: func() {}}
	stream, _ := stdout.(*os.File) // what a reader may leave: -w -, a fifo, /dev/stdout
	if name != "-" {
		file, err := fetch.Create(ctx, name)
		if err != nil {
			return ctx, nil, err
		}
		o.Writer, o.file, stream = file, file, nil
		if !file.Regular() {
			stream = file.File
		}
	}
	if stream != nil {
		var err error
		if ctx, o.unwatch, err = pipewatch.Watch(ctx, stream); err != nil {
			if o.file != nil {
				o.file.Abort()
			}
			return ctx, nil, err
		}
		o.piped = true
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	}
	return ctx, o, nil
}

// readerGone reports whether the output's reader went away: ctx's end or
// the write error err.
func (o *capOut) readerGone(ctx context.Context, err error) bool {
	return o.piped && (context.Cause(ctx) == pipewatch.ErrReaderGone || errors.Is(err, syscall.EPIPE))
}

// keep keeps what came to the output, whatever ended the command, and
// says where it is ("" for nowhere): a file with frames is committed; one
// without any is not made (nor replaces one).
func (o *capOut) keep(frames uint64) (string, error) {
	if o.file == nil {
		return "standard output", nil
	}
	if frames == 0 {
		o.file.Abort()
		return "", nil
	}
	if err := o.file.Commit(); err != nil {
		if o.file.Regular() {
			return "", err
		}
		return o.file.Name(), err
	}
	return o.file.Name(), nil
}
