package live

import (
	"github.com/prometheus/client_golang/prometheus"
)

// result is how a request to /v1/stream ended before streaming, or that
// it streamed.
type result int

const (
	streamed result = iota
	unauthorized
	forbidden
	badRequest
	tooManyViewers
	numResults
)

var resultNames = [numResults]string{"streamed", "unauthorized", "forbidden", "bad_request", "too_many_viewers"}

// reason is why a stream ended.
type reason int

const (
	clientGone reason = iota
	slowClient
	countReached
	sinkStopped
	numReasons
)

var reasonNames = [numReasons]string{"client_gone", "slow_client", "count", "sink_stopped"}

func (r reason) String() string { return reasonNames[r] }

// collector exports a hub's counters; no label names a viewer.
type collector struct {
	h                                 *Hub
	viewers, requests, sent, filtered *prometheus.Desc
	lost, bytes, disconnects          *prometheus.Desc
}

func newCollector(h *Hub) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sinkd_live_"+name, help, labels, nil)
	}
	return &collector{
		h:           h,
		viewers:     d("viewers", "Live viewers connected now."),
		requests:    d("requests_total", "Requests for a live stream, by result: streamed, unauthorized, forbidden, bad_request, too_many_viewers.", "result"),
		sent:        d("frames_sent_total", "Frames sent to live viewers."),
		filtered:    d("frames_filtered_total", "Frames a live viewer's expression did not match."),
		lost:        d("frames_lost_total", "Frames lost for a live viewer, by reason: queue_full (its queue was full), stream_ended (queued when its stream ended).", "reason"),
		bytes:       d("bytes_sent_total", "Bytes of live streams sent."),
		disconnects: d("disconnects_total", "Live streams ended, by reason: client_gone, slow_client, count, sink_stopped.", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.viewers, c.requests, c.sent, c.filtered, c.lost, c.bytes, c.disconnects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := &c.h.stats
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, float64(s.viewers.Load()))
	for r := range numResults {
		counter(c.requests, s.requests[r].Load(), resultNames[r])
	}
	counter(c.sent, s.sent.Load())
	counter(c.filtered, s.filtered.Load())
	counter(c.lost, s.lost.Load(), "queue_full")
	counter(c.lost, s.ended.Load(), "stream_ended")
	counter(c.bytes, s.bytes.Load())
	for r := range numReasons {
		counter(c.disconnects, s.disconnects[r].Load(), reasonNames[r])
	}
}
