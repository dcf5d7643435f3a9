package metrics

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anyroute/anyroute/service"
)

var benchBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// BenchmarkCounting is the counting decorator around a service that answers at once: the cost
// of counting on the request path, with classic buckets only and with native ones beside them,
// for a request whose trace is not sampled (or tracing off) and for a sampled one, which leaves
// an exemplar. Compare with BenchmarkClientGolangDirect, run alongside.
func BenchmarkCounting(b *testing.B) {
	for _, bc := range []struct {
		name   string
		native bool
		trace  service.Request
	}{
		{"classic", false, service.Request{}},
		{"classic-unsampled", false, service.Request{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"classic-sampled", false, service.Request{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", TraceSampled: true}},
		{"native", true, service.Request{}},
		{"native-unsampled", true, service.Request{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}},
		{"native-sampled", true, service.Request{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", TraceSampled: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			agg := NewAggregator("other", []string{"orders"}, benchBuckets, NativeHistograms(bc.native))
			svc := Counting(agg)(fixedService{resp: service.Response{Status: 200, Route: "orders"}})
			req := bc.trace
			req.Method, req.Path = "GET", "/orders/1"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					_, _ = svc.Handle(ctx, req)
				}
			})
		})
	}
}

// BenchmarkAggregator is the counting decorator's work without its two clock reads, which cost
// more than the rest on some virtual machines (see docs/benchmarks.md), over durations spread
// from 100 µs to 2 s so that requests land in many buckets, classic and native.
func BenchmarkAggregator(b *testing.B) {
	durations := make([]time.Duration, 256)
	for i := range durations {
		durations[i] = time.Duration(float64(100*time.Microsecond) * math.Pow(20000, float64(i)/256))
	}
	for _, native := range []bool{false, true} {
		b.Run(map[bool]string{false: "classic", true: "native"}[native], func(b *testing.B) {
			agg := NewAggregator("other", []string{"orders"}, benchBuckets, NativeHistograms(native))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(durations))
				for pb.Next() {
					agg.End(agg.Begin(), 1, "GET", 200, durations[i&255])
					i++
				}
			})
		})
	}
}

// BenchmarkClock is the clock reads alone, as the decorator makes them (two monotonic reads),
// beside the usual time.Now and time.Since.
func BenchmarkClock(b *testing.B) {
	b.Run("monotonic", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			var d time.Duration
			for pb.Next() {
				begin := monotonic()
				d += monotonic() - begin
			}
			_ = d
		})
	})
	b.Run("now-since", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			var d time.Duration
			for pb.Next() {
				d += time.Since(time.Now())
			}
			_ = d
		})
	})
}

// BenchmarkClientGolangDirect is what the counting decorator replaces: client_golang's vectors
// updated on every request.
func BenchmarkClientGolangDirect(b *testing.B) {
	reg := prometheus.NewRegistry()
	labels := []string{"method", "route", "code"}
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_requests_total", Help: "h"}, labels)
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "app_request_duration_seconds", Help: "h", Buckets: benchBuckets}, labels)
	reg.MustRegister(counter, hist)
	next := fixedService{resp: service.Response{Status: 200, Route: "orders"}}
	req := service.Request{Method: "GET", Path: "/orders/1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			begin := time.Now()
			resp, _ := next.Handle(ctx, req)
			code := strconv.Itoa(resp.Status)
			counter.WithLabelValues(req.Method, resp.Route, code).Inc()
			hist.WithLabelValues(req.Method, resp.Route, code).Observe(time.Since(begin).Seconds())
		}
	})
}

// newLoadedAggregator has 1,000 series: 100 routes × 2 methods × 5 codes.
func newLoadedAggregator() *Aggregator {
	routes := make([]string, 100)
	for i := range routes {
		routes[i] = fmt.Sprintf("route_%d", i)
	}
	agg := NewAggregator("other", routes, benchBuckets)
	for r := 1; r <= len(routes); r++ {
		for _, m := range []string{"GET", "POST"} {
			for _, c := range []int{200, 201, 404, 500, 503} {
				agg.End(agg.Begin(), r, m, c, time.Duration(r)*time.Millisecond)
			}
		}
	}
	return agg
}

// BenchmarkFlush1000Series is one flush, the work done every flush interval.
func BenchmarkFlush1000Series(b *testing.B) {
	f := NewFlusher(newLoadedAggregator(), time.Second)
	if n := len(f.Current().Series); n != 1000 {
		b.Fatalf("%d series", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Flush()
	}
}

// BenchmarkCollect1000Series is one scrape's worth of building the request metrics.
func BenchmarkCollect1000Series(b *testing.B) {
	c := NewCollector("app", NewFlusher(newLoadedAggregator(), time.Second), BuildInfo{})
	ch := make(chan prometheus.Metric, 4096)
	b.ReportAllocs()
	for b.Loop() {
		c.Collect(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
}

// discard is a ResponseWriter that keeps only the headers, so a scrape benchmark measures the
// handler, not a buffer holding the page.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkScrape1000Series is one scrape of the 1,000-series page, as Prometheus asks for it
// (OpenMetrics or, with native histograms on, protobuf; gzip), and as plain text without
// compression: through promhttp.HandlerFor, which gathers and encodes every scrape (how /metrics
// was served before), beside the cached Exposition over the same registry. "cached" is a scrape
// between two flushes, a copy; "cached-16" flushes before every 16th scrape, which is 16 scrapes a
// second at the default flush interval: the encodings' cost shared among the scrapes.
func BenchmarkScrape1000Series(b *testing.B) {
	f := NewFlusher(newLoadedAggregator(), time.Hour)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))
	handlers := []struct {
		name  string
		h     http.Handler
		every int // flush before every every-th scrape; 0: never
	}{
		{"promhttp", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError}), 0},
		{"cached", NewExposition(reg, f), 0},
		{"cached-16", NewExposition(reg, f), 16},
	}
	for _, format := range []struct{ name, accept, encoding string }{
		{"openmetrics-gzip", acceptHeaders[0], "gzip"},
		{"protobuf-gzip", acceptHeaders[1], "gzip"},
		{"text", "text/plain;version=0.0.4", ""},
	} {
		for _, h := range handlers {
			b.Run(format.name+"/"+h.name, func(b *testing.B) {
				req := httptest.NewRequest("GET", "/metrics", nil)
				req.Header.Set("Accept", format.accept)
				if format.encoding != "" {
					req.Header.Set("Accept-Encoding", format.encoding)
				}
				w := &discard{h: http.Header{}}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if h.every > 0 && i%h.every == 0 {
						f.Flush()
					}
					i++
					clear(w.h)
					h.h.ServeHTTP(w, req)
				}
			})
		}
	}
}
