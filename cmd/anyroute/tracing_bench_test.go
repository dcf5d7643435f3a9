package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/anyroute/anyroute/config"
)

// BenchmarkRequestPathTracing drives the assembled API handler (every layer and decorator real)
// with tracing off, and with jaeger sampling every request or 1 in 100. The jaeger agent address
// is a local UDP port nothing listens on: reporting happens off the request path either way.
//
//	go test -run '^$' -bench RequestPathTracing -benchmem ./cmd/anyroute/
func BenchmarkRequestPathTracing(b *testing.B) {
	agent := closedUDPAddr(b)
	for _, bc := range []struct {
		name    string
		backend string
		sampler config.Sampler
	}{
		{"none", "none", config.Sampler{Type: "const", Param: 1}},
		{"jaeger-const-1", "jaeger", config.Sampler{Type: "const", Param: 1}},
		{"jaeger-probabilistic-0.01", "jaeger", config.Sampler{Type: "probabilistic", Param: 0.01}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := config.Default()
			cfg.Tracing.Backend = bc.backend
			cfg.Tracing.Sampler = bc.sampler
			cfg.Tracing.Jaeger.AgentAddr = agent
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
			if w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		})
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

func closedUDPAddr(b *testing.B) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
