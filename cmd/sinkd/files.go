package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gopacket/gopacket/layers"

	"github.com/dpcap/dpcap/capture"
	"github.com/dpcap/dpcap/internal/privdrop"
	"github.com/dpcap/dpcap/pcapout"
)

// writer is what a worker writes to: a pcapout.Rotator or a Split.
type writer interface {
	pcapout.Output
	Name() string
	Stream() bool
}

// checkFileLimit makes sure --split-by's files, one open per source, leave
// file descriptors for everything else (the metrics server's connections
// above all).
func checkFileLimit(c config) error {
	if !c.split {
		return nil
	}
	const reserve = 64
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the file descriptor limit: %w", err)
	}
	if need := uint64(c.maxSources*c.workers) + 1 + reserve; lim.Cur < need {
		return fmt.Errorf("--split-by with --max-sources %d (each worker's) needs %d file descriptors, the limit is %d: raise it (ulimit -n, LimitNOFILE=) or lower --max-sources", c.maxSources, need, lim.Cur)
	}
	return nil
}

// openWriters opens each worker's capture files: FILE with one worker,
// FILE-wK.ext with several.
func openWriters(c config, srcs []capture.Source, runAs *privdrop.User, logger *slog.Logger) (writers, error) {
	var ws writers
	for i, src := range srcs {
		wc := c
		if len(srcs) > 1 {
			wc.out = workerPath(c.out, i)
		}
		w, err := openWriter(wc, src, runAs, logger)
		if err != nil {
			ws.Close()
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// workerPath names worker k's files: FILE-wK before FILE's extension.
func workerPath(path string, k int) string {
	dir, base := filepath.Split(path)
	ext := ""
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base, ext = base[:i], base[i:]
	}
	return dir + base + "-w" + strconv.Itoa(k) + ext
}

// openWriter opens the capture file, or the set of files per source. Files
// go to runAs when set; the kernel's drops of src go into pcapng
// statistics.
func openWriter(c config, src capture.Source, runAs *privdrop.User, logger *slog.Logger) (writer, error) {
	opts := pcapout.Options{
		Path: c.out, Format: c.format, SnapLen: c.snapLen, LinkType: layers.LinkTypeEthernet,
		Application: "dpcap sinkd", FileSize: c.fileSize, Interval: c.interval,
		FileCount: c.fileCount, Keep: c.keep, Logger: logger,
		OSDrops: func() uint64 { n, _ := src.Drops(); return n },
	}
	if runAs != nil {
		opts.Owner = &pcapout.Owner{UID: runAs.UID, GID: runAs.GID}
	}
	if c.split {
		return pcapout.NewSplit(opts)
	}
	return pcapout.Open(opts)
}
