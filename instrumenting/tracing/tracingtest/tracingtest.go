// Package tracingtest holds what every tracing backend is tested against: the traced handler as
// cmd/anyroute wires it, and a suite of behaviours each backend package runs on its own backend
// (garbage headers, a caller's trace continued, lost spans counted, a stuck collector, samplers).
// Keeping the suite here and its runs in the backends' packages lets a backend be deleted with its
// tests and nothing else.
package tracingtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/service"
	"github.com/anyroute/anyroute/transport"
)

// Rules are the route rules of Handler: a delayed route, a 503 and a 418.
var Rules = []service.Rule{
	{ID: 1, Name: "work", Match: "/work/*", Latency: service.Latency{Delay: time.Millisecond}},
	{ID: 2, Name: "boom", Match: "/boom", Status: 503},
	{ID: 3, Name: "tea", Match: "/tea", Status: 418},
}

// Handler is the API handler as cmd/anyroute wires it, tracing only: the before-func, Server around
// the endpoint with the access log inside it (every request logged to logger), Delay around the
// service. Bodies past 16 bytes are refused.
func Handler(t testing.TB, tr *tracing.Tracing, logger log.Logger) http.Handler {
	t.Helper()
	router, err := service.New(nil, Rules, service.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := tr.Delay()(router)
	ep := kitendpoint.Chain(tr.Server(), endpoint.AccessLog(logger, 1))(endpoint.MakeHandleEndpoint(svc))
	return transport.NewHTTPHandler(ep, transport.Options{
		MaxBodyBytes: 16,
		Instance:     "test",
		Before:       []kithttp.RequestFunc{tr.HTTPToContext(logger)},
	})
}

// EchoTraceID returns the trace id an answer echoed.
func EchoTraceID(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e transport.Echo
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("echo %q: %v", rec.Body.String(), err)
	}
	return e.TraceID
}

// Suite is one backend under test.
type Suite struct {
	Backend string // the tracing.backend value: jaeger, zipkin, otlp
	New     func(config.Tracing, tracing.Reporting) (tracing.Backend, error)
	// At points cfg at a collector that takes spans over HTTP at addr (host:port).
	At func(cfg config.Tracing, addr string) config.Tracing
	// Callers build the headers by which a caller hands over its trace (32 hex digits) and span
	// (16 hex digits), in each of the backend's formats.
	Callers map[string]func(traceID, spanID string) map[string]string
	// SampledAllocs is what Backend.Sampled may allocate: 0 but for a library that hands out its
	// span context only by value, boxed into an interface.
	SampledAllocs float64
}

// Config is a tracing config of the backend with every endpoint at a closed port.
func (s Suite) Config(t testing.TB) config.Tracing {
	cfg := config.Default().Tracing
	cfg.Backend = s.Backend
	cfg.ServiceName = "anyroute-test"
	cfg.Jaeger.AgentAddr = ClosedAddr(t, "udp")
	cfg.Zipkin.URL = "http://" + ClosedAddr(t, "tcp") + "/api/v2/spans"
	cfg.OTLP.Endpoint = ClosedAddr(t, "tcp")
	return cfg
}

// Start makes the backend of cfg, reporting to reg (nil: nowhere), and schedules its close.
func (s Suite) Start(t testing.TB, cfg config.Tracing, reg prometheus.Registerer) (tracing.Backend, func() error) {
	t.Helper()
	r, err := tracing.NewReporting(log.NewNopLogger(), reg, "", s.Backend)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.New(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var closeErr error
	closeFn := func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			closeErr = b.Close(ctx)
		})
		return closeErr
	}
	t.Cleanup(func() { _ = closeFn() })
	return b, closeFn
}

// Run runs every test of the suite.
func (s Suite) Run(t *testing.T) {
	t.Run("BadHeaders", s.testBadHeaders)
	t.Run("TraceIDFollowsTheCaller", s.testTraceIDFollowsTheCaller)
	t.Run("DroppedSpansAreCounted", s.testDroppedSpansAreCounted)
	t.Run("StuckBackendFillsTheQueue", s.testStuckBackendFillsTheQueue)
	t.Run("FollowsTheDecision", s.testFollowsTheDecision)
	t.Run("TraceOnTheRequest", s.testTraceOnTheRequest)
	t.Run("BigBaggageIsBounded", s.testBigBaggageIsBounded)
}

