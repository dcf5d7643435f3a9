package instrumenting

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/opentracing/opentracing-go/mocktracer"
	"github.com/uber/jaeger-client-go"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
	"github.com/anyroute/anyroute/transport"
)

var tracedRules = []service.Rule{
	{Name: "work", Match: "/work/*", Delay: time.Millisecond},
	{Name: "boom", Match: "/boom", Status: 503},
	{Name: "tea", Match: "/tea", Status: 418},
}

// tracedHandler is the API handler as cmd/anyroute wires it, tracing only: before-func, Tracing
// around the endpoint, TraceDelay around the service.
func tracedHandler(t testing.TB, tracer opentracing.Tracer, logger log.Logger) http.Handler {
	t.Helper()
	svc, err := service.New(tracedRules)
	if err != nil {
		t.Fatal(err)
	}
	svc = TraceDelay(tracer, tracedRules)(svc)
	ep := kitendpoint.Chain(Tracing(tracer), AccessLog(logger, 1, TraceID))(endpoint.MakeHandleEndpoint(svc))
	return transport.NewHTTPHandler(ep, transport.Options{
		MaxBodyBytes: 16,
		Instance:     "test",
		TraceID:      TraceID,
		Before:       []kithttp.RequestFunc{HTTPToContext(tracer, logger)},
	})
}

func TestTracingServerSpan(t *testing.T) {
	tests := []struct {
		name          string
		method, url   string
		body          string
		header        map[string]string
		op            string
		status        uint16
		route         string
		isError       bool
		delaySpan     bool
		traceID, prnt int // the caller's trace and span, 0 for a new trace
	}{
		{name: "delayed rule", method: "GET", url: "/work/1?token=secret", op: "HTTP GET", status: 200, route: "work", delaySpan: true},
		{name: "5xx is an error", method: "POST", url: "/boom", op: "HTTP POST", status: 503, route: "boom", isError: true},
		{name: "4xx is not", method: "DELETE", url: "/tea", op: "HTTP DELETE", status: 418, route: "tea"},
		{name: "non-standard method", method: "PURGE", url: "/anything", op: "HTTP OTHER", status: 200, route: "other"},
		{name: "refused body has no delay span", method: "PUT", url: "/work/2", body: strings.Repeat("x", 17), op: "HTTP PUT", status: 413, route: "work"},
		{name: "caller's trace continues", method: "GET", url: "/work/3",
			header: map[string]string{"Mockpfx-Ids-Traceid": "4242", "Mockpfx-Ids-Spanid": "77", "Mockpfx-Ids-Sampled": "true"},
			op:     "HTTP GET", status: 200, route: "work", delaySpan: true, traceID: 4242, prnt: 77},
		{name: "garbage header starts a new trace", method: "GET", url: "/tea",
			header: map[string]string{"Mockpfx-Ids-Traceid": "not-a-number", "Mockpfx-Ids-Spanid": "1"},
			op:     "HTTP GET", status: 418, route: "tea"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tracer := mocktracer.New()
			h := tracedHandler(t, tracer, log.NewNopLogger())
			req := httptest.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != int(tt.status) {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}

			spans := tracer.FinishedSpans()
			want := 1
			if tt.delaySpan {
				want = 2
			}
			if len(spans) != want {
				t.Fatalf("%d finished spans, want %d (one server span per request, no span left unfinished): %v", len(spans), want, spans)
			}
			server := spans[len(spans)-1] // the delay span finishes first
			if server.OperationName != tt.op {
				t.Errorf("operation %q, want %q", server.OperationName, tt.op)
			}
			path, _, _ := strings.Cut(tt.url, "?")
			wantTags := map[string]any{
				"span.kind": ext.SpanKindRPCServerEnum, "http.method": tt.method, "http.url": path,
				"http.status_code": tt.status, "route": tt.route,
			}
			if tt.isError {
				wantTags["error"] = true
			}
			if got := server.Tags(); !reflect.DeepEqual(got, wantTags) {
				t.Errorf("tags\n got %v\nwant %v", got, wantTags)
			}
			if tt.traceID != 0 && (server.SpanContext.TraceID != tt.traceID || server.ParentID != tt.prnt) {
				t.Errorf("trace %d parent %d, want the caller's trace %d and span %d",
					server.SpanContext.TraceID, server.ParentID, tt.traceID, tt.prnt)
			}
			if tt.traceID == 0 && server.ParentID != 0 {
				t.Errorf("parent %d, want a new trace", server.ParentID)
			}
			if tt.delaySpan {
				d := spans[0]
				if d.OperationName != "delay" || d.ParentID != server.SpanContext.SpanID || d.SpanContext.TraceID != server.SpanContext.TraceID {
					t.Errorf("delay span %q parent %d trace %d, want a child of span %d", d.OperationName, d.ParentID, d.SpanContext.TraceID, server.SpanContext.SpanID)
				}
				if d.Tag("delay.configured") != "1ms" || d.Tag("route") != "work" {
					t.Errorf("delay span tags %v", d.Tags())
				}
				if d.StartTime.Before(server.StartTime) || d.FinishTime.After(server.FinishTime) || d.FinishTime.Sub(d.StartTime) < time.Millisecond {
					t.Errorf("delay span %v..%v must lie within the server span %v..%v and last the delay", d.StartTime, d.FinishTime, server.StartTime, server.FinishTime)
				}
			}
		})
	}
}

