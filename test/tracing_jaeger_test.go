//go:build external

package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// waitTraces polls Jaeger until it holds want traces of the service with spans spans in all.
func waitTraces(t *testing.T, j *kit.Jaeger, service string, want, spans int) []kit.Trace {
	t.Helper()
	var got []kit.Trace
	kit.WaitUntil(t, 30*time.Second, fmt.Sprintf("Jaeger to hold %d traces with %d spans of %s", want, spans, service), func() (bool, string, error) {
		var err error
		if got, err = j.Traces(context.Background(), service); err != nil {
			return false, "", err
		}
		n := 0
		ids := make([]string, 0, len(got))
		for _, tr := range got {
			n += len(tr.Spans)
			ids = append(ids, fmt.Sprintf("%s(%d spans)", tr.TraceID, len(tr.Spans)))
		}
		return len(got) == want && n == spans, fmt.Sprintf("%d traces with %d spans: %v", len(got), n, ids), nil
	})
	return got
}

func randomHex(t *testing.T, bytes int) string {
	t.Helper()
	b := make([]byte, bytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sameID compares trace or span ids as hex, whatever their case and leading zeros.
func sameID(a, b string) bool {
	return strings.TrimLeft(strings.ToLower(a), "0") == strings.TrimLeft(strings.ToLower(b), "0")
}

// callerHeader builds the headers by which a caller hands over its trace and span.
type callerHeader func(traceID, spanID string) http.Header

var (
	uberTraceID callerHeader = func(tr, sp string) http.Header {
		return http.Header{"Uber-Trace-Id": {tr + ":" + sp + ":0:1"}}
	}
	b3Multi callerHeader = func(tr, sp string) http.Header {
		return http.Header{"X-B3-Traceid": {tr}, "X-B3-Spanid": {sp}, "X-B3-Sampled": {"1"}}
	}
	b3Single callerHeader = func(tr, sp string) http.Header {
		return http.Header{"B3": {tr + "-" + sp + "-1"}}
	}
	traceparent callerHeader = func(tr, sp string) http.Header {
		return http.Header{"Traceparent": {"00-" + tr + "-" + sp + "-01"}}
	}
)

// TestTracingReachesJaeger runs the real binary against a real Jaeger for every backend: each
// request is one trace in Jaeger, with its server span tagged and its delay as a child span; a
// caller's trace header is continued (and echoed); and the spans of the last request, answered
// just before SIGTERM, are delivered by the flush at shutdown.
func TestTracingReachesJaeger(t *testing.T) {
	j := kit.StartJaeger(t)
	tests := []struct {
		backend string
		target  string // the tracing config's keys for the backend
		callers map[string]callerHeader
	}{
		{"jaeger", fmt.Sprintf(`"jaeger": {"agent_addr": %q}`, j.AgentUDP),
			map[string]callerHeader{"uber-trace-id": uberTraceID, "B3": b3Multi}},
		{"zipkin", fmt.Sprintf(`"zipkin": {"url": "http://%s/api/v2/spans"}`, j.Zipkin),
			map[string]callerHeader{"B3": b3Multi, "b3 single": b3Single}},
		{"otlp", fmt.Sprintf(`"otlp": {"endpoint": %q, "insecure": true}`, j.OTLPHTTP),
			map[string]callerHeader{"traceparent": traceparent}},
	}
	for _, tc := range tests {
		t.Run(tc.backend, func(t *testing.T) {
			service := "anyroute-it-" + tc.backend
			p := start(t, fmt.Sprintf(`{
  "tracing": {"backend": %q, "service_name": %q, "sampler": {"type": "const", "param": 1}, %s},
  "routes": [{"name": "work", "match": "/work/*", "delay": "2ms"}, {"name": "boom", "match": "/boom", "status": 503}]
}`, tc.backend, service, tc.target))

			const n = 10
			ours := map[string]bool{} // trace ids the service started
			for i := range n {
				code, e := kit.Echo(t, "GET", p.api+"/work/"+strconv.Itoa(i)+"?secret=1", nil)
				if code != 200 || len(e.TraceID) != 32 || ours[e.TraceID] {
					t.Fatalf("request %d: %d trace_id %q", i, code, e.TraceID)
				}
				ours[e.TraceID] = true
			}
			callers := map[string]string{} // caller's trace id → caller's span id
			for name, header := range tc.callers {
				traceID, spanID := randomHex(t, 16), randomHex(t, 8)
				code, e := kit.Echo(t, "GET", p.api+"/work/continued", header(traceID, spanID))
				if code != 200 || e.TraceID != traceID {
					t.Errorf("%s: %d trace_id %q, want the caller's %s", name, code, e.TraceID, traceID)
				}
				callers[traceID] = spanID
			}
			code, boom := kit.Echo(t, "GET", p.api+"/boom", nil)
			if code != 503 {
				t.Fatalf("/boom: %d", code)
			}
			ours[boom.TraceID] = true
			_, last := kit.Echo(t, "GET", p.api+"/work/last", nil)
			ours[last.TraceID] = true
			p.SignalT(t, syscall.SIGTERM) // at once: the last spans are still in the reporter
			if code := p.WaitExit(t, 15*time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}

			want := len(ours) + len(callers)
			traces := waitTraces(t, j, service, want, 2*want-1) // server + delay span each, /boom has no delay
			t.Logf("%s: Jaeger holds %d traces of %s (%d started here, %d continued from callers)",
				tc.backend, len(traces), service, len(ours), len(callers))
			for _, tr := range traces {
				checkTrace(t, tr, ours, callers, boom.TraceID)
			}
		})
	}
}

// checkTrace checks one trace from Jaeger: known id, server span tags, delay span under it, and
// for a continued trace the caller's span as the server span's parent.
func checkTrace(t *testing.T, tr kit.Trace, ours map[string]bool, callers map[string]string, boomID string) {
	t.Helper()
	callerSpan := ""
	for id, sp := range callers {
		if sameID(id, tr.TraceID) {
			callerSpan = sp
		}
	}
	known := callerSpan != ""
	for id := range ours {
		known = known || sameID(id, tr.TraceID)
	}
	if !known {
		t.Errorf("trace %s: not one the test made", tr.TraceID)
		return
	}
	var serverID, delayParent string
	for _, s := range tr.Spans {
		tags := s.TagMap()
		switch strings.ToLower(s.OperationName) { // Zipkin lowercases span names
		case "http get":
			serverID = s.SpanID
			route, status := "work", "200"
			if sameID(tr.TraceID, boomID) {
				route, status = "boom", "503"
				if tags["error"] != "true" {
					t.Errorf("trace %s: a 503 without error=true: %v", tr.TraceID, tags)
				}
			}
			if tags["http.method"] != "GET" || !strings.HasPrefix(tags["http.url"], "/") || strings.Contains(tags["http.url"], "?") ||
				tags["http.status_code"] != status || tags["route"] != route || tags["span.kind"] != "server" {
				t.Errorf("trace %s: server span tags %v", tr.TraceID, tags)
			}
			if callerSpan != "" {
				if len(s.References) != 1 || !sameID(s.References[0].SpanID, callerSpan) {
					t.Errorf("trace %s: server span references %+v, want the caller's span %s", tr.TraceID, s.References, callerSpan)
				}
			} else if len(s.References) != 0 {
				t.Errorf("trace %s: a trace started here has a parent: %+v", tr.TraceID, s.References)
			}
		case "delay":
			if len(s.References) == 1 {
				delayParent = s.References[0].SpanID
			}
			if tags["delay"] != "2ms" {
				t.Errorf("trace %s: delay span tags %v", tr.TraceID, tags)
			}
		default:
			t.Errorf("trace %s: unexpected span %q", tr.TraceID, s.OperationName)
		}
	}
	if serverID == "" || (!sameID(tr.TraceID, boomID) && !sameID(delayParent, serverID)) {
		t.Errorf("trace %s: server span %q, delay span's parent %q", tr.TraceID, serverID, delayParent)
	}
}
