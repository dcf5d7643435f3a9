package tracing_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	kitendpoint "github.com/go-kit/kit/endpoint"
	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/opentracing/opentracing-go/mocktracer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/instrumenting/tracing/tracingtest"
	"github.com/anyroute/anyroute/service"
)

// mockBackend is go's OpenTracing mock tracer as a Backend: it reads the Mockpfx-Ids-* headers.
type mockBackend struct{ *mocktracer.MockTracer }

func (m mockBackend) Tracer(ext.SpanKindEnum) opentracing.Tracer { return m.MockTracer }
func (m mockBackend) Headers() []string                          { return []string{"mockpfx-ids-*", "mockpfx-baggage-*"} }
func (m mockBackend) Close(context.Context) error                { return nil }

func (m mockBackend) Span(span opentracing.Span) (string, bool) {
	sc, ok := span.Context().(mocktracer.MockSpanContext)
	if !ok {
		return "", false
	}
	return strconv.Itoa(sc.TraceID), sc.Sampled
}

func (m mockBackend) Sampled(span opentracing.Span) bool {
	_, sampled := m.Span(span)
	return sampled
}

func (m mockBackend) NotSampled(h http.Header, _, traceLow, spanID uint64) {
	sc := mocktracer.MockSpanContext{TraceID: int(traceLow >> 33), SpanID: int(spanID >> 33)}
	_ = m.Inject(sc, opentracing.HTTPHeaders, opentracing.HTTPHeadersCarrier(h))
}

func TestSamplers(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		sampler  config.Sampler
		min, max int
	}{
		{config.Sampler{Type: "const", Param: 1}, n, n},
		{config.Sampler{Type: "const", Param: 0}, 0, 0},
		{config.Sampler{Type: "probabilistic", Param: 0.1}, n / 20, n / 5},
		{config.Sampler{Type: "probabilistic", Param: 1}, n, n},
		{config.Sampler{Type: "probabilistic", Param: 0}, 0, 0},
		{config.Sampler{Type: "ratelimiting", Param: 5}, 5, 5}, // a burst of 5, then 5/s: max grows with the time taken
	} {
		sample, err := tracing.NewSampler(tc.sampler)
		if err != nil {
			t.Fatal(err)
		}
		sampled := 0
		begin := time.Now()
		for range n {
			if sample() {
				sampled++
			}
		}
		if tc.sampler.Type == "ratelimiting" { // the tokens that came in while it ran
			tc.max += int(tc.sampler.Param*time.Since(begin).Seconds()) + 1
		}
		if sampled < tc.min || sampled > tc.max {
			t.Errorf("%s %g: %d of %d sampled, want %d..%d", tc.sampler.Type, tc.sampler.Param, sampled, n, tc.min, tc.max)
		}
	}
	if _, err := tracing.NewSampler(config.Sampler{Type: "sometimes"}); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("unknown sampler: %v", err)
	}
}

// TestUnsampledRootCostsNoSpan: a request that starts a trace the sampler turns down gets no span,
// no trace id, and allocates what it would with tracing off: the decision comes before any work
// of the tracer.
func TestUnsampledRootCostsNoSpan(t *testing.T) {
	tracer := mocktracer.New()
	off := tracingtest.Handler(t, tracing.New(nil, tracing.Always), log.NewNopLogger())
	turnedDown := tracingtest.Handler(t, tracing.New(mockBackend{tracer}, tracing.Never), log.NewNopLogger())
	rec := httptest.NewRecorder()
	turnedDown.ServeHTTP(rec, httptest.NewRequest("GET", "/work/1", nil))
	if spans := tracer.FinishedSpans(); len(spans) != 0 {
		t.Errorf("%d spans, want none", len(spans))
	}
	if id := tracingtest.EchoTraceID(t, rec); id != "" {
		t.Errorf("trace_id %q, want none", id)
	}
	// Mallocs per request, averaged over many with the collector held off (a GC empties the
	// sync.Pools the request path draws on). The route is a delayed one: the access log boxes the
	// time a request took, which costs no allocation under 256 ns, so a route that answers at once
	// moved the count a whole allocation with the machine's speed. One allocation more per request
	// still shows as a difference of about 1.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	allocs := func(h http.Handler) float64 {
		const runs = 300
		serve := func() { h.ServeHTTP(&discard{header: http.Header{}}, httptest.NewRequest("GET", "/work/1", nil)) }
		serve()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			serve()
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / runs
	}
	if a, b := allocs(turnedDown), allocs(off); math.Abs(a-b) > 0.5 {
		t.Errorf("a request not sampled allocates %.2f times, %.2f with tracing off", a, b)
	}
}

