package postrotate

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the -z commands' counts.
type Collector struct {
	stats                    func() Stats
	started, failed, skipped *prometheus.Desc
	running, queued          *prometheus.Desc
}

// NewCollector reads stats (Runner.Stats) at each scrape.
func NewCollector(stats func() Stats) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("sinkd_hook_"+name, help, nil, nil)
	}
	return &Collector{
		stats:   stats,
		started: d("commands_started_total", "Post-rotate (-z) commands started."),
		failed:  d("commands_failed_total", "Post-rotate commands that failed to start or exited non-zero."),
		skipped: d("files_skipped_total", "Closed files that got no post-rotate command: the queue was full, or sinkd stopped first."),
		running: d("commands_running", "Post-rotate commands running now (at most --hook-jobs)."),
		queued:  d("files_queued", "Closed files waiting for a post-rotate command."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.started, c.failed, c.skipped, c.running, c.queued} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.started, prometheus.CounterValue, float64(s.Started))
	ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(s.Failed))
	ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(s.Skipped))
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(s.Running))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
}
