// Package metrics exposes sinkd's accounting to Prometheus and serves the
// health endpoints an orchestrator probes.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dpcap/dpcap/capture/udpstat"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/decap/reassembly"
	"github.com/dpcap/dpcap/sink"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// StatsFunc returns a snapshot of the accounting of every receive path,
// summed (sink.Total); each call is one consistent snapshot.
type StatsFunc func() sink.Stats

// Collector turns engine snapshots into metrics at scrape time, so the
// kernel's running drop count is read fresh on every scrape.
type Collector struct {
	stats         StatsFunc
	receiveBuffer float64
	logger        *slog.Logger

	received, written, bytes, malformed, skipped *prometheus.Desc
	truncated, filtered, buffered                *prometheus.Desc
	dropped, socketDrops, rotated, writeErrors   *prometheus.Desc
	rcvBuf                                       *prometheus.Desc
	sources, overflowed, unknownTags             *prometheus.Desc
	fragHeld, fragAbsorbed, fragEvicted          *prometheus.Desc
	reassembled, fragBytes                       *prometheus.Desc
}

// NewCollector returns a collector over stats. receiveBuffer is the socket
// buffer the kernel granted, in bytes.
func NewCollector(stats StatsFunc, receiveBuffer int, logger *slog.Logger) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sinkd_"+name, help, labels, nil)
	}
	return &Collector{
		stats:         stats,
		receiveBuffer: float64(receiveBuffer),
		logger:        logger,
		received:      d("packets_received_total", "Packets read from the input."),
		written:       d("packets_written_total", "Inner frames written to capture files."),
		bytes:         d("bytes_written_total", "Bytes written to capture files, headers included."),
		malformed:     d("packets_malformed_total", "Broken envelopes, by reason.", "reason"),
		skipped:       d("packets_skipped_total", "Packets that were not envelopes (other traffic in a capture), by reason.", "reason"),
		truncated:     d("packets_truncated_total", "Written packets cut to the snap length."),
		filtered:      d("packets_filtered_total", "Envelopes whose inner frame the filter expression rejected."),
		buffered:      d("packets_buffered", "Packets handed to the writer and not yet on disk."),
		dropped: d("packets_dropped_total", "Received packets not written: for want of space (write_error), of trust (source_not_allowed) "+
			"or of time, still queued when the capture stopped (stopped).", "reason"),
		socketDrops: d("socket_drops_total", "Datagrams the kernel dropped on sinkd's socket (SO_MEMINFO)."),
		rotated:     d("files_rotated_total", "Capture files closed to start the next."),
		writeErrors: d("write_errors_total", "Failed writes or file creations."),
		rcvBuf:      d("socket_receive_buffer_bytes", "Receive buffer the kernel granted to the socket."),
		sources:     d("sources", "Sources with an interface (or files) of their own; at most --max-sources."),
		overflowed:  d("source_overflow_packets_total", "Packets of sources past --max-sources, in the shared interface \"overflow\"."),
		unknownTags: d("unknown_tag_packets_total", "Packets whose flow label the port map does not list: named after their sender, not after a port."),
		fragHeld:    d("fragments_held", "Outer IP fragments held for datagrams still incomplete."),
		fragAbsorbed: d("fragments_absorbed_total", "Outer IP fragments put into a reassembled datagram, other than the one completing it "+
			"(which is counted as the packet the datagram became)."),
		fragEvicted: d("fragments_evicted_total", "Outer IP fragments dropped, by reason: timeout, memory, overlap, duplicate, "+
			"too_big, invalid, incomplete (at the end of the capture).", "reason"),
		reassembled: d("datagrams_reassembled_total", "Outer IP datagrams reassembled from fragments."),
		fragBytes:   d("fragments_held_bytes", "Bytes the reassembly of outer IP fragments holds, of its budget."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.written, c.bytes, c.malformed, c.skipped, c.truncated, c.filtered,
		c.buffered, c.dropped, c.socketDrops, c.rotated, c.writeErrors, c.rcvBuf, c.sources, c.overflowed, c.unknownTags,
		c.fragHeld, c.fragAbsorbed, c.fragEvicted, c.reassembled, c.fragBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.received, s.Received)
	counter(c.written, s.Written)
	counter(c.bytes, s.BytesWritten)
	for r := decap.OK + 1; r < decap.NumReasons; r++ {
		if r.Malformed() {
			counter(c.malformed, s.Rejected[r], r.String())
		} else {
			counter(c.skipped, s.Rejected[r], r.String())
		}
	}
	counter(c.truncated, s.Truncated)
	counter(c.filtered, s.Filtered)
	counter(c.dropped, s.WriteDropped, "write_error")
	counter(c.dropped, s.Denied, "source_not_allowed")
	counter(c.dropped, s.Stopped, "stopped")
	ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(s.Buffered))
	if s.KernelDropsErr == nil {
		counter(c.socketDrops, s.KernelDrops)
	} else {
		c.logger.Warn("cannot read the socket drop count", "err", s.KernelDropsErr)
	}
	counter(c.rotated, s.Rotations)
	counter(c.writeErrors, s.WriteErrors)
	ch <- prometheus.MustNewConstMetric(c.rcvBuf, prometheus.GaugeValue, c.receiveBuffer)
	ch <- prometheus.MustNewConstMetric(c.sources, prometheus.GaugeValue, float64(s.Sources))
	counter(c.overflowed, s.Overflowed)
	counter(c.unknownTags, s.UnknownTags)
	f := s.Fragments
	ch <- prometheus.MustNewConstMetric(c.fragHeld, prometheus.GaugeValue, float64(f.Held))
	counter(c.fragAbsorbed, f.Absorbed)
	for e := range reassembly.NumEvictions {
		counter(c.fragEvicted, f.Evicted[e], e.String())
	}
	counter(c.reassembled, f.Completing)
	ch <- prometheus.MustNewConstMetric(c.fragBytes, prometheus.GaugeValue, float64(f.Bytes))
}

// KernelUDPCollector exports the UDP error counters of sinkd's network
// namespace, read at scrape time: when they rise while sinkd receives
// nothing, the kernel is discarding the envelopes before any socket.
type KernelUDPCollector struct {
	procNet string
	logger  *slog.Logger
	desc    *prometheus.Desc
}

// NewKernelUDPCollector reads the counters under procNet
// (udpstat.DefaultProcNet).
func NewKernelUDPCollector(procNet string, logger *slog.Logger) *KernelUDPCollector {
	return &KernelUDPCollector{procNet: procNet, logger: logger, desc: prometheus.NewDesc("sinkd_kernel_udp_errors_total",
		"UDP datagrams the kernel of sinkd's network namespace discarded, for any socket, by /proc/net/snmp(6) counter.",
		[]string{"counter"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *KernelUDPCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *KernelUDPCollector) Collect(ch chan<- prometheus.Metric) {
	v, err := udpstat.Read(c.procNet)
	if err != nil {
		c.logger.Warn("cannot read the kernel's UDP counters", "err", err)
		return
	}
	for i, name := range udpstat.Names {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v[i]), name)
	}
}

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr now, so that a busy port fails at start-up, and serves
// in the background. ready reports whether the capture is running; more
// are further collectors (the kernel's UDP counters, -z commands, uploads).
func Listen(addr string, c prometheus.Collector, ready func() bool, logger *slog.Logger, more ...prometheus.Collector) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(more...)
	reg.MustRegister(c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not capturing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting a scrape in flight finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