// TestUnsampledDecisionIsPassedOn: the calls of a request that was not sampled get no client span
// and carry a trace context marked not sampled, which the upstream follows though its own sampler
// would take every trace.
func TestUnsampledDecisionIsPassedOn(t *testing.T) {
	tracer := mocktracer.New()
	tr := tracing.New(mockBackend{tracer}, tracing.Never)
	var called bool
	call := tr.Client()(func(ctx context.Context, _ any) (any, error) {
		called = opentracing.SpanFromContext(ctx) == nil
		return nil, nil
	})
	if _, _ = call(context.Background(), service.CallRequest{Route: "up"}); !called {
		t.Error("a call of an unsampled request was given a span")
	}
	out := httptest.NewRequest("GET", "/tea", nil)
	tr.ContextToHTTP(nil)(context.Background(), out)
	if out.Header.Get("Mockpfx-Ids-Sampled") != "false" || out.Header.Get("Mockpfx-Ids-Traceid") == "" {
		t.Fatalf("call headers %v, want a trace marked not sampled", out.Header)
	}
	upstream := mocktracer.New()
	rec := httptest.NewRecorder()
	tracingtest.Handler(t, tracing.New(mockBackend{upstream}, tracing.Always), log.NewNopLogger()).ServeHTTP(rec, out)
	spans := upstream.FinishedSpans()
	if len(spans) != 1 || spans[0].Context().(mocktracer.MockSpanContext).Sampled {
		t.Fatalf("upstream spans %v: want one, not sampled", spans)
	}
	if got, want := tracingtest.EchoTraceID(t, rec), out.Header.Get("Mockpfx-Ids-Traceid"); got != want {
		t.Errorf("upstream trace_id %q, want the caller's %s", got, want)
	}
	if len(tracer.FinishedSpans()) != 0 {
		t.Errorf("the caller made spans: %v", tracer.FinishedSpans())
	}
}

// discard is a ResponseWriter that keeps nothing, so allocation counts are the handler's.
type discard struct{ header http.Header }

func (w *discard) Header() http.Header         { return w.header }
func (w *discard) Write(p []byte) (int, error) { return len(p), nil }
func (w *discard) WriteHeader(int)             {}

func TestServerSpan(t *testing.T) {
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
			h := tracingtest.Handler(t, tracing.New(mockBackend{tracer}, tracing.Always), log.NewNopLogger())
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
			if got := tracingtest.EchoTraceID(t, rec); got != strconv.Itoa(server.SpanContext.TraceID) {
				t.Errorf("echo trace_id %q, want the server span's %d", got, server.SpanContext.TraceID)
			}
			path, _, _ := strings.Cut(tt.url, "?")
			wantTags := map[string]any{
				"span.kind": ext.SpanKindRPCServerEnum, "http.method": tt.method, "http.url": path,
				"http.status_code": tt.status, "route": tt.route,
			}
			if tt.isError {
				wantTags["error"] = true
			}
			if tt.delaySpan { // the work rule's fixed 1ms; see TestSpansSayWhyTheyTookTheirTime
				wantTags["distribution"] = "fixed"
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
				if d.Tag("delay") != "1ms" || d.Tag("route") != "work" {
					t.Errorf("delay span tags %v", d.Tags())
				}
				if d.StartTime.Before(server.StartTime) || d.FinishTime.After(server.FinishTime) || d.FinishTime.Sub(d.StartTime) < time.Millisecond {
					t.Errorf("delay span %v..%v must lie within the server span %v..%v and last the delay", d.StartTime, d.FinishTime, server.StartTime, server.FinishTime)
				}
			}
		})
	}
}

// TestUnsampledSpansAreNotTagged: a span the backend does not record gets no tags and no delay
// span, but the echo still names its trace.
func TestUnsampledSpansAreNotTagged(t *testing.T) {
	tracer := mocktracer.New()
	h := tracingtest.Handler(t, tracing.New(mockBackend{tracer}, tracing.Always), log.NewNopLogger())
	req := httptest.NewRequest("GET", "/work/1", nil)
	req.Header.Set("Mockpfx-Ids-Traceid", "99")
	req.Header.Set("Mockpfx-Ids-Spanid", "7")
	req.Header.Set("Mockpfx-Ids-Sampled", "false")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	spans := tracer.FinishedSpans()
	if len(spans) != 1 || spans[0].Tag("http.url") != nil || spans[0].Tag("route") != nil {
		t.Fatalf("spans %v: want the server span alone, untagged", spans)
	}
	if got := tracingtest.EchoTraceID(t, rec); got != "99" {
		t.Fatalf("echo trace_id %q, want the caller's 99", got)
	}
}

