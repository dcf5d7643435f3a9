package metrics

import (
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/anyroute/anyroute/instrumenting"
)

// BuildInfo labels the build_info metric.
type BuildInfo struct {
	Version, Revision string
}

// Collector serves the flusher's last snapshot to Prometheus. It builds constant metrics when
// gathered, so the request path never pays for the exposition. Each series carries the trace id of
// its latest sampled request as an exemplar (the counter), and of the latest per bucket (the
// histogram); OpenMetrics and protobuf expositions show them, the text format does not.
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
	calls        *prometheus.Desc
	callDuration *prometheus.Desc
	cpuBurned    *prometheus.Desc
	build        BuildInfo
	labels       labelCache
}

type seriesKey struct {
	route, method string
	code          int
	call          string // an upstream call's series: the call's name (its method is "")
}

// NewCollector returns the collector of the request metrics, named under namespace.
func NewCollector(namespace string, f *Flusher, build BuildInfo) *Collector {
	labels := []string{"method", "route", "code"}
	callLabels := []string{"route", "call", "code"}
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
		calls: prometheus.NewDesc(name("upstream_requests_total"),
			"Upstream calls made, by route rule, call and status code (timeout, error or canceled when no answer came, refused or limited when not made, nonstandard for a status HTTP does not define).", callLabels, nil),
		callDuration: prometheus.NewDesc(name("upstream_request_duration_seconds"),
			"Time an upstream call took, by route rule, call and status code (timeout, error or canceled when no answer came, refused or limited when not made, nonstandard for a status HTTP does not define).", callLabels, nil),
		cpuBurned: prometheus.NewDesc(name("cpu_burned_seconds_total"),
			"CPU time the route rule's cost (its cpu key) burned on requests, by route rule, as the burning threads' CPU clocks measured it.", []string{"route"}, nil),
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
		c.flushSeconds, c.flushes, c.lastFlush, c.folded, c.calls, c.callDuration, c.cpuBurned} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.flusher.Current()
	collectRequests(ch, snap, c.requests, c.duration, c.labelPairs)
	for i := range snap.Calls {
		s := &snap.Calls[i]
		labels := c.callLabelPairs(s)
		ch <- &counter{desc: c.calls, labels: labels, value: float64(s.Series.Count)}
		ch <- &histogram{desc: c.callDuration, labels: labels, series: &s.Series, bounds: snap.Bounds}
	}
	for _, r := range snap.CPU {
		ch <- prometheus.MustNewConstMetric(c.cpuBurned, prometheus.CounterValue, r.Seconds, r.Route)
	}
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(c.agg.InFlight()))
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.build.Version, c.build.Revision, runtime.Version())
	ch <- prometheus.MustNewConstMetric(c.flushSeconds, prometheus.GaugeValue, time.Duration(c.flusher.lastTook.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(c.flushes, prometheus.CounterValue, float64(c.flusher.flushes.Load()))
	ch <- prometheus.MustNewConstMetric(c.lastFlush, prometheus.GaugeValue, float64(snap.Taken.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.folded, prometheus.CounterValue, float64(snap.Folded))
}

func (c *Collector) labelPairs(s *Series) []*dto.LabelPair {
	return c.labels.get(seriesKey{route: s.Route, method: s.Method, code: s.Code}, func() []*dto.LabelPair {
		return prometheus.MakeLabelPairs(c.requests, []string{s.Method, s.Route, CodeLabel(s.Code)})
	})
}

// callLabelPairs are the labels of an upstream call's series: its route, call and code.
func (c *Collector) callLabelPairs(s *CallSeries) []*dto.LabelPair {
	return c.labels.get(seriesKey{route: s.Route, code: s.Series.Code, call: s.Call}, func() []*dto.LabelPair {
		return prometheus.MakeLabelPairs(c.calls, []string{s.Route, s.Call, CodeLabel(s.Series.Code)})
	})
}

// collectRequests sends each request series of snap, for the service's collector and a client's
// alike: its counter, with the trace id of its latest sampled request as exemplar, and its
// latency histogram, labelled by labels.
func collectRequests(ch chan<- prometheus.Metric, snap *Snapshot, requests, duration *prometheus.Desc, labels func(*Series) []*dto.LabelPair) {
	for i := range snap.Series {
		s := &snap.Series[i]
		l := labels(s)
		c := &counter{desc: requests, labels: l, value: float64(s.Count)}
		if e, ok := Latest(s.Exemplars); ok {
			c.exemplar = exemplar(&e, &one)
		}
		ch <- c
		ch <- &histogram{desc: duration, labels: l, series: s, bounds: snap.Bounds, native: snap.Native}
	}
}

// labelCache holds the label pairs of each series, made on its first collect: a series' labels
// never change, and making them anew took a third of a collect's allocations.
type labelCache struct {
	mu sync.Mutex
	m  map[seriesKey][]*dto.LabelPair
}

// get returns key's label pairs, made by build the first time.
func (l *labelCache) get(key seriesKey, build func() []*dto.LabelPair) []*dto.LabelPair {
	l.mu.Lock()
	defer l.mu.Unlock()
	labels, ok := l.m[key]
	if !ok {
		if l.m == nil {
			l.m = map[seriesKey][]*dto.LabelPair{}
		}
		labels = build()
		l.m[key] = labels
	}
	return labels
}

// codeLabel is the code label of a status, or of why no answer came; labels are codeStrings'.
func codeLabel(labels []string, code int) string {
	switch {
	case code >= 0 && code < len(labels):
		return labels[code]
	case code == CodeTimeout:
		return "timeout"
	case code == CodeError:
		return "error"
	case code == CodeCanceled:
		return "canceled"
	case code == CodeRefused:
		return "refused"
	case code == CodeNonStandard:
		return "nonstandard"
	case code == CodeLimited:
		return "limited"
	}
	if label, ok := instrumenting.FaultCodeLabel(code); ok {
		return label
	}
	return strconv.Itoa(code)
}

// traceIDLabel names the exemplars' one label: the trace id, as the tracing backend prints it.
const traceIDLabel = "trace_id"

var posInf, one = math.Inf(1), 1.0

// counter is one series of the request counter, with the exemplar of its latest sampled request.
type counter struct {
	desc     *prometheus.Desc
	labels   []*dto.LabelPair
	value    float64
	exemplar *dto.Exemplar
}

func (c *counter) Desc() *prometheus.Desc { return c.desc }

func (c *counter) Write(m *dto.Metric) error {
	m.Label = c.labels
	m.Counter = &dto.Counter{Value: &c.value, Exemplar: c.exemplar}
	return nil
}

// histogram is one series of the latency histogram, written straight from the snapshot: its
// buckets point into the snapshot (which is never changed once published) instead of going
// through a map as MustNewConstHistogram's do, and each bucket carries its exemplar. An exemplar
// of the +Inf bucket gets an explicit +Inf bucket to ride on, as client_golang does. With native
// histograms the same metric carries the native buckets too, as client_golang's histograms do
// when they have both (NewConstNativeHistogram makes native-only ones).
type histogram struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	series *Series
	bounds []float64
	native *NativeSchema
}

func (h *histogram) Desc() *prometheus.Desc { return h.desc }

func (h *histogram) Write(m *dto.Metric) error {
	s := h.series
	out := &dto.Histogram{SampleCount: &s.Count, SampleSum: &s.Sum}
	n := len(h.bounds)
	inf := len(s.Exemplars) > n && s.Exemplars[n].TraceID != ""
	buckets := make([]dto.Bucket, n, n+1)
	out.Bucket = make([]*dto.Bucket, 0, n+1)
	for i := range buckets {
		buckets[i] = dto.Bucket{CumulativeCount: &s.Buckets[i], UpperBound: &h.bounds[i]}
		out.Bucket = append(out.Bucket, &buckets[i])
	}
	if inf {
		buckets = append(buckets, dto.Bucket{CumulativeCount: &s.Count, UpperBound: &posInf})
		out.Bucket = append(out.Bucket, &buckets[n])
	}
	for i := range s.Exemplars {
		if e := &s.Exemplars[i]; e.TraceID != "" && i < len(out.Bucket) {
			out.Bucket[i].Exemplar = exemplar(e, &e.Value)
		}
	}
	if h.native != nil {
		out.Schema, out.ZeroThreshold, out.ZeroCount = &h.native.Schema, &h.native.ZeroThreshold, &s.ZeroCount
		out.PositiveSpan, out.PositiveDelta = nativeSpans(s.Native)
		for _, b := range out.Bucket { // native exemplars are listed apart, by increasing value
			if b.Exemplar != nil {
				out.Exemplars = append(out.Exemplars, b.Exemplar)
			}
		}
	}
	m.Label = h.labels
	m.Histogram = out
	return nil
}

// nativeSpans encodes buckets (increasing keys) as the protobuf exposition wants them: spans of
// consecutive buckets, each count a delta from the one before. A gap of one or two empty buckets
// is written as zero deltas rather than a new span, as client_golang does.
func nativeSpans(buckets []NativeBucket) ([]*dto.BucketSpan, []int64) {
	if len(buckets) == 0 {
		return nil, nil
	}
	spans := []*dto.BucketSpan{}
	deltas := make([]int64, 0, len(buckets))
	var prev int64
	next := 0
	for i, b := range buckets {
		gap := b.Key - next
		if i == 0 || gap > 2 {
			offset, length := int32(gap), uint32(0)
			spans = append(spans, &dto.BucketSpan{Offset: &offset, Length: &length})
		} else {
			for range gap {
				deltas = append(deltas, -prev)
				prev = 0
			}
			*spans[len(spans)-1].Length += uint32(gap)
		}
		deltas = append(deltas, int64(b.Count)-prev)
		prev = int64(b.Count)
		*spans[len(spans)-1].Length++
		next = b.Key + 1
	}
	return spans, deltas
}

// exemplar is e as the exposition carries it, with value: the request's duration on a bucket,
// 1 on the counter (the increment).
func exemplar(e *Exemplar, value *float64) *dto.Exemplar {
	name := traceIDLabel
	return &dto.Exemplar{
		Label:     []*dto.LabelPair{{Name: &name, Value: &e.TraceID}},
		Value:     value,
		Timestamp: timestamppb.New(e.Time),
	}
}
