package instrumenting

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kitot "github.com/go-kit/kit/tracing/opentracing"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	zipkinot "github.com/openzipkin-contrib/zipkin-go-opentracing"
	"github.com/uber/jaeger-client-go"
	otbridge "go.opentelemetry.io/otel/bridge/opentracing"
	"go.opentelemetry.io/otel/trace"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

// maxURLTag bounds the http.url tag: a path may be as long as the header limit allows.
const maxURLTag = 1024

// Tracing returns the endpoint middleware that records one server span per request, with go-kit's
// TraceServer. The span continues the caller's trace when HTTPToContext found one, is named
// "HTTP <METHOD>" (non-standard methods share "HTTP OTHER", so operation names stay bounded) and
// carries http.method, http.url (the path, never the query), http.status_code, route, and
// error=true when the status is 5xx. With a no-op tracer the endpoint is returned unwrapped.
func Tracing(tracer opentracing.Tracer) kitendpoint.Middleware {
	if isNoop(tracer) {
		return func(next kitendpoint.Endpoint) kitendpoint.Endpoint { return next }
	}
	// The OpenTelemetry bridge and zipkin-go-opentracing read span.kind only when a span starts,
	// and TraceServer sets it after: say it at the start too, or their spans lose their kind.
	// (jaeger-client-go takes it either way and would record it twice.)
	if _, ok := tracer.(*jaeger.Tracer); !ok {
		tracer = startAsServer{tracer}
	}
	// Business errors (an injected 500, a 413) are logged on the span by TraceServer; whether they
	// mark it as an error is decided by the status, below.
	server := kitot.TraceServer(tracer, "HTTP", kitot.WithIgnoreBusinessError(true))
	return func(next kitendpoint.Endpoint) kitendpoint.Endpoint {
		return server(tagServerSpan(next))
	}
}

type startAsServer struct{ opentracing.Tracer }

func (t startAsServer) StartSpan(name string, opts ...opentracing.StartSpanOption) opentracing.Span {
	return t.Tracer.StartSpan(name, append(opts, ext.SpanKindRPCServer)...)
}

// tagServerSpan runs inside TraceServer, on its span.
func tagServerSpan(next kitendpoint.Endpoint) kitendpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		span := opentracing.SpanFromContext(ctx)
		if in, ok := ctx.Value(incomingKey{}).(*incoming); ok {
			// For TraceID in the transport, which sees only the outer ctx and runs after the span
			// has finished: with jaeger's span pool the span itself may be reused by then.
			in.traceID = traceIDOfSpan(span)
		}
		if !isSampled(span) { // tags of a span that is not recorded would only cost allocations
			return next(ctx, request)
		}
		if req, ok := request.(*endpoint.HandleRequest); ok {
			span.SetOperationName(operationName(req.Method))
			ext.HTTPMethod.Set(span, req.Method)
			ext.HTTPUrl.Set(span, urlTag(req.Path))
		}
		response, err := next(ctx, request)
		if resp, ok := response.(*endpoint.HandleResponse); ok {
			ext.HTTPStatusCode.Set(span, uint16(resp.Status))
			span.SetTag("route", resp.Route)
			if resp.Status >= 500 {
				ext.Error.Set(span, true)
			}
		}
		return response, err
	}
}

// operationNames are the server spans' names, one per method label value: the aggregator's
// method classification decides both, so span names are as bounded as the metric labels.
var operationNames = func() (names [len(Methods)]string) {
	for i, m := range Methods {
		names[i] = "HTTP " + m
	}
	return names
}()

func operationName(method string) string { return operationNames[methodIndex(method)] }

