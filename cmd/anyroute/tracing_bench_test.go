package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/anyroute/anyroute/config"
)

// BenchmarkRequestPathTracing drives the assembled API handler (every layer and decorator real)
// with tracing off, with jaeger sampling every request or 1 in 100, and with otlp sampling every
// request. The jaeger agent address is a local UDP port nothing listens on, the OTLP endpoint a
// local TCP port nothing listens on: reporting happens off the request path either way, but in
// this process, so the reporters' allocations (jaeger's serialization, the OTLP batches) are in
// the per-request figures too.
//
//	go test -run '^$' -bench RequestPathTracing -benchmem ./cmd/anyroute/
func BenchmarkRequestPathTracing(b *testing.B) {
	agent := closedUDPAddr(b)
	otlpAddr := closedTCPAddr(b)
	for _, bc := range []struct {
		name    string
		backend string
		sampler config.Sampler
	}{
		{"none", "none", config.Sampler{Type: "const", Param: 1}},
		{"jaeger-const-1", "jaeger", config.Sampler{Type: "const", Param: 1}},
		{"jaeger-probabilistic-0.01", "jaeger", config.Sampler{Type: "probabilistic", Param: 0.01}},
		{"otlp-const-1", "otlp", config.Sampler{Type: "const", Param: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := config.Default()
			cfg.Tracing.Backend = bc.backend
			cfg.Tracing.Sampler = bc.sampler
			cfg.Tracing.Jaeger.AgentAddr = agent
			cfg.Tracing.OTLP.Endpoint = otlpAddr
			a, err := newApp(cfg, log.NewNopLogger())
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = a.tracing.Close(ctx)
			}()
			req := httptest.NewRequest("GET", "/orders/42?expand=1", nil)
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				a.api.ServeHTTP(w, req)
			}
			b.StopTimer()
			if w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
			// Spans the reporter dropped because its queue was full were never converted or
			// sent, so a reporter that falls behind looks cheaper per request: say how many.
			b.ReportMetric(float64(queueFullDrops(b, a))/float64(b.N), "dropped/op")
		})
	}
}

// BenchmarkRequestPathCall drives the assembled API handler, tracing off, through a route whose
// every request makes one upstream call, to a net/http server in this process that answers a small
// JSON body. That server's own allocations are in the per-request figures, the same in every build:
// the benchmark compares builds of anyroute's call path, not anyroute with a bare caller (the load
// benchmark's "One upstream call" does that).
//
//	go test -run '^$' -bench RequestPathCall -benchmem ./cmd/anyroute/
func BenchmarkRequestPathCall(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"route":"up"}`))
	}))
	defer up.Close()
	cfg, err := config.Parse("bench", []byte(`{"routes": [{"name": "hop", "match": "/*",
		"calls": [{"name": "up", "url": "`+up.URL+`/up/{path}", "timeout": "1s"}]}]}`))
	if err != nil {
		b.Fatal(err)
	}
	a, err := newApp(cfg, log.NewNopLogger())
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/orders/42", nil)
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		a.api.ServeHTTP(w, req)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the service.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// queueFullDrops reads app_tracing_spans_dropped_total{reason="queue_full"} from the app's registry.
func queueFullDrops(b *testing.B, a *app) float64 {
	b.Helper()
	families, err := a.registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "app_tracing_spans_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "queue_full" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
