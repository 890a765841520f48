package upload

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the uploader's queue and counts (sinkd --upload).
type Collector struct {
	stats func() Stats

	pendingFiles, pendingBytes, oldestAge, files, bytes *prometheus.Desc
	failures, dropped, droppedBytes, full, limit        *prometheus.Desc
	deleted                                             *prometheus.Desc
}

// NewCollector returns a collector over stats.
func NewCollector(stats func() Stats) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sinkd_upload_"+name, help, labels, nil)
	}
	return &Collector{
		stats:        stats,
		pendingFiles: d("pending_files", "Closed files waiting in the spool for the store, the one uploading included."),
		pendingBytes: d("pending_bytes", "Bytes of the files waiting in the spool."),
		oldestAge:    d("oldest_pending_age_seconds", "How long ago the oldest waiting file closed; 0 when none waits."),
		files:        d("files_total", "Files uploaded and verified by the store."),
		bytes:        d("bytes_total", "Bytes uploaded and verified by the store."),
		failures:     d("failures_total", "Failed upload attempts, by reason.", "reason"),
		dropped:      d("spool_dropped_files_total", "Files given up: the spool was full (--upload-spool-full), or a file could not be linked, copied or read."),
		droppedBytes: d("spool_dropped_bytes_total", "Bytes of the files given up."),
		full:         d("spool_full", "1 while the spool is full: the latest file was queued only by dropping one, or not at all."),
		limit:        d("spool_limit_bytes", "The spool's bound (--upload-spool-size)."),
		deleted:      d("deleted_files_total", "Capture files removed after a verified upload (--upload-delete)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pendingFiles, c.pendingBytes, c.oldestAge, c.files, c.bytes,
		c.failures, c.dropped, c.droppedBytes, c.full, c.limit, c.deleted} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.pendingFiles, float64(s.PendingFiles))
	gauge(c.pendingBytes, float64(s.PendingBytes))
	age := 0.0
	if !s.OldestPending.IsZero() {
		age = max(time.Since(s.OldestPending).Seconds(), 0)
	}
	gauge(c.oldestAge, age)
	counter(c.files, s.UploadedFiles)
	counter(c.bytes, s.UploadedBytes)
	for r := Failure(0); r < NumFailures; r++ {
		counter(c.failures, s.Failures[r], r.String())
	}
	counter(c.dropped, s.DroppedFiles)
	counter(c.droppedBytes, s.DroppedBytes)
	full := 0.0
	if s.Full {
		full = 1
	}
	gauge(c.full, full)
	gauge(c.limit, float64(s.SpoolLimit))
	counter(c.deleted, s.Deleted)
}