// urlTag makes a decoded path fit for a tag: valid UTF-8 (OTLP's protobuf refuses a batch holding
// anything else, and a path such as /%ff decodes to invalid UTF-8) and at most maxURLTag bytes.
func urlTag(path string) string {
	if len(path) <= maxURLTag && utf8.ValidString(path) {
		return path
	}
	b := make([]byte, 0, min(len(path), maxURLTag))
	for _, r := range path { // invalid bytes come as utf8.RuneError, which encodes as U+FFFD
		if len(b)+utf8.RuneLen(r) > maxURLTag {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// HTTPToContext returns the transport before-func that continues a caller's trace: go-kit's
// HTTPToContext extracts the trace context from the request's headers with the tracer (jaeger:
// uber-trace-id, then B3; zipkin: B3; otlp: W3C traceparent) for Tracing to start its span under.
// Headers that do not parse are ignored (logged at debug level); the request then starts a new
// trace. With a no-op tracer it does nothing.
func HTTPToContext(tracer opentracing.Tracer, logger log.Logger) kithttp.RequestFunc {
	if isNoop(tracer) {
		return func(ctx context.Context, _ *http.Request) context.Context { return ctx }
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	extract := kitot.HTTPToContext(remoteParent{tracer}, "HTTP",
		level.Debug(log.With(logger, "component", "tracing", "msg", "ignoring unusable trace headers")))
	known := knowsHeaders(tracer)
	return func(ctx context.Context, r *http.Request) context.Context {
		var in *incoming
		if !known || hasTraceHeader(r.Header) { // most requests carry none: skip what allocates
			ctx = extract(ctx, r)
			in, _ = opentracing.SpanFromContext(ctx).(*incoming)
		}
		if in == nil {
			in = &incoming{}
		}
		return context.WithValue(ctx, incomingKey{}, in)
	}
}

// hasTraceHeader reports whether h holds a header that one of our backends reads trace context
// from: uber-trace-id (and jaeger's debug and baggage headers), B3 in either form, traceparent.
func hasTraceHeader(h http.Header) bool {
	for k := range h {
		switch {
		case strings.EqualFold(k, "traceparent"), strings.EqualFold(k, "b3"), strings.EqualFold(k, "uber-trace-id"),
			strings.EqualFold(k, "jaeger-debug-id"), strings.EqualFold(k, "jaeger-baggage"),
			hasPrefixFold(k, "x-b3-"), hasPrefixFold(k, "uberctx-"):
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// zipkinTracerType is the type of zipkin-go-opentracing's tracer, which is unexported.
var zipkinTracerType = reflect.TypeOf(zipkinot.Wrap(nil))

// knowsHeaders reports whether hasTraceHeader knows every header tracer reads; any other tracer
// (a test's mock) is asked to extract from every request.
func knowsHeaders(tracer opentracing.Tracer) bool {
	switch tracer.(type) {
	case *jaeger.Tracer, *otbridge.BridgeTracer:
		return true
	}
	return reflect.TypeOf(tracer) == zipkinTracerType
}

// remoteParent lends go-kit's HTTPToContext the tracer's Extract but not its StartSpan: the span
// HTTPToContext would start is never finished (TraceServer starts the one that is) and would leave
// every trace with a missing parent. remoteParent hands back an inert span instead, carrying the
// extracted context to TraceServer. A tracer that panics on a header is treated as having found
// nothing usable.
type remoteParent struct{ opentracing.Tracer }

func (p remoteParent) Extract(format, carrier any) (sc opentracing.SpanContext, err error) {
	defer func() {
		if recover() != nil {
			sc, err = nil, opentracing.ErrSpanContextCorrupted
		}
	}()
	return p.Tracer.Extract(format, carrier)
}

func (p remoteParent) StartSpan(_ string, opts ...opentracing.StartSpanOption) opentracing.Span {
	var o opentracing.StartSpanOptions
	for _, opt := range opts {
		opt.Apply(&o)
	}
	in := &incoming{}
	if len(o.References) > 0 {
		in.remote = o.References[0].ReferencedContext
	}
	return in
}

type incomingKey struct{}

// incoming is the inert span HTTPToContext leaves in the request context: Context returns the
// caller's span context (nil when the request carried none), so TraceServer's span becomes its
// child. Tracing records its server span's trace id here for TraceID.
type incoming struct {
	remote  opentracing.SpanContext
	traceID string
}

func (s *incoming) Context() opentracing.SpanContext               { return s.remote }
func (s *incoming) Finish()                                        {}
func (s *incoming) FinishWithOptions(opentracing.FinishOptions)    {}
func (s *incoming) SetOperationName(string) opentracing.Span       { return s }
func (s *incoming) SetTag(string, any) opentracing.Span            { return s }
func (s *incoming) SetBaggageItem(string, string) opentracing.Span { return s }
func (s *incoming) BaggageItem(string) string                      { return "" }
func (s *incoming) LogKV(...any)                                   {}
func (s *incoming) LogEvent(string)                                {}
func (s *incoming) LogEventWithPayload(string, any)                {}
func (s *incoming) Log(opentracing.LogData)                        {}
func (s *incoming) LogFields(...otlog.Field)                       {}

// Tracer is a no-op tracer, so that opentracing.ContextWithSpan runs no tracer's context hook
// (the OpenTelemetry bridge warns about spans it did not make).
func (s *incoming) Tracer() opentracing.Tracer { return opentracing.NoopTracer{} }

// TraceID returns the trace id of the request's span, in the hex form the backend uses (32 digits),
// or "" when ctx holds no span or the tracer is a no-op. It works on the request context the
// transport sees (after HTTPToContext) as well as inside Tracing, and is what the echo's trace_id
// and the access log show.
func TraceID(ctx context.Context) string {
	if in, ok := ctx.Value(incomingKey{}).(*incoming); ok {
		if in.traceID != "" {
			return in.traceID
		}
		return traceIDOf(in.remote)
	}
	if span := opentracing.SpanFromContext(ctx); span != nil {
		return traceIDOfSpan(span)
	}
	return ""
}

func traceIDOfSpan(span opentracing.Span) string {
	if s, ok := span.(*jaeger.Span); ok { // without boxing its (large) context
		id := s.SpanContext().TraceID()
		return hexID(id.High, id.Low)
	}
	return traceIDOf(span.Context())
}

func traceIDOf(sc opentracing.SpanContext) string {
	switch sc := sc.(type) {
	case jaeger.SpanContext:
		if id := sc.TraceID(); id.IsValid() {
			return hexID(id.High, id.Low)
		}
	case zipkinot.SpanContext:
		if !sc.TraceID.Empty() {
			return hexID(sc.TraceID.High, sc.TraceID.Low)
		}
	case interface{ TraceID() trace.TraceID }: // the OpenTelemetry bridge's span context
		if id := sc.TraceID(); id.IsValid() {
			return id.String()
		}
	}
	return ""
}

// hexID writes a 128-bit trace id as 32 hex digits, or 16 when its high half is zero (a 64-bit
// id), as jaeger-client-go and zipkin-go do, with one allocation instead of fmt's two.
func hexID(hi, lo uint64) string {
	if hi == 0 && lo == 0 {
		return ""
	}
	const digits = "0123456789abcdef"
	var b [32]byte
	n := 0
	if hi != 0 {
		for i := 15; i >= 0; i-- {
			b[i] = digits[hi&0xf]
			hi >>= 4
		}
		n = 16
	}
	for i := n + 15; i >= n; i-- {
		b[i] = digits[lo&0xf]
		lo >>= 4
	}
	return string(b[:n+16])
}

// isSampled reports whether span is recorded (and sent); for a tracer it does not know, true.
func isSampled(span opentracing.Span) bool {
	if s, ok := span.(*jaeger.Span); ok {
		return s.SpanContext().IsSampled()
	}
	switch sc := span.Context().(type) {
	case zipkinot.SpanContext:
		return sc.Sampled == nil || *sc.Sampled
	case interface{ IsSampled() bool }: // the OpenTelemetry bridge's
		return sc.IsSampled()
	}
	return true
}

func isNoop(tracer opentracing.Tracer) bool {
	_, noop := tracer.(opentracing.NoopTracer)
	return noop || tracer == nil
}

// TraceDelay returns the service middleware that records a rule's simulated work (its delay and
// jitter) as a child span "delay" of the request's span. The service knows nothing of tracing, and
// which rule matched is known only once it has answered: the middleware reads Response.RouteID
// (the index of the rule in rules, as given to service.New) and backdates the span's start to the
// call. Requests whose rule has no delay, or that were refused before any (413), get no span.
func TraceDelay(tracer opentracing.Tracer, rules []service.Rule) service.Middleware {
	if isNoop(tracer) {
		return func(next service.Service) service.Service { return next }
	}
	delays := make([]delayTags, len(rules))
	anyDelay := false
	for i, r := range rules {
		if r.Delay > 0 || r.Jitter > 0 {
			delays[i] = delayTags{delay: r.Delay.String(), jitter: r.Jitter.String()}
			anyDelay = true
		}
	}
	if !anyDelay { // no rule simulates work: spare every request the clock read below
		return func(next service.Service) service.Service { return next }
	}
	return func(next service.Service) service.Service {
		return &traceDelay{next: next, tracer: tracer, delays: delays}
	}
}

type delayTags struct{ delay, jitter string } // zero: the rule has no delay

type traceDelay struct {
	next   service.Service
	tracer opentracing.Tracer
	delays []delayTags
}

func (t *traceDelay) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	parent := opentracing.SpanFromContext(ctx)
	if parent == nil {
		return t.next.Handle(ctx, req)
	}
	begin := time.Now()
	resp, err := t.next.Handle(ctx, req)
	if resp.RouteID < 0 || resp.RouteID >= len(t.delays) || t.delays[resp.RouteID].delay == "" ||
		errors.Is(resp.Err, service.ErrBodyTooLarge) {
		return resp, err
	}
	tags := t.delays[resp.RouteID]
	span := t.tracer.StartSpan("delay", opentracing.ChildOf(parent.Context()), opentracing.StartTime(begin))
	span.SetTag("route", resp.Route)
	span.SetTag("delay.configured", tags.delay)
	span.SetTag("delay.jitter", tags.jitter)
	if resp.Status == service.StatusClientClosed {
		span.SetTag("cancelled", true) // the client went away during the delay
	}
	span.Finish()
	return resp, err
}