// TestTracingOffCostsNothing: without a backend every decorator is the identity.
func TestTracingOffCostsNothing(t *testing.T) {
	off := tracing.New(nil, tracing.Always)
	var called bool
	ep := func(context.Context, any) (any, error) { called = true; return nil, nil }
	wrapped := off.Server()(ep)
	if reflect.ValueOf(wrapped).Pointer() != reflect.ValueOf(kitendpoint.Endpoint(ep)).Pointer() {
		t.Error("Server without a backend must return the endpoint unwrapped")
	}
	_, _ = wrapped(context.Background(), nil)
	if !called {
		t.Error("endpoint not called")
	}
	svc, _ := service.New(nil, nil, service.Options{})
	if off.Delay()(svc) != svc {
		t.Error("Delay without a backend must return the service unwrapped")
	}
	ctx := context.Background()
	if off.HTTPToContext(nil)(ctx, httptest.NewRequest("GET", "/", nil)) != ctx {
		t.Error("HTTPToContext without a backend must leave the context alone")
	}
	req := &endpoint.HandleRequest{}
	if _, _ = off.Server()(kitendpoint.Nop)(ctx, req); req.TraceID != "" || req.TraceSampled {
		t.Errorf("trace without a backend: (%q, %v)", req.TraceID, req.TraceSampled)
	}
	if err := off.Close(ctx); err != nil {
		t.Error(err)
	}
}

// TestRequestsWithoutTraceHeadersSkipExtraction: extraction allocates, so a request with none of
// the backend's headers never reaches the tracer's Extract.
func TestRequestsWithoutTraceHeadersSkipExtraction(t *testing.T) {
	b := &countingBackend{mockBackend: mockBackend{mocktracer.New()}}
	before := tracing.New(b, tracing.Always).HTTPToContext(nil)
	for hdr, want := range map[string]int{"Accept": 0, "X-B3-Traceid": 0, "Mockpfx-Ids-Traceid": 1, "MOCKPFX-IDS-SPANID": 1} {
		b.extracts = 0
		req := httptest.NewRequest("GET", "/", nil)
		req.Header[hdr] = []string{"1"}
		before(context.Background(), req)
		if b.extracts != want {
			t.Errorf("header %s: %d extractions, want %d", hdr, b.extracts, want)
		}
	}
}

type countingBackend struct {
	mockBackend
	extracts int
}

func (c *countingBackend) Tracer(ext.SpanKindEnum) opentracing.Tracer { return countingTracer{c} }

type countingTracer struct{ c *countingBackend }

func (t countingTracer) StartSpan(name string, opts ...opentracing.StartSpanOption) opentracing.Span {
	return t.c.StartSpan(name, opts...)
}

func (t countingTracer) Inject(sc opentracing.SpanContext, format, carrier any) error {
	return t.c.Inject(sc, format, carrier)
}

func (t countingTracer) Extract(format, carrier any) (opentracing.SpanContext, error) {
	t.c.extracts++
	return t.c.Extract(format, carrier)
}

// TestOversizedTraceContextIsIgnored: trace headers past MaxTraceHeaderBytes in all (baggage
// included) start a trace of their own, without reaching the tracer's Extract.
func TestOversizedTraceContextIsIgnored(t *testing.T) {
	b := &countingBackend{mockBackend: mockBackend{mocktracer.New()}}
	before := tracing.New(b, tracing.Always).HTTPToContext(nil)
	for _, tt := range []struct {
		baggage  int
		extracts int
	}{{100, 1}, {tracing.MaxTraceHeaderBytes - 100, 1}, {tracing.MaxTraceHeaderBytes + 1, 0}, {200 << 10, 0}} {
		b.extracts = 0
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Mockpfx-Ids-Traceid", "1")
		req.Header.Set("Mockpfx-Ids-Spanid", "2")
		req.Header.Set("Mockpfx-Baggage-Big", strings.Repeat("v", tt.baggage))
		ctx := before(context.Background(), req)
		if b.extracts != tt.extracts || (tt.extracts == 0) != (opentracing.SpanFromContext(ctx) == nil) {
			t.Errorf("%d bytes of baggage: %d extractions, parent %t; want %d", tt.baggage, b.extracts, opentracing.SpanFromContext(ctx) != nil, tt.extracts)
		}
	}
}

