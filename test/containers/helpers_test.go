//go:build integration

package containers

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// call is one request of the test traffic and the answer its route rule gives.
type call struct {
	method, path string
	status       int
	route        string
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// sendTraffic sends every call rounds times to the API at base and checks each answer: status,
// the JSON echo's method, path and route, and a trace id. It returns the trace ids, one a request.
func sendTraffic(t *testing.T, base string, calls []call, rounds int) []string {
	t.Helper()
	var traceIDs []string
	for range rounds {
		for _, c := range calls {
			code, echo := kit.Echo(t, c.method, base+c.path, nil)
			if code != c.status {
				t.Fatalf("%s %s: status %d, want %d; echo %+v", c.method, c.path, code, c.status, echo)
			}
			wantPath, _, _ := strings.Cut(c.path, "?")
			if echo.Method != c.method || echo.Path != wantPath || echo.Route != c.route {
				t.Fatalf("%s %s: echo %+v, want method %s, path %s, route %s", c.method, c.path, echo, c.method, wantPath, c.route)
			}
			if !traceIDPattern.MatchString(echo.TraceID) {
				t.Fatalf("%s %s: trace_id %q is not 32 hex digits (is tracing on?): %+v", c.method, c.path, echo.TraceID, echo)
			}
			traceIDs = append(traceIDs, echo.TraceID)
		}
	}
	return traceIDs
}

// waitJaegerTraces waits until Jaeger holds a trace for each of traceIDs (the ids the echoes
// showed), each with a server span named for its method, and checks that it holds no other
// trace of the service: every request was sampled, and nothing else sent spans. Trace ids are
// compared without leading zeros, as jaeger-client-go's 64-bit ids are printed either way. It
// returns the traces by id.
func waitJaegerTraces(t *testing.T, base, service string, traceIDs []string, timeout time.Duration) map[string]kit.Trace {
	t.Helper()
	want := map[string]bool{}
	for _, id := range traceIDs {
		want[strings.TrimLeft(id, "0")] = true
	}
	var traces map[string][]string // trace id → its spans' operation names, sorted
	var byID map[string]kit.Trace
	jaeger := kit.JaegerQuery{URL: base}
	kit.WaitUntil(t, timeout, "Jaeger to hold the trace of every request to service "+service, func() (bool, string, error) {
		got, err := jaeger.Traces(context.Background(), service)
		if err != nil {
			return false, err.Error(), nil
		}
		traces, byID = map[string][]string{}, map[string]kit.Trace{}
		for _, tr := range got {
			var ops []string
			for _, s := range tr.Spans {
				ops = append(ops, s.OperationName)
			}
			sort.Strings(ops)
			traces[strings.TrimLeft(tr.TraceID, "0")] = ops
			byID[strings.TrimLeft(tr.TraceID, "0")] = tr
		}
		found := 0
		for id := range want {
			if _, ok := traces[id]; ok {
				found++
			}
		}
		return found == len(want), fmt.Sprintf("%d of the %d traces, %d in all", found, len(want), len(traces)), nil
	})
	if len(traces) != len(want) {
		t.Fatalf("Jaeger: %d traces of service %s, want exactly the %d sent", len(traces), service, len(want))
	}
	for id := range want {
		if ops := traces[id]; len(ops) == 0 || !strings.HasPrefix(ops[0], "HTTP ") {
			t.Fatalf("Jaeger: trace %s has spans %v, want an HTTP server span", id, ops)
		}
	}
	return byID
}
