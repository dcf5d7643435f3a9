package metrics

import (
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo labels the build_info metric.
type BuildInfo struct {
	Version, Revision string
}

// Collector serves the flusher's last snapshot to Prometheus. It builds constant metrics at scrape
// time, so neither the request path nor the once-a-second flush pays for the exposition.
type Collector struct {
	flusher      *Flusher
	agg          *Aggregator
	requests     *prometheus.Desc
	duration     *prometheus.Desc
	inFlight     *prometheus.Desc
	buildInfo    *prometheus.Desc
	flushSeconds *prometheus.Desc
	flushes      *prometheus.Desc
	lastFlush    *prometheus.Desc
	folded       *prometheus.Desc
	build        BuildInfo
	codeLabels   []string
}

// NewCollector returns the collector of the request metrics, named under namespace.
func NewCollector(namespace string, f *Flusher, build BuildInfo) *Collector {
	labels := []string{"method", "route", "code"}
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &Collector{
		flusher: f,
		agg:     f.agg,
		build:   build,
		requests: prometheus.NewDesc(name("requests_total"),
			"Requests answered, by method, route rule and status code.", labels, nil),
		duration: prometheus.NewDesc(name("request_duration_seconds"),
			"Time the service took to answer, by method, route rule and status code.", labels, nil),
		inFlight: prometheus.NewDesc(name("requests_in_flight"),
			"Requests being answered now.", nil, nil),
		buildInfo: prometheus.NewDesc(name("build_info"),
			"Always 1; the labels say which build is running.", []string{"version", "revision", "goversion"}, nil),
		flushSeconds: prometheus.NewDesc(name("metrics_flush_duration_seconds"),
			"How long the last flush of the request metrics took.", nil, nil),
		flushes: prometheus.NewDesc(name("metrics_flushes_total"),
			"Flushes of the request metrics since start.", nil, nil),
		lastFlush: prometheus.NewDesc(name("metrics_last_flush_timestamp_seconds"),
			"When the request metrics served now were taken, in Unix seconds.", nil, nil),
		folded: prometheus.NewDesc(name("metrics_folded_requests_total"),
			"Requests whose route was not a configured rule and were counted under route \"other\" instead.", nil, nil),
		codeLabels: codeStrings(),
	}
}

// codeStrings pre-formats the status codes, so a scrape does not format them again.
func codeStrings() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.duration, c.inFlight, c.buildInfo,
		c.flushSeconds, c.flushes, c.lastFlush, c.folded} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.flusher.Current()
	for _, s := range snap.Series {
		code := c.code(s.Code)
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Count), s.Method, s.Route, code)
		buckets := make(map[float64]uint64, len(snap.Bounds)) // kept by the metric: one per series
		for i, b := range snap.Bounds {
			buckets[b] = s.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.duration, s.Count, s.Sum, buckets, s.Method, s.Route, code)
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(c.agg.InFlight()))
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.build.Version, c.build.Revision, runtime.Version())
	ch <- prometheus.MustNewConstMetric(c.flushSeconds, prometheus.GaugeValue, time.Duration(c.flusher.lastTook.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(c.flushes, prometheus.CounterValue, float64(c.flusher.flushes.Load()))
	ch <- prometheus.MustNewConstMetric(c.lastFlush, prometheus.GaugeValue, float64(snap.Taken.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.folded, prometheus.CounterValue, float64(snap.Folded))
}

func (c *Collector) code(code int) string {
	if code >= 0 && code < len(c.codeLabels) {
		return c.codeLabels[code]
	}
	return strconv.Itoa(code)
}
