package jaeger

import (
	"testing"

	"github.com/uber/jaeger-client-go"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/instrumenting/tracing/tracingtest"
)

var suite = tracingtest.Suite{
	Backend: "jaeger",
	New:     New,
	At: func(cfg config.Tracing, addr string) config.Tracing {
		cfg.Jaeger.CollectorURL = "http://" + addr + "/api/traces"
		return cfg
	},
	Callers: map[string]func(traceID, spanID string) map[string]string{
		"uber-trace-id": func(tr, sp string) map[string]string {
			return map[string]string{"uber-trace-id": tr + ":" + sp + ":0:1"}
		},
		"B3": func(tr, sp string) map[string]string {
			return map[string]string{"X-B3-TraceId": tr, "X-B3-SpanId": sp, "X-B3-Sampled": "1"}
		},
	},
}

func TestBackend(t *testing.T) { suite.Run(t) }

func FuzzTraceHeaders(f *testing.F) { suite.Fuzz(f) }

// TestHexIDMatchesTheLibrary: the trace ids the echo shows are the ones Jaeger's UI and API show.
func TestHexIDMatchesTheLibrary(t *testing.T) {
	for _, id := range []jaeger.TraceID{{High: 0, Low: 1}, {High: 0, Low: 0xfedcba9876543210}, {High: 1, Low: 0}, {High: 0x4bf92f3577b34da6, Low: 0xa3ce929d0e0e4736}} {
		if got := tracing.HexID(id.High, id.Low); got != id.String() {
			t.Errorf("HexID(%x, %x) = %s, want %s", id.High, id.Low, got, id.String())
		}
	}
}
