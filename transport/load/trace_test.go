package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/instrumenting/tracing/otlp"
	"github.com/anyroute/anyroute/instrumenting/tracing/tracingtest"
	"github.com/anyroute/anyroute/transport/load/stages"
)

// TestTraceStartsAtTheClient: with a tracing backend every request carries the trace context of a
// client span the load started (W3C traceparent, sampled) and an x-request-id, and the latency
// series' exemplars are trace ids the requests carried: a slow bucket leads to a trace that
// begins at the client.
func TestTraceStartsAtTheClient(t *testing.T) {
	var mu sync.Mutex
	traceIDs := map[string]bool{}
	var missing []string
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		tp := strings.Split(r.Header.Get("Traceparent"), "-") // version-traceid-spanid-flags
		if len(tp) != 4 || tp[3] != "01" || r.Header.Get("X-Request-Id") == "" {
			missing = append(missing, r.Header.Get("Traceparent")+" / "+r.Header.Get("X-Request-Id"))
			return
		}
		traceIDs[tp[1]] = true
	}))
	defer srv.Close()

	cfg := *DefaultTracing()
	cfg.Backend = "otlp"
	cfg.OTLP = config.OTLP{Endpoint: tracingtest.ClosedAddr(t, "tcp"), Insecure: true} // spans are dropped, and counted
	reporting, err := tracing.NewReporting(log.NewNopLogger(), prometheus.NewRegistry(), "load", cfg.Backend)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := otlp.New(cfg, reporting)
	if err != nil {
		t.Fatal(err)
	}
	tr := tracing.New(backend, tracing.Always)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Close(ctx)
	}()

	spec := Spec{Rate: 100, Duration: stages.Duration(500 * time.Millisecond), Targets: []Target{{URL: srv.URL}}}.WithDefaults()
	if err := spec.Check(); err != nil {
		t.Fatal(err)
	}
	agg := NewAggregator(spec, []float64{0.01, 0.1, 1})
	r := NewRunner(spec, agg, tr, log.NewNopLogger())
	r.Run(context.Background())
	if s := r.Summary(); s.Sent != 50 || s.Codes["200"] != 50 {
		t.Fatalf("sent %d, codes %v", s.Sent, s.Codes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 || len(traceIDs) != 50 {
		t.Fatalf("%d distinct sampled traces for 50 requests; without trace context or request id: %q", len(traceIDs), missing)
	}
	exemplars := 0
	for _, series := range agg.Snapshot().Series {
		for _, e := range series.Exemplars {
			if e.TraceID == "" {
				continue
			}
			exemplars++
			if !traceIDs[e.TraceID] {
				t.Errorf("exemplar trace id %s is no request's", e.TraceID)
			}
		}
	}
	if exemplars == 0 {
		t.Error("no exemplar on the latency series")
	}
}
