package testkit

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ParseMetrics reads a Prometheus text exposition, as a /metrics endpoint
// serves it, with Prometheus' own parser into "name{label="value",...}" →
// value: the sample's line as written, less its value. Labels are sorted by
// name, as client_golang writes them. Counters, gauges and untyped samples
// are kept; summaries and histograms are not.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	m := map[string]float64{}
	for name, f := range families {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case s.Counter != nil:
				m[key] = s.GetCounter().GetValue()
			case s.Gauge != nil:
				m[key] = s.GetGauge().GetValue()
			case s.Untyped != nil:
				m[key] = s.GetUntyped().GetValue()
			}
		}
	}
	return m, nil
}

// Metrics is ParseMetrics of body, failing the test if it does not parse.
func Metrics(t testing.TB, body string) map[string]float64 {
	t.Helper()
	m, err := ParseMetrics(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, body)
	}
	return m
}