func TestURLTagIsValidAndBounded(t *testing.T) {
	tracer := mocktracer.New()
	h := tracingtest.Handler(t, tracing.New(mockBackend{tracer}, tracing.Always), log.NewNopLogger())
	for _, path := range []string{"/ok/ünï", "/\xff\xfe", "/" + strings.Repeat("é", 2000), "/" + strings.Repeat("a", 5000)} {
		tracer.Reset()
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = path
		h.ServeHTTP(httptest.NewRecorder(), req)
		got, _ := tracer.FinishedSpans()[0].Tag("http.url").(string)
		if !utf8.ValidString(got) || len(got) > 1024 || !strings.HasPrefix(got, "/") {
			t.Errorf("http.url of %.20q...: %d bytes, valid UTF-8 %v", path, len(got), utf8.ValidString(got))
		}
		if len(path) <= 1024 && utf8.ValidString(path) && got != path {
			t.Errorf("http.url changed a fine path: %q", got)
		}
	}
}

func TestNewReportingRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := tracing.NewReporting(nil, reg, "app", "none"); err != nil {
		t.Fatal(err)
	}
	if _, err := tracing.NewReporting(nil, reg, "app", "none"); err == nil {
		t.Error("registering the dropped-spans metric twice must fail")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "app_tracing_spans_dropped_total" || len(mfs[0].GetMetric()) != 2 {
		t.Fatalf("gathered %v, want app_tracing_spans_dropped_total with both reasons", mfs)
	}
}

func TestThrottle(t *testing.T) {
	var lines []string
	logger := tracing.Throttle(log.LoggerFunc(func(kv ...any) error {
		b, _ := json.Marshal(kv)
		lines = append(lines, string(b))
		return nil
	}), 50*time.Millisecond)
	for range 5 {
		_ = logger.Log("msg", "down")
	}
	time.Sleep(60 * time.Millisecond)
	_ = logger.Log("msg", "still down")
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressed",4`) {
		t.Errorf("lines %q", lines)
	}
}

// TestKindAtStart: the wrapper hands span.kind to the tracer at start, and only for a kind.
func TestKindAtStart(t *testing.T) {
	tracer := mocktracer.New()
	tracing.KindAtStart(tracer, ext.SpanKindRPCClientEnum).StartSpan("x").Finish()
	if got := tracer.FinishedSpans()[0].Tag("span.kind"); got != ext.SpanKindRPCClientEnum {
		t.Fatalf("span.kind %v at start, want client", got)
	}
	if tracing.KindAtStart(tracer, "") != opentracing.Tracer(tracer) {
		t.Fatal("no kind: the tracer itself")
	}
}

// spanCounting counts the calls of Span, the backend's question that formats a trace id.
type spanCounting struct {
	mockBackend
	spans int
}

func (c *spanCounting) Span(span opentracing.Span) (string, bool) {
	c.spans++
	return c.mockBackend.Span(span)
}

// TestClientSpans: the call of a sampled request gets a client span named and tagged after the call
// and the answer's status; the call of a trace that is not sampled gets its span untagged. Neither
// asks the backend for a formatted trace id, which allocates: whether the span is sampled is all
// they need.
func TestClientSpans(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		tracer := mocktracer.New()
		b := &spanCounting{mockBackend: mockBackend{tracer}}
		tr := tracing.New(b, tracing.Always)
		server := tracer.StartSpan("server", opentracing.ChildOf(mocktracer.MockSpanContext{TraceID: 7, SpanID: 8, Sampled: sampled}))
		after := tr.ClientAfter()
		call := tr.Client()(func(ctx context.Context, _ any) (any, error) {
			after(ctx, &http.Response{StatusCode: 503})
			return nil, nil
		})
		if _, err := call(opentracing.ContextWithSpan(context.Background(), server), service.CallRequest{Call: service.Call{Name: "up"}, Route: "front"}); err != nil {
			t.Fatal(err)
		}
		spans := tracer.FinishedSpans()
		if len(spans) != 1 || spans[0].ParentID != server.Context().(mocktracer.MockSpanContext).SpanID {
			t.Fatalf("sampled %v: spans %v, want the call's, a child of the server span", sampled, spans)
		}
		want := map[string]any{"span.kind": ext.SpanKindRPCClientEnum}
		if sampled {
			want = map[string]any{"span.kind": ext.SpanKindRPCClientEnum, "call": "up", "route": "front",
				"http.status_code": uint16(503), "error": true}
		}
		if got := spans[0].Tags(); !reflect.DeepEqual(got, want) {
			t.Errorf("sampled %v: tags\n got %v\nwant %v", sampled, got, want)
		}
		if op := spans[0].OperationName; sampled && op != "call up" {
			t.Errorf("operation %q, want call up", op)
		}
		if b.spans != 0 {
			t.Errorf("sampled %v: the client decorators asked Span %d times", sampled, b.spans)
		}
	}
}

