package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ClientCollector serves the request metrics of a client, `anyroute load`, from the same
// aggregator and flusher as the service's: an Aggregator whose routes are the client's target
// names, so counting a request costs what it costs the service and every count lands in exactly
// one flush. The series are named requests_total and request_duration_seconds under the client's
// namespace, labelled target, method and code (the status, or timeout, error or canceled when
// no answer came); the latency histogram carries trace id exemplars as the service's does.
type ClientCollector struct {
	flusher  *Flusher
	requests *prometheus.Desc
	duration *prometheus.Desc
	inFlight *prometheus.Desc
	labels   labelCache
}

// NewClientCollector returns the collector of a client's requests, named under namespace; help
// says what the duration measures (the load generator times from the intended send).
func NewClientCollector(namespace string, f *Flusher, durationHelp string) *ClientCollector {
	labels := []string{"target", "method", "code"}
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &ClientCollector{
		flusher: f,
		requests: prometheus.NewDesc(name("requests_total"),
			"Requests that ended, by target, method and status code (timeout, error or canceled when no answer came).", labels, nil),
		duration: prometheus.NewDesc(name("request_duration_seconds"), durationHelp, labels, nil),
		inFlight: prometheus.NewDesc(name("requests_in_flight"), "Requests sent and not yet ended.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ClientCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.duration
	ch <- c.inFlight
}

// Collect implements prometheus.Collector.
func (c *ClientCollector) Collect(ch chan<- prometheus.Metric) {
	collectRequests(ch, c.flusher.Current(), c.requests, c.duration, c.labelPairs)
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(c.flusher.agg.InFlight()))
}

func (c *ClientCollector) labelPairs(s *Series) []*dto.LabelPair {
	return c.labels.get(seriesKey{route: s.Route, method: s.Method, code: s.Code}, func() []*dto.LabelPair {
		return prometheus.MakeLabelPairs(c.requests, []string{s.Route, s.Method, CodeLabel(s.Code)})
	})
}

// CodeLabel is the code label a status or error code is published under ("200", "timeout").
func CodeLabel(code int) string { return codeLabel(codeLabels, code) }

// codeLabels are the status codes pre-formatted, so a scrape does not format them again.
var codeLabels = codeStrings()

// Monotonic is the clock of exemplar times (Aggregator.EndSampled's at): the monotonic reading
// since the process' epoch.
func Monotonic() time.Duration { return monotonic() }
