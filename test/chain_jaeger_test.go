//go:build external

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// chainBackend is a tracing backend a chain of anyroute processes is run with: its name and the
// config fragment that sends its spans to the test's Jaeger. A chain runs with each, since each
// carries the trace context across a hop in its own format.
type chainBackend struct{ name, target string }

func chainBackends(j *kit.Jaeger) []chainBackend {
	return []chainBackend{
		{"jaeger", fmt.Sprintf(`"jaeger": {"agent_addr": %q}`, j.AgentUDP)},
		{"zipkin", fmt.Sprintf(`"zipkin": {"url": "http://%s/api/v2/spans"}`, j.Zipkin)},
		{"otlp", fmt.Sprintf(`"otlp": {"endpoint": %q}`, j.OTLPHTTP)},
	}
}

// config is the config of one process of the chain: service is its tracing service name (a
// const sampler, so every request leaves a trace), routes its routes, and head any further
// top-level keys, each followed by a comma.
func (b chainBackend) config(head, service, routes string) string {
	return fmt.Sprintf(`{%s"tracing": {"backend": %q, "service_name": %q, "sampler": {"type": "const", "param": 1}, %s}, "routes": [%s]}`,
		head, b.name, service, b.target, routes)
}

// sendChained sends GETs to url/0 … url/n-1, each of which must answer 200 with a trace id and
// one call that answered 200, and returns the trace ids they echoed.
func sendChained(t *testing.T, url string, n int) map[string]bool {
	t.Helper()
	ours := map[string]bool{}
	for i := range n {
		code, e := kit.Echo(t, "GET", fmt.Sprintf("%s/%d", url, i), nil)
		if code != 200 || len(e.TraceID) != 32 || len(e.Calls) != 1 || e.Calls[0].Status != 200 {
			t.Fatalf("request %d: %d %+v", i, code, e)
		}
		ours[e.TraceID] = true
	}
	return ours
}

// waitForChains waits until Jaeger holds, for service, as many traces as ours, each of spans
// spans, and returns them; a trace that is not one of ours is an error.
func waitForChains(t *testing.T, j *kit.Jaeger, service string, spans int, ours map[string]bool) []kit.Trace {
	t.Helper()
	var traces []kit.Trace
	kit.WaitUntil(t, 30*time.Second, fmt.Sprintf("Jaeger to hold the %d traces with %d spans each", len(ours), spans), func() (bool, string, error) {
		var err error
		if traces, err = j.Traces(context.Background(), service); err != nil {
			return false, "", err
		}
		complete := 0
		for _, tr := range traces {
			if len(tr.Spans) == spans {
				complete++
			}
		}
		return len(traces) == len(ours) && complete == len(ours), fmt.Sprintf("%d traces, %d with %d spans", len(traces), complete, spans), nil
	})
	for _, tr := range traces {
		if !ours[strings.TrimLeft(tr.TraceID, "0")] && !ours[tr.TraceID] {
			t.Errorf("trace %s: not one %s echoed", tr.TraceID, service)
		}
	}
	return traces
}

// checkParents checks that tr holds one span of each key of want, a span's service and
// operation ("checkout call payment", lower case: Zipkin lowercases span names), and that each
// span's parent is want's value for it ("" for the root).
func checkParents(t *testing.T, tr kit.Trace, want map[string]string) {
	t.Helper()
	byID := map[string]kit.Span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	seen := map[string]bool{}
	for _, s := range tr.Spans {
		key := spanKey(tr, s)
		wantParent, known := want[key]
		if !known {
			t.Errorf("trace %s: unexpected span %q", tr.TraceID, key)
			continue
		}
		seen[key] = true
		got := ""
		if len(s.References) > 0 {
			if p, ok := byID[s.References[0].SpanID]; ok {
				got = spanKey(tr, p)
			}
		}
		if got != wantParent {
			t.Errorf("trace %s: span %q has parent %q, want %q", tr.TraceID, key, got, wantParent)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("trace %s: spans %v, want one of each of %d", tr.TraceID, seen, len(want))
	}
}

// spanKey is a span's service and operation, as checkParents names spans.
func spanKey(tr kit.Trace, s kit.Span) string {
	return tr.Service(s) + " " + strings.ToLower(s.OperationName)
}