// testBigBaggageIsBounded: 190 KiB of baggage, and thousands of small items, in every format the
// libraries read cost a request no more than a small allocation budget, since trace headers past
// tracing.MaxTraceHeaderBytes are not extracted at all (unbounded, jaeger-client-go allocated
// 950 KB per request for this, a map entry per item).
func (s Suite) testBigBaggageIsBounded(t *testing.T) {
	b, _ := s.Start(t, s.Config(t), nil)
	h := Handler(t, tracing.New(b, tracing.Always), log.NewNopLogger())
	big := strings.Repeat("v", 190<<10)
	req := httptest.NewRequest("GET", "/tea", nil)
	for _, header := range s.Callers {
		for k, v := range header("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7") {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("uberctx-k", big)
	req.Header.Set("jaeger-baggage", "k="+big)
	req.Header.Set("baggage", "k="+big)
	// And as many small items, each a map entry in the span context.
	var pairs []string
	for i := range 2000 {
		req.Header.Set(fmt.Sprintf("uberctx-k%d", i), "v")
		pairs = append(pairs, fmt.Sprintf("k%d=v", i))
	}
	req.Header.Set("jaeger-baggage", strings.Join(pairs, ","))
	req.Header.Set("ot-baggage-k", big)
	const n = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 418 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 64<<10 {
		t.Fatalf("%d bytes allocated per request with 190 KiB and 4,000 items of baggage, want at most 64 KiB", per)
	}
}

// testBadHeaders sends trace headers that are garbage or huge: each request is answered and starts
// a trace of its own.
func (s Suite) testBadHeaders(t *testing.T) {
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
	b, _ := s.Start(t, s.Config(t), nil)
	h := Handler(t, tracing.New(b, tracing.Always), log.NewNopLogger())
	seen := map[string]bool{}
	for i, hdr := range headers {
		req := httptest.NewRequest("GET", "/tea", nil)
		for k, v := range hdr {
			req.Header[k] = []string{v}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		id := EchoTraceID(t, rec)
		if rec.Code != 418 || id == "" {
			t.Errorf("headers %d: status %d trace_id %q", i, rec.Code, id)
		}
		if seen[id] {
			t.Errorf("headers %d: trace_id %s reused", i, id)
		}
		seen[id] = true
	}
}

// testTraceIDFollowsTheCaller checks that the echo's trace_id and the access log show the trace id
// the caller sent in each of the backend's formats, and a fresh one otherwise.
func (s Suite) testTraceIDFollowsTheCaller(t *testing.T) {
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for name, header := range s.Callers {
		t.Run(name, func(t *testing.T) {
			b, _ := s.Start(t, s.Config(t), nil)
			var logs strings.Builder
			h := Handler(t, tracing.New(b, tracing.Always), log.NewLogfmtLogger(&logs))

			req := httptest.NewRequest("GET", "/work/1", nil)
			for k, v := range header(traceID, spanID) {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := EchoTraceID(t, rec); got != traceID {
				t.Errorf("echo trace_id %q, want the caller's %s", got, traceID)
			}
			if !strings.Contains(logs.String(), "trace_id="+traceID) {
				t.Errorf("access log lacks trace_id=%s:\n%s", traceID, logs.String())
			}

			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/work/2", nil))
			if got := EchoTraceID(t, rec); len(got) != 32 || got == traceID {
				t.Errorf("without a caller: trace_id %q, want a new 32-digit id", got)
			}
		})
	}
}

// testDroppedSpansAreCounted: every span a collector refuses, or cannot be reached for, is counted
// as send_failed once the backend has closed; a collector that takes them all counts none.
func (s Suite) testDroppedSpansAreCounted(t *testing.T) {
	const n = 25
	for _, tc := range []struct {
		name string
		addr func(testing.TB) string
		want float64
	}{
		{"refused", func(t testing.TB) string { return Collector(t, http.StatusServiceUnavailable) }, n},
		{"down", func(t testing.TB) string { return ClosedAddr(t, "tcp") }, n},
		{"accepted", func(t testing.TB) string { return Collector(t, http.StatusAccepted) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			b, closeBackend := s.Start(t, s.At(s.Config(t), tc.addr(t)), reg)
			tracer := b.Tracer("")
			for range n {
				tracer.StartSpan("work").Finish()
			}
			_ = closeBackend()
			if got := Dropped(t, reg); got["send_failed"] != tc.want || got["queue_full"] != 0 {
				t.Errorf("dropped %v, want send_failed %v", got, tc.want)
			}
		})
	}
}

// testStuckBackendFillsTheQueue: a collector that never answers makes the reporter hold its queue's
// worth of spans and drop (and count) the rest, without slowing anyone finishing a span.
func (s Suite) testStuckBackendFillsTheQueue(t *testing.T) {
	const extra = 500
	reg := prometheus.NewPedanticRegistry()
	r, err := tracing.NewReporting(log.NewNopLogger(), reg, "", s.Backend)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.New(s.At(s.Config(t), HangingCollector(t)), r)
	if err != nil {
		t.Fatal(err)
	}
	tracer := b.Tracer("")
	begin := time.Now()
	for range tracing.MaxPendingSpans + extra {
		tracer.StartSpan("work").Finish()
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("finishing %d spans took %v with the collector stuck", tracing.MaxPendingSpans+extra, took)
	}
	got := Dropped(t, reg)["queue_full"]
	// A gate is exact; jaeger's own queue has taken a batch off before the send got stuck.
	if got > extra || got < extra-200 || (s.Backend != "jaeger" && got != extra) {
		t.Errorf("queue_full %v, want about %d", got, extra)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); err == nil {
		t.Error("closing with the collector stuck should report the flush as cut short")
	}
}

// testFollowsTheDecision: the backend samples every root it is given (the head decision was the
// Sampler's, made before), follows a caller's decision, and reads what NotSampled writes as the
// same trace, not sampled, whatever the backend's headers.
func (s Suite) testFollowsTheDecision(t *testing.T) {
	b, _ := s.Start(t, s.Config(t), nil) // the default config samples 1 in 100: the backend must not
	server := b.Tracer(ext.SpanKindRPCServerEnum)
	for range 100 {
		root := server.StartSpan("x")
		if !b.Sampled(root) {
			t.Fatal("a root span is not sampled: the backend made a decision of its own")
		}
		root.Finish()
	}
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for name, header := range s.Callers {
		span := s.childOf(t, b, header(traceID, spanID))
		if !b.Sampled(span) {
			t.Errorf("%s: the caller's sampled trace is not sampled", name)
		}
		span.Finish()
	}
	h := http.Header{}
	b.NotSampled(h, 0x4bf92f3577b34da6, 0xa3ce929d0e0e4736, 0x00f067aa0ba902b7)
	span := s.childOf(t, b, h)
	if id, sampled := b.Span(span); sampled || id != traceID {
		t.Errorf("after NotSampled %v: trace %q sampled %v, want %s not sampled", h, id, sampled, traceID)
	}
	span.Finish()
}

// childOf starts a server span under the trace context in headers, as HTTPToContext and Server do;
// the caller finishes it.
func (s Suite) childOf(t *testing.T, b tracing.Backend, headers any) opentracing.Span {
	t.Helper()
	carrier := opentracing.HTTPHeadersCarrier{}
	switch h := headers.(type) {
	case http.Header:
		carrier = opentracing.HTTPHeadersCarrier(h)
	case map[string]string:
		for k, v := range h {
			http.Header(carrier).Set(k, v)
		}
	}
	server := b.Tracer(ext.SpanKindRPCServerEnum)
	sc, err := server.Extract(opentracing.HTTPHeaders, carrier)
	if err != nil {
		t.Fatalf("extracting %v: %v", headers, err)
	}
	return server.StartSpan("x", opentracing.ChildOf(sc))
}

// testTraceOnTheRequest: Sampled agrees with Span, and Server carries on the request what Span
// says of the request's span, the trace id and whether it is sampled, for a root it starts and for
// a caller's trace that is not sampled. A request without a span (the Sampler turned it down, or
// tracing is off) carries neither. The layers below Server (counting's exemplars, recovery, the
// access log, the delay span) read only that.
func (s Suite) testTraceOnTheRequest(t *testing.T) {
	b, _ := s.Start(t, s.Config(t), nil)
	notSampled := http.Header{}
	b.NotSampled(notSampled, 1, 2, 3)
	// carried runs one request through tr's Server, after HTTPToContext read header, and returns
	// what the endpoint inside found on the request, and what the backend says of its span.
	carried := func(tr *tracing.Tracing, header http.Header) (req service.Request, spanID string, spanSampled bool) {
		ep := tr.Server()(func(ctx context.Context, request any) (any, error) {
			req = request.(*endpoint.HandleRequest).Request
			if span := opentracing.SpanFromContext(ctx); span != nil {
				spanID, spanSampled = b.Span(span)
				if b.Sampled(span) != spanSampled {
					t.Errorf("Sampled %v, Span says %v", b.Sampled(span), spanSampled)
				}
				if n := fewestAllocs(func() { _ = b.Sampled(span) }); n != s.SampledAllocs {
					t.Errorf("sampled %v: Sampled allocates %v times, want %v", spanSampled, n, s.SampledAllocs)
				}
			}
			return &endpoint.HandleResponse{}, nil
		})
		r := httptest.NewRequest("GET", "/tea", nil)
		r.Header = header
		if _, err := ep(tr.HTTPToContext(nil)(context.Background(), r), &endpoint.HandleRequest{Request: service.Request{Method: "GET", Path: "/tea"}}); err != nil {
			t.Fatal(err)
		}
		return req, spanID, spanSampled
	}
	for _, sampled := range []bool{true, false} {
		header := http.Header{}
		if !sampled {
			header = notSampled.Clone()
		}
		req, id, ok := carried(tracing.New(b, tracing.Always), header)
		if ok != sampled || id == "" {
			t.Errorf("sampled %v: the span's trace %q sampled %v", sampled, id, ok)
		}
		if req.TraceID != id || req.TraceSampled != sampled {
			t.Errorf("sampled %v: the request carries (%q, %v), the span is %q", sampled, req.TraceID, req.TraceSampled, id)
		}
	}
	if req, _, _ := carried(tracing.New(b, tracing.Never), http.Header{}); req.TraceID != "" || req.TraceSampled {
		t.Errorf("turned down by the Sampler: the request carries (%q, %v)", req.TraceID, req.TraceSampled)
	}
	if req, _, _ := carried(tracing.New(nil, tracing.Always), http.Header{}); req.TraceID != "" || req.TraceSampled {
		t.Errorf("tracing off: the request carries (%q, %v)", req.TraceID, req.TraceSampled)
	}
}

// Fuzz sends arbitrary trace headers (Jaeger's, B3 single and multi, W3C) through the traced
// handler: it never panics, always answers, and always echoes a trace id of 16 or 32 hex digits,
// the caller's when valid or a fresh one.
func (s Suite) Fuzz(f *testing.F) {
	f.Add("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1", "", "", "")
	f.Add("", "4bf92f3577b34da6-00f067aa0ba902b7-1", "", "")
	f.Add("", "", "00f067aa0ba902b7", "")
	f.Add("", "", "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("\xff:\xff:0:1", "-", "zz", "00--")
	b, _ := s.Start(f, s.Config(f), nil)
	h := Handler(f, tracing.New(b, tracing.Always), log.NewNopLogger())
	f.Fuzz(func(t *testing.T, uber, b3, xb3, traceparent string) {
		req := httptest.NewRequest("GET", "/tea", nil)
		for k, v := range map[string]string{"uber-trace-id": uber, "b3": b3, "X-B3-TraceId": xb3, "X-B3-SpanId": xb3, "traceparent": traceparent} {
			if v != "" {
				req.Header[k] = []string{v}
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if id := EchoTraceID(t, rec); rec.Code != 418 || !isHexID(id) {
			t.Fatalf("status %d, trace_id %q", rec.Code, id)
		}
	})
}

func isHexID(s string) bool {
	if len(s) != 16 && len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ClosedAddr returns a loopback address that nothing listens on (something did a moment ago).
func ClosedAddr(t testing.TB, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Collector answers every span batch with status; it returns its host:port.
func Collector(t testing.TB, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// HangingCollector accepts connections and never answers; it returns its host:port.
func HangingCollector(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// Dropped reads tracing_spans_dropped_total by reason.
func Dropped(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tracing_spans_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// fewestAllocs is the fewest allocations per call of f over a few rounds of AllocsPerRun. That
// counts every goroutine's allocations, and the backend started for the test has its own (a
// reporter flushing, an HTTP sender): they can only add to f's, so the least of the rounds is f's.
func fewestAllocs(f func()) float64 {
	fewest := math.Inf(1)
	for range 5 {
		fewest = min(fewest, testing.AllocsPerRun(100, f))
	}
	return fewest
}
