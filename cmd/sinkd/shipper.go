package main

import (
	"io"
	"time"

	"github.com/dpcap/dpcap/pcapout"
	"github.com/prometheus/client_golang/prometheus"
)

// shipper takes each closed file elsewhere (--upload, package upload). It
// sits behind this interface so that a build with -tags minimal (make
// demo) leaves the object-storage client out.
type shipper interface {
	// Handle receives the rotator's file-closed events.
	Handle(pcapout.ClosedFile)
	// Opened receives the rotator's file-opened events, once open ran.
	Opened(pcapout.OpenedFile)
	// PassedOn waits until every closed file went on to the -z command.
	PassedOn()
	// giveSpool makes the spool directory for the user -Z names, as
	// root, without looking into it.
	giveSpool(uid, gid int) error
	// open opens the spool and starts shipping, as the user sinkd runs
	// as: with -Z, once root is given up.
	open() error
	collector() prometheus.Collector
	// close ships for up to wait, then says what was shipped and what
	// waits in spool.
	close(w io.Writer, wait time.Duration, spool string)
}