// TestFaultTagsTheServerSpan: the server span of a request whose answer a fault replaced says
// which (fault=<kind>, as app_requests_total's code label names it) and is an error even though
// the rule's status was 200, except for slow_body, whose client got the answer.
func TestFaultTagsTheServerSpan(t *testing.T) {
	for _, k := range service.FaultKinds {
		tracer := mocktracer.New()
		fault := &service.Fault{Kind: k, Rate: 1}
		ep := func(context.Context, any) (any, error) {
			return &endpoint.HandleResponse{Response: service.Response{Status: 200, Route: "r", Fault: fault}}, nil
		}
		traced := tracing.New(mockBackend{tracer}, tracing.Always).Server()(ep)
		if _, err := traced(context.Background(), &endpoint.HandleRequest{Request: service.Request{Method: "GET", Path: "/r"}}); err != nil {
			t.Fatal(err)
		}
		spans := tracer.FinishedSpans()
		if len(spans) != 1 {
			t.Fatalf("%v: %d spans", k, len(spans))
		}
		wantError := k != service.FaultSlowBody
		if got := spans[0].Tag("fault"); got != k.String() || (spans[0].Tag("error") == true) != wantError {
			t.Errorf("%v: tags %v; want fault=%s, error %v", k, spans[0].Tags(), k, wantError)
		}
	}
}

