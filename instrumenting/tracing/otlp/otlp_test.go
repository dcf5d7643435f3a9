package otlp

import (
	"testing"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing/tracingtest"
)

var suite = tracingtest.Suite{
	Backend: "otlp",
	New:     New,
	At: func(cfg config.Tracing, addr string) config.Tracing {
		cfg.OTLP.Endpoint = addr
		return cfg
	},
	Callers: map[string]func(traceID, spanID string) map[string]string{
		"traceparent": func(tr, sp string) map[string]string {
			return map[string]string{"traceparent": "00-" + tr + "-" + sp + "-01"}
		},
	},
}

func TestBackend(t *testing.T) { suite.Run(t) }

func FuzzTraceHeaders(f *testing.F) { suite.Fuzz(f) }
