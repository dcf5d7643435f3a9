package jaeger

import (
	"testing"

	"github.com/opentracing/opentracing-go"
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

// TestRootSpansNameTheHeadSampler: every root span carries sampler.type and sampler.param of the
// configured head sampler, span after span (the tags are made once and shared, so no span may
// change another's), and a child span carries neither.
func TestRootSpansNameTheHeadSampler(t *testing.T) {
	rep := jaeger.NewInMemoryReporter()
	tracer, closer := jaeger.NewTracer("svc", newEveryRoot(config.Sampler{Type: "probabilistic", Param: 0.25}), rep)
	defer closer.Close()
	for i := range 3 {
		root := tracer.StartSpan("root")
		root.SetTag("n", i)
		child := tracer.StartSpan("child", opentracing.ChildOf(root.Context()))
		child.Finish()
		root.Finish()
	}
	spans := rep.GetSpans()
	if len(spans) != 6 {
		t.Fatalf("%d spans reported, want 6", len(spans))
	}
	for i, s := range spans {
		tags := s.(*jaeger.Span).Tags()
		if s.(*jaeger.Span).OperationName() == "child" {
			if _, ok := tags["sampler.type"]; ok {
				t.Errorf("span %d, a child: sampler tags %v", i, tags)
			}
			continue
		}
		if tags["sampler.type"] != "probabilistic" || tags["sampler.param"] != 0.25 || tags["n"] != i/2 {
			t.Errorf("root span %d: tags %v, want sampler.type probabilistic, sampler.param 0.25, n %d", i, tags, i/2)
		}
	}
	if !newEveryRoot(config.Sampler{Type: "const", Param: 1}).Equal(newEveryRoot(config.Sampler{Type: "const", Param: 1})) ||
		newEveryRoot(config.Sampler{Type: "const", Param: 1}).Equal(newEveryRoot(config.Sampler{Type: "const", Param: 0})) {
		t.Error("Equal does not compare the head samplers")
	}
}
