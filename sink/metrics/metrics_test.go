package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dpcap/dpcap/capture/udpstat"
	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/decap/reassembly"
	"github.com/dpcap/dpcap/internal/testkit"
	"github.com/dpcap/dpcap/sink"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func serve(t *testing.T, stats sink.Stats, ready *atomic.Bool) string {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := NewCollector(func() sink.Stats { return stats }, 1<<20, logger)
	srv, err := Listen("127.0.0.1:0", c, ready.Load, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return "http://" + srv.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsValuesAndLint(t *testing.T) {
	var st sink.Stats
	st.Received, st.Written, st.BytesWritten = 10, 7, 1234
	st.Rejected[decap.ShortFrame] = 2
	st.WriteDropped, st.KernelDrops, st.Rotations, st.WriteErrors = 1, 5, 3, 1
	st.Stopped, st.Denied, st.Buffered = 4, 6, 8
	st.Fragments.Held, st.Fragments.Absorbed, st.Fragments.Completing, st.Fragments.Bytes = 2, 3, 1, 4096
	st.Fragments.Evicted[reassembly.Overlap] = 9
	var ready atomic.Bool
	ready.Store(true)
	base := serve(t, st, &ready)
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	want := map[string]float64{
		"sinkd_packets_received_total":                             10,
		"sinkd_packets_written_total":                              7,
		"sinkd_bytes_written_total":                                1234,
		`sinkd_packets_malformed_total{reason="short_frame"}`:      2,
		`sinkd_packets_dropped_total{reason="write_error"}`:        1,
		`sinkd_packets_dropped_total{reason="stopped"}`:            4,
		`sinkd_packets_dropped_total{reason="source_not_allowed"}`: 6,
		"sinkd_packets_buffered":                                   8,
		"sinkd_socket_drops_total":                                 5,
		"sinkd_files_rotated_total":                                3,
		"sinkd_write_errors_total":                                 1,
		"sinkd_socket_receive_buffer_bytes":                        1 << 20,
		"sinkd_packets_truncated_total":                            0,
		"sinkd_fragments_held":                                     2,
		"sinkd_fragments_absorbed_total":                           3,
		"sinkd_datagrams_reassembled_total":                        1,
		"sinkd_fragments_held_bytes":                               4096,
		`sinkd_fragments_evicted_total{reason="overlap"}`:          9,
		`sinkd_fragments_evicted_total{reason="incomplete"}`:       0,
	}
	got := testkit.Metrics(t, body)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var ready atomic.Bool
	base := serve(t, sink.Stats{}, &ready)
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the capture runs = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz while capturing = %d, want 200", code)
	}
}

func TestListenOnBusyAddressFails(t *testing.T) {
	var ready atomic.Bool
	base := serve(t, sink.Stats{}, &ready)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := Listen(strings.TrimPrefix(base, "http://"), NewCollector(func() sink.Stats { return sink.Stats{} }, 0, logger), func() bool { return true }, logger)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v", err)
	}
}

// TestKernelUDPCounters serves this namespace's UDP error counters next to
// the engine's, and lints them.
func TestKernelUDPCounters(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var ready atomic.Bool
	srv, err := Listen("127.0.0.1:0", NewCollector(func() sink.Stats { return sink.Stats{} }, 0, logger), ready.Load, logger,
		NewKernelUDPCollector(udpstat.DefaultProcNet, logger))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, body := get(t, "http://"+srv.Addr().String()+"/metrics")
	for _, name := range udpstat.Names {
		if !strings.Contains(body, `sinkd_kernel_udp_errors_total{counter="`+name+`"} `) {
			t.Errorf("no %s in:\n%s", name, body)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
