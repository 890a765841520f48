package main

import (
	"errors"
	"runtime"
	"strings"
	"sync"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/dpcap/dpcap/portmap"
	"github.com/dpcap/dpcap/sink"
)

// engines are the workers of one capture, one engine each.
type engines []*sink.Engine

// running reports whether every worker is receiving (/readyz).
func (es engines) running() bool {
	for _, e := range es {
		if !e.Running() {
			return false
		}
	}
	return true
}

func (es engines) rotate() {
	for _, e := range es {
		e.Rotate()
	}
}

// setPortMap hands every worker the port map read again.
func (es engines) setPortMap(x *portmap.Identifier) {
	for _, e := range es {
		e.SetPortMap(x)
	}
}

func (es engines) stop() {
	for _, e := range es {
		e.Stop()
	}
}

// readerGone ends every worker's capture: the reader of -w - went away.
func (es engines) readerGone() {
	for _, e := range es {
		e.ReaderGone()
	}
}

// fileLimitReached reports whether a worker ended on -W.
func (es engines) fileLimitReached() bool {
	for _, e := range es {
		if e.FileLimitReached() {
			return true
		}
	}
	return false
}

// run runs the workers, one engine on the calling goroutine when there is
// one (today's path), else each on an OS thread of its own. The first to
// end (-W, a failing source) stops the others, so the capture ends as one.
func (es engines) run() error {
	if len(es) == 1 {
		return es[0].Run()
	}
	errs := make([]error, len(es))
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			errs[i] = e.Run()
			es.stop()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writers are the workers' capture files, one writer each.
type writers []writer

// OnOpen subscribes f to every worker's opened files.
func (ws writers) OnOpen(f func(pcapout.OpenedFile)) {
	for _, w := range ws {
		w.OnOpen(f)
	}
}

// OnClose subscribes f to every worker's closed files.
func (ws writers) OnClose(f func(pcapout.ClosedFile)) {
	for _, w := range ws {
		w.OnClose(f)
	}
}

// Close closes every worker's files.
func (ws writers) Close() {
	for _, w := range ws {
		w.Close()
	}
}

// Name names the first file of each worker.
func (ws writers) Name() string {
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = w.Name()
	}
	return strings.Join(names, ", ")
}
