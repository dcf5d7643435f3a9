package zipkin

import (
	"testing"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing/tracingtest"
)

var suite = tracingtest.Suite{
	Backend: "zipkin",
	New:     New,
	At: func(cfg config.Tracing, addr string) config.Tracing {
		cfg.Zipkin.URL = "http://" + addr + "/api/v2/spans"
		return cfg
	},
	Callers: map[string]func(traceID, spanID string) map[string]string{
		"B3": func(tr, sp string) map[string]string {
			return map[string]string{"X-B3-TraceId": tr, "X-B3-SpanId": sp, "X-B3-Sampled": "1"}
		},
		"b3 single": func(tr, sp string) map[string]string { return map[string]string{"b3": tr + "-" + sp + "-1"} },
	},
	// zipkin-go-opentracing hands out a span's context only by value (Context boxes a 56-byte
	// struct), so even asking whether a span is sampled allocates once.
	SampledAllocs: 1,
}

func TestBackend(t *testing.T) { suite.Run(t) }

func FuzzTraceHeaders(f *testing.F) { suite.Fuzz(f) }
