package metrics

import (
	"slices"
	"sync/atomic"

	"github.com/dpcap/dpcap/portmap"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxCaptureLabels bounds the capture ids CaptureCollector exports: a map
// from one hypervisor names one capture; a merged map of a few hosts,
// a few.
const MaxCaptureLabels = 16

// CaptureCollector exports the capture ids of the port map in use as
// sinkd_port_map_capture_info{capture="ID"} 1: the current ones only, at
// most MaxCaptureLabels, so the label's cardinality stays bounded however
// many captures a sink sees in its life.
type CaptureCollector struct {
	ids  atomic.Pointer[[]string]
	desc *prometheus.Desc
}

// NewCaptureCollector returns a collector with no map yet.
func NewCaptureCollector() *CaptureCollector {
	return &CaptureCollector{desc: prometheus.NewDesc("sinkd_port_map_capture_info",
		"The dpcap captures the port map in use names (dpcap status shows a capture's id); 1 for each, the first 16 by id.",
		[]string{"capture"}, nil)}
}

// Set takes the map now in use.
func (c *CaptureCollector) Set(x *portmap.Identifier) {
	ids := x.Captures()
	slices.Sort(ids)
	ids = ids[:min(len(ids), MaxCaptureLabels)]
	c.ids.Store(&ids)
}

// Describe implements prometheus.Collector.
func (c *CaptureCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *CaptureCollector) Collect(ch chan<- prometheus.Metric) {
	ids := c.ids.Load()
	if ids == nil {
		return
	}
	for _, id := range *ids {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, id)
	}
}