// TestSpansSayWhyTheyTookTheirTime: the server span and the delay span of a request both carry
// what decided its latency: the distribution, the draw's quantile (the one that gives back the
// delay the span reports: a uniform 2ms ± 1ms drew 1ms + q·2ms) and the CPU seconds burned; the
// delay span names the fault that replaced the answer after the wait, without calling the wait an
// error. A fixed delay has no quantile, and a request that waited for nothing and burned nothing
// has none of the tags.
func TestSpansSayWhyTheyTookTheirTime(t *testing.T) {
	ms := time.Millisecond
	router, err := service.New(nil, []service.Rule{
		{ID: 1, Name: "tail", Match: "/tail", Latency: service.Latency{Distribution: "uniform", Delay: 2 * ms, Jitter: ms},
			CPU: service.Latency{Delay: ms}, Faults: []service.Fault{{Kind: service.FaultSlowBody, Rate: 1, BytesPerSecond: 100}}},
		{ID: 2, Name: "flat", Match: "/flat", Latency: service.Latency{Delay: ms}},
	}, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	request := func(path string) (server, delay *mocktracer.MockSpan) {
		t.Helper()
		tracer := mocktracer.New()
		tr := tracing.New(mockBackend{tracer}, tracing.Always)
		ep := tr.Server()(endpoint.MakeHandleEndpoint(tr.Delay()(router)))
		if _, err := ep(context.Background(), &endpoint.HandleRequest{Request: service.Request{Method: "GET", Path: path}}); err != nil {
			t.Fatal(err)
		}
		spans := tracer.FinishedSpans()
		switch len(spans) {
		case 1:
			return spans[0], nil
		case 2:
			return spans[1], spans[0] // the delay span finishes first
		}
		t.Fatalf("%s: %d spans", path, len(spans))
		return nil, nil
	}

	server, delay := request("/tail")
	if delay == nil {
		t.Fatal("/tail: no delay span")
	}
	q, ok := server.Tag("quantile").(float64)
	if !ok || q < 0 || q > 1 {
		t.Fatalf("server span quantile %v (%T), want a float in [0, 1]", server.Tag("quantile"), server.Tag("quantile"))
	}
	drawn, err := time.ParseDuration(delay.Tag("delay").(string))
	if err != nil {
		t.Fatal(err)
	}
	if want := ms + time.Duration(q*float64(2*ms)); (drawn - want).Abs() > time.Microsecond {
		t.Errorf("delay %v at quantile %v; a uniform 2ms ± 1ms has %v there", drawn, q, want)
	}
	for name, span := range map[string]*mocktracer.MockSpan{"server": server, "delay": delay} {
		if span.Tag("distribution") != "uniform" || span.Tag("quantile") != q || span.Tag("fault") != "slow_body" {
			t.Errorf("%s span tags %v: want distribution uniform, quantile %v, fault slow_body", name, span.Tags(), q)
		}
		if cpu, ok := span.Tag("cpu").(float64); !ok || cpu < 0.001 || cpu > 0.05 {
			t.Errorf("%s span cpu %v (%T), want the 1ms burned, in seconds", name, span.Tag("cpu"), span.Tag("cpu"))
		}
	}
	if delay.Tag("error") != nil {
		t.Errorf("the delay span of a faulted answer is marked an error: %v", delay.Tags())
	}

	server, delay = request("/flat")
	for name, span := range map[string]*mocktracer.MockSpan{"server": server, "delay": delay} {
		if span.Tag("distribution") != "fixed" || span.Tag("quantile") != nil || span.Tag("cpu") != nil || span.Tag("fault") != nil {
			t.Errorf("%s span of a fixed delay: tags %v", name, span.Tags())
		}
	}

	server, delay = request("/nowhere")
	if delay != nil || server.Tag("distribution") != nil || server.Tag("quantile") != nil || server.Tag("cpu") != nil {
		t.Errorf("a request that waited for nothing: server span tags %v, delay span %v", server.Tags(), delay)
	}
}

// TestPhaseTagsServerAndDelaySpans: a response answered by a scenario phase's rules tags the
// server span and the delay span scenario.phase; one outside a scenario tags neither.
func TestPhaseTagsServerAndDelaySpans(t *testing.T) {
	for _, phase := range []string{"latency_regression", ""} {
		tracer := mocktracer.New()
		tr := tracing.New(mockBackend{tracer}, tracing.Always)
		svc := tr.Delay()(serviceFunc(func(context.Context, service.Request) (service.Response, error) {
			resp := service.Response{Status: 200, Route: "r", Delay: time.Millisecond}
			if phase != "" {
				resp.Phase = &phase
			}
			return resp, nil
		}))
		traced := tr.Server()(endpoint.MakeHandleEndpoint(svc))
		if _, err := traced(context.Background(), &endpoint.HandleRequest{Request: service.Request{Method: "GET", Path: "/r"}}); err != nil {
			t.Fatal(err)
		}
		spans := tracer.FinishedSpans()
		if len(spans) != 2 {
			t.Fatalf("phase %q: %d spans, want the delay span and the server span", phase, len(spans))
		}
		for _, s := range spans {
			got, tagged := s.Tags()["scenario.phase"]
			if phase == "" && tagged {
				t.Errorf("span %s outside a scenario tagged scenario.phase=%v", s.OperationName, got)
			}
			if phase != "" && got != phase {
				t.Errorf("span %s: scenario.phase %v, want %q (tags %v)", s.OperationName, got, phase, s.Tags())
			}
		}
	}
}

type serviceFunc func(context.Context, service.Request) (service.Response, error)

func (f serviceFunc) Handle(ctx context.Context, r service.Request) (service.Response, error) {
	return f(ctx, r)
}

// TestClientSubjectTagsTheServerSpan: the subject of a verified client certificate (mTLS) is on
// the request's server span as tls.client.subject; a request without one gets no such tag.
func TestClientSubjectTagsTheServerSpan(t *testing.T) {
	for _, subject := range []string{"CN=client-a,O=anyroute tests", ""} {
		tracer := mocktracer.New()
		ep := func(context.Context, any) (any, error) {
			return &endpoint.HandleResponse{Response: service.Response{Status: 200, Route: "r"}}, nil
		}
		identity := func(context.Context) string { return subject }
		traced := tracing.New(mockBackend{tracer}, tracing.Always, tracing.ClientSubject(identity)).Server()(ep)
		req := &endpoint.HandleRequest{Request: service.Request{Method: "GET", Path: "/r"}}
		if _, err := traced(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		spans := tracer.FinishedSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans", len(spans))
		}
		got, tagged := spans[0].Tags()["tls.client.subject"]
		if (subject == "") == tagged || (tagged && got != subject) {
			t.Errorf("subject %q: tags %v", subject, spans[0].Tags())
		}
	}
}
