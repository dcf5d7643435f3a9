// Package tracing traces requests through go-kit's OpenTracing decorators, whatever the backend:
// HTTPToContext continues a caller's trace, Server records one server span per request around the
// endpoint, Delay draws the service's simulated work as a child span. What the decorators need of
// a tracing library is the small Backend interface; each library lives in a subpackage of its own
// (jaeger, zipkin, otlp) and nothing outside that subpackage names its types, so a backend can be
// deleted as a folder and one wiring line.
package tracing

import (
	"context"
	"fmt"
	"net/http"
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

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/instrumenting"
	"github.com/anyroute/anyroute/service"
)

// Backend is one tracing library, as the decorators use it.
type Backend interface {
	// Tracer returns the OpenTracing tracer for spans of the given kind (ext.SpanKindRPCServerEnum,
	// ext.SpanKindRPCClientEnum, or "" for an internal span). go-kit's decorators set span.kind
	// after the span has started; a library that reads it only at start returns
	// KindAtStart(tracer, kind) for a non-empty kind.
	Tracer(kind ext.SpanKindEnum) opentracing.Tracer
	// Span returns the trace id of a span the tracer started, in hex as the library prints it (32
	// digits, or 16 for a 64-bit id), and whether the span is sampled: recorded and sent.
	Span(span opentracing.Span) (traceID string, sampled bool)
	// Sampled reports whether a span the tracer started is sampled, as Span does, without
	// formatting its trace id: the request path asks it of every request and must not allocate.
	Sampled(span opentracing.Span) bool
	// Headers names the request headers the tracer reads trace context from, in lower case; a name
	// ending in '*' is a prefix. Requests with none of them skip extraction, which allocates.
	Headers() []string
	// NotSampled writes into h the trace context of a trace that is not sampled, with the given
	// ids, in the backend's formats: what the calls of a request the Sampler turned down carry, so
	// that the services they reach follow its decision rather than sample on their own.
	NotSampled(h http.Header, traceHigh, traceLow, spanID uint64)
	// Close sends the spans still buffered and releases the reporter, giving up when ctx ends.
	// It is called once, after the last request has finished.
	Close(ctx context.Context) error
}

// maxURLTag bounds the http.url tag: a path may be as long as the header limit allows.
const maxURLTag = 1024

// MaxTraceHeaderBytes bounds the trace context a request may carry, baggage included (W3C's limit
// for baggage): past it the request's trace headers are ignored and it starts a trace of its own,
// since a library copies baggage into every span (jaeger-client-go's allocations came to 24
// times the baggage's size).
const MaxTraceHeaderBytes = 8192

// Tracing holds the decorators of one backend. Made with a nil Backend (tracing off), every
// decorator it returns is the identity and TraceID always "".
//
// A request that starts a trace is traced only when the Sampler says so: one it turns down gets no
// span at all, so the backend's tracer is left to sample every root it is given. Such a request has
// no trace id; its calls carry a trace context marked not sampled (Backend.NotSampled).
type Tracing struct {
	b       Backend
	sample  Sampler
	headers headerSet
}

// New returns the decorators of b with the head sampler sample; a nil b means tracing is off.
func New(b Backend, sample Sampler) *Tracing {
	t := &Tracing{b: b, sample: sample}
	if b != nil {
		t.headers = newHeaderSet(b.Headers())
	}
	return t
}

// Close flushes the backend (see Backend.Close); without one it does nothing.
func (t *Tracing) Close(ctx context.Context) error {
	if t.b == nil {
		return nil
	}
	return t.b.Close(ctx)
}

// TraceID returns the trace id of the span in ctx, "" when there is none or tracing is off. Inside
// the Server middleware that is the request's server span, which the access log and panic
// recovery name.
func (t *Tracing) TraceID(ctx context.Context) string {
	if t.b == nil {
		return ""
	}
	span := opentracing.SpanFromContext(ctx)
	if span == nil {
		return ""
	}
	id, _ := t.b.Span(span)
	return id
}

// SampledTraceID returns the trace id of the span in ctx when that span is sampled: recorded and
// sent, so that the id names a trace the backend will hold. A request without a span, an unsampled
// one, or tracing off, answers ("", false) without allocating. The counting decorator asks it of
// every request, to attach the trace of a sampled one to the metrics as an exemplar.
func (t *Tracing) SampledTraceID(ctx context.Context) (string, bool) {
	if t.b == nil {
		return "", false
	}
	span := opentracing.SpanFromContext(ctx)
	if span == nil || !t.b.Sampled(span) {
		return "", false
	}
	id, _ := t.b.Span(span)
	return id, id != ""
}

// Server returns the endpoint middleware that records one server span per request, with go-kit's
// TraceServer: every request that continues a caller's trace (HTTPToContext found one), and of those
// that start one, those the Sampler picks; the others pass untouched. The span is named
// "HTTP <METHOD>" (non-standard methods share "HTTP OTHER", so operation names stay as bounded as
// the metric labels) and carries http.method, http.url (the path, never the query),
// http.status_code, route, and error=true when the status is 5xx. The trace id goes into the
// response for the encoder to echo.
func (t *Tracing) Server() kitendpoint.Middleware {
	if t.b == nil {
		return func(next kitendpoint.Endpoint) kitendpoint.Endpoint { return next }
	}
	// Business errors (an injected 500, a 413) are logged on the span by TraceServer; whether they
	// mark it as an error is decided by the status, below.
	server := kitot.TraceServer(t.b.Tracer(ext.SpanKindRPCServerEnum), "HTTP", kitot.WithIgnoreBusinessError(true))
	return func(next kitendpoint.Endpoint) kitendpoint.Endpoint {
		traced := server(t.tagServerSpan(next))
		return func(ctx context.Context, request any) (any, error) {
			if opentracing.SpanFromContext(ctx) == nil && !t.sample() { // no caller's trace: a root
				return next(ctx, request)
			}
			return traced(ctx, request)
		}
	}
}

