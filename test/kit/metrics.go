package kit

import (
	"fmt"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of one scrape of a /metrics endpoint, by name.
type Metrics map[string]*dto.MetricFamily

// Scrape reads and parses the text exposition at url.
func Scrape(url string) (Metrics, error) {
	code, body := Get(url)
	if code != 200 {
		return nil, fmt.Errorf("GET %s: %d %.300s", url, code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	return fams, nil
}

// ScrapeT is Scrape, failing the test on an error.
func ScrapeT(t testing.TB, url string) Metrics {
	t.Helper()
	m, err := Scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Series returns the series of a metric: their labels and values (a counter's, gauge's or
// untyped value).
func (m Metrics) Series(name string) []Sample {
	var out []Sample
	for _, s := range m[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		var v float64
		switch {
		case s.Counter != nil:
			v = s.GetCounter().GetValue()
		case s.Gauge != nil:
			v = s.GetGauge().GetValue()
		default:
			v = s.GetUntyped().GetValue()
		}
		out = append(out, Sample{Labels: labels, Value: v})
	}
	return out
}

// Sum adds up the values of a metric's series whose labels include labelValues, given as
// name, value, name, value...
func (m Metrics) Sum(name string, labelValues ...string) float64 {
	var sum float64
series:
	for _, s := range m.Series(name) {
		for i := 0; i+1 < len(labelValues); i += 2 {
			if s.Labels[labelValues[i]] != labelValues[i+1] {
				continue series
			}
		}
		sum += s.Value
	}
	return sum
}

// HistogramCount adds up the observation counts of a histogram's series whose labels include
// labelValues, given as name, value, name, value...
func (m Metrics) HistogramCount(name string, labelValues ...string) uint64 {
	var n uint64
series:
	for _, s := range m[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labelValues); i += 2 {
			if labels[labelValues[i]] != labelValues[i+1] {
				continue series
			}
		}
		n += s.GetHistogram().GetSampleCount()
	}
	return n
}

// Sample is one series and its value, from a scrape or a Prometheus query. A native histogram
// from a query is in Histogram, Value then zero.
type Sample struct {
	Labels    map[string]string
	Value     float64
	Histogram *model.SampleHistogram
}