// TestTracingBadHeaders sends trace headers that are garbage or huge to every real backend: each
// request is answered and starts a trace of its own.
func TestTracingBadHeaders(t *testing.T) {
	huge := strings.Repeat("f", 60<<10)
	headers := []map[string]string{
		{"uber-trace-id": huge},
		{"uber-trace-id": strings.Repeat(":", 60<<10)},
		{"uber-trace-id": "zz:zz:zz:zz"},
		{"uber-trace-id": "1:2:3:999999999999"},
		{"uberctx-" + huge[:100]: huge[:1000], "jaeger-baggage": strings.Repeat("k=v,", 1000)},
		{"X-B3-TraceId": huge, "X-B3-SpanId": "-1", "X-B3-Sampled": "maybe"},
		{"X-B3-TraceId": "0000000000000000", "X-B3-SpanId": "0000000000000000"},
		{"b3": "----"},
		{"b3": huge},
		{"traceparent": "00-" + huge},
		{"traceparent": "ff-00000000000000000000000000000000-0000000000000000-01"},
		{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": huge, "baggage": huge},
		{"Mockpfx-Ids-Traceid": huge},
		{"traceparent": "\x00\xff\xfe", "b3": "\xff", "uber-trace-id": "\xff:\xff:\xff:\xff"},
	}
	for _, backend := range []string{"jaeger", "zipkin", "otlp"} {
		t.Run(backend, func(t *testing.T) {
			tracer, closeTracer := newTestTracer(t, backend, nil)
			defer closeTracer()
			h := tracedHandler(t, tracer, log.NewNopLogger())
			seen := map[string]bool{}
			for i, hdr := range headers {
				req := httptest.NewRequest("GET", "/tea", nil)
				for k, v := range hdr {
					req.Header[k] = []string{v}
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				id := echoTraceID(t, rec)
				if rec.Code != 418 || id == "" {
					t.Errorf("headers %d: status %d trace_id %q", i, rec.Code, id)
				}
				if seen[id] {
					t.Errorf("headers %d: trace_id %s reused", i, id)
				}
				seen[id] = true
			}
		})
	}
}

// TestTraceIDFollowsTheCaller checks, for every backend, that the echo's trace_id and the access
// log show the trace id the caller sent in the backend's own header, and a fresh one otherwise.
func TestTraceIDFollowsTheCaller(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		backend string
		header  map[string]string
	}{
		{"jaeger", map[string]string{"uber-trace-id": traceID + ":00f067aa0ba902b7:0:1"}},
		{"jaeger", map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": "00f067aa0ba902b7", "X-B3-Sampled": "1"}},
		{"zipkin", map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": "00f067aa0ba902b7", "X-B3-Sampled": "1"}},
		{"zipkin", map[string]string{"b3": traceID + "-00f067aa0ba902b7-1"}},
		{"otlp", map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			tracer, closeTracer := newTestTracer(t, tt.backend, nil)
			defer closeTracer()
			var logs bytes.Buffer
			h := tracedHandler(t, tracer, log.NewLogfmtLogger(&logs))

			req := httptest.NewRequest("GET", "/work/1", nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := echoTraceID(t, rec); got != traceID {
				t.Errorf("echo trace_id %q, want the caller's %s", got, traceID)
			}
			if !strings.Contains(logs.String(), "trace_id="+traceID) {
				t.Errorf("access log lacks trace_id=%s:\n%s", traceID, logs.String())
			}

			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/work/2", nil))
			if got := echoTraceID(t, rec); len(got) != 32 || got == traceID {
				t.Errorf("without a caller: trace_id %q, want a new 32-digit id", got)
			}
		})
	}
}

func TestNoopTracerCostsNothing(t *testing.T) {
	var called bool
	ep := func(context.Context, any) (any, error) { called = true; return nil, nil }
	wrapped := Tracing(opentracing.NoopTracer{})(ep)
	if reflect.ValueOf(wrapped).Pointer() != reflect.ValueOf(kitendpoint.Endpoint(ep)).Pointer() {
		t.Error("Tracing with a no-op tracer must return the endpoint unwrapped")
	}
	_, _ = wrapped(context.Background(), nil)
	if !called {
		t.Error("endpoint not called")
	}
	svc, _ := service.New(nil)
	if TraceDelay(opentracing.NoopTracer{}, nil)(svc) != svc {
		t.Error("TraceDelay with a no-op tracer must return the service unwrapped")
	}
	ctx := context.Background()
	if HTTPToContext(opentracing.NoopTracer{}, nil)(ctx, httptest.NewRequest("GET", "/", nil)) != ctx {
		t.Error("HTTPToContext with a no-op tracer must leave the context alone")
	}
	if id := TraceID(ctx); id != "" {
		t.Errorf("TraceID without a span: %q", id)
	}
}

func TestURLTag(t *testing.T) {
	for _, path := range []string{"/ok/ünï", "/\xff\xfe", "/" + strings.Repeat("é", 2000), "/" + strings.Repeat("a", 5000)} {
		got := urlTag(path)
		if !utf8.ValidString(got) || len(got) > maxURLTag {
			t.Errorf("urlTag(%.20q...) = %d bytes, valid UTF-8 %v", path, len(got), utf8.ValidString(got))
		}
		if len(path) <= maxURLTag && utf8.ValidString(path) && got != path {
			t.Errorf("urlTag changed a fine path: %q", got)
		}
	}
}

func TestHexIDMatchesTheLibraries(t *testing.T) {
	for _, id := range []jaeger.TraceID{{High: 0, Low: 1}, {High: 0, Low: 0xfedcba9876543210}, {High: 1, Low: 0}, {High: 0x4bf92f3577b34da6, Low: 0xa3ce929d0e0e4736}} {
		if got := hexID(id.High, id.Low); got != id.String() {
			t.Errorf("hexID(%x, %x) = %s, want %s", id.High, id.Low, got, id.String())
		}
	}
	if hexID(0, 0) != "" {
		t.Error("an invalid id must give \"\"")
	}
}