// tagServerSpan runs inside TraceServer, on its span.
func (t *Tracing) tagServerSpan(next kitendpoint.Endpoint) kitendpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		span := opentracing.SpanFromContext(ctx)
		traceID, sampled := t.b.Span(span)
		req, _ := request.(*endpoint.HandleRequest)
		if sampled && req != nil { // tags of a span that is not recorded would only cost allocations
			span.SetOperationName(operationName(req.Method))
			ext.HTTPMethod.Set(span, req.Method)
			ext.HTTPUrl.Set(span, urlTag(req.Path))
		}
		response, err := next(ctx, request)
		resp, ok := response.(*endpoint.HandleResponse)
		if !ok {
			return response, err
		}
		resp.TraceID = traceID
		if sampled {
			ext.HTTPStatusCode.Set(span, uint16(resp.Status))
			span.SetTag("route", resp.Route)
			if resp.Status >= 500 {
				ext.Error.Set(span, true)
			}
		}
		return response, err
	}
}

// operationNames are the server spans' names, one per method label value.
var operationNames = func() (names [len(instrumenting.Methods)]string) {
	for i, m := range instrumenting.Methods {
		names[i] = "HTTP " + m
	}
	return names
}()

func operationName(method string) string { return operationNames[instrumenting.MethodIndex(method)] }

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
// HTTPToContext extracts the trace context from the request's headers with the server tracer, for
// Server to start its span under. Headers that do not parse are ignored (logged at level debug);
// the request then starts a new trace, as it does when its trace headers exceed
// MaxTraceHeaderBytes. A request without any header the backend reads is left alone, since
// extraction allocates.
func (t *Tracing) HTTPToContext(logger log.Logger) kithttp.RequestFunc {
	if t.b == nil {
		return func(ctx context.Context, _ *http.Request) context.Context { return ctx }
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	logger = level.Debug(log.With(logger, "component", "tracing", "msg", "ignoring unusable trace headers"))
	extract := kitot.HTTPToContext(remoteParent{t.b.Tracer(ext.SpanKindRPCServerEnum)}, "HTTP", logger)
	return func(ctx context.Context, r *http.Request) context.Context {
		size := t.headers.size(r.Header)
		if size < 0 {
			return ctx
		}
		if size > MaxTraceHeaderBytes {
			_ = logger.Log("err", fmt.Sprintf("%d bytes of trace headers, more than %d", size, MaxTraceHeaderBytes))
			return ctx
		}
		withRemote := extract(ctx, r)
		if in, ok := opentracing.SpanFromContext(withRemote).(*incoming); !ok || in.remote == nil {
			return ctx // nothing usable: Server starts a trace of its own
		}
		return withRemote
	}
}

// headerSet matches header names against a backend's Headers.
type headerSet struct {
	names, prefixes []string
}

func newHeaderSet(names []string) headerSet {
	var h headerSet
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			h.prefixes = append(h.prefixes, p)
		} else {
			h.names = append(h.names, n)
		}
	}
	return h
}

// size returns the bytes (names and values) of hdr's headers of the set, -1 when it has none. It
// compares without allocating.
func (h headerSet) size(hdr http.Header) int {
	n := -1
	for k, vs := range hdr {
		if !h.has(k) {
			continue
		}
		n = max(n, 0) + len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return n
}

func (h headerSet) has(k string) bool {
	for _, n := range h.names {
		if strings.EqualFold(k, n) {
			return true
		}
	}
	for _, p := range h.prefixes {
		if len(k) >= len(p) && strings.EqualFold(k[:len(p)], p) {
			return true
		}
	}
	return false
}

// Delay returns the service middleware that records the service's simulated work (the delay it
// reports in Response.Delay) as a child span "delay" of the request's span, ending when the service
// answered. Requests that waited for nothing, or whose span is not sampled, get no span and no
// clock read.
func (t *Tracing) Delay() service.Middleware {
	if t.b == nil {
		return func(next service.Service) service.Service { return next }
	}
	return func(next service.Service) service.Service {
		return &traceDelay{next: next, t: t, tracer: t.b.Tracer("")}
	}
}

type traceDelay struct {
	next   service.Service
	t      *Tracing
	tracer opentracing.Tracer
}

func (d *traceDelay) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	resp, err := d.next.Handle(ctx, req)
	if resp.Delay <= 0 {
		return resp, err
	}
	parent := opentracing.SpanFromContext(ctx)
	if parent == nil {
		return resp, err
	}
	if _, sampled := d.t.b.Span(parent); !sampled {
		return resp, err
	}
	end := time.Now()
	span := d.tracer.StartSpan("delay", opentracing.ChildOf(parent.Context()), opentracing.StartTime(end.Add(-resp.Delay)))
	span.SetTag("route", resp.Route)
	span.SetTag("delay", resp.Delay.String())
	if resp.Status == service.StatusClientClosed {
		span.SetTag("cancelled", true) // the client went away during the delay
	}
	span.FinishWithOptions(opentracing.FinishOptions{FinishTime: end})
	return resp, err
}
