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
	"math"
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
	// formatting its trace id: the client decorators ask it of every call's span and it must not
	// allocate.
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
// decorator it returns is the identity and no request carries a trace id.
//
// A request that starts a trace is traced only when the Sampler says so: one it turns down gets no
// span at all, so the backend's tracer is left to sample every root it is given. Such a request has
// no trace id; its calls carry a trace context marked not sampled (Backend.NotSampled).
type Tracing struct {
	b       Backend
	sample  Sampler
	headers headerSet
	// clientSubject says who the client of a request is (the verified certificate's subject
	// under mTLS, "" for none), for the server span's tls.client.subject; nil: never asked.
	clientSubject func(context.Context) string
}

// Option configures a Tracing.
type Option func(*Tracing)

// ClientSubject tags each server span with the client identity f finds in the request's context
// (the transport knows it, from the connection: transport.ClientSubject).
func ClientSubject(f func(context.Context) string) Option {
	return func(t *Tracing) { t.clientSubject = f }
}

// New returns the decorators of b with the head sampler sample; a nil b means tracing is off.
func New(b Backend, sample Sampler, opts ...Option) *Tracing {
	t := &Tracing{b: b, sample: sample}
	for _, o := range opts {
		o(t)
	}
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

// Server returns the endpoint middleware that records one server span per request, with go-kit's
// TraceServer: every request that continues a caller's trace (HTTPToContext found one), and of those
// that start one, those the Sampler picks; the others pass untouched. The span is named
// "HTTP <METHOD>" (non-standard methods share "HTTP OTHER", so operation names stay as bounded as
// the metric labels) and carries http.method, http.url (the path, never the query),
// http.status_code, route, scenario.phase while a scenario runs, tls.client.subject under mTLS,
// and error=true when the status is 5xx. The trace id and whether the trace is sampled are resolved here, once per request, and
// carried on the request (service.Request's TraceID and TraceSampled) for every layer below it,
// which reads them there instead of asking the backend again, and for the encoder to echo the id
// (the response carries the request). A request that passes untraced carries "" and false.
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
		traceID, sampled := t.b.Span(span) // the one call per request that formats the trace id
		req, _ := request.(*endpoint.HandleRequest)
		if req != nil {
			req.TraceID, req.TraceSampled = traceID, sampled
		}
		if sampled && req != nil { // tags of a span that is not recorded would only cost allocations
			span.SetOperationName(operationName(req.Method))
			span.SetTag(string(ext.HTTPMethod), methodTag(req.Method))
			ext.HTTPUrl.Set(span, urlTag(req.Path))
			if t.clientSubject != nil { // the client certificate's subject, under mTLS
				if subject := t.clientSubject(ctx); subject != "" {
					span.SetTag("tls.client.subject", subject)
				}
			}
		}
		response, err := next(ctx, request)
		resp, ok := response.(*endpoint.HandleResponse)
		if !ok {
			return response, err
		}
		if sampled {
			ext.HTTPStatusCode.Set(span, uint16(resp.Status))
			span.SetTag("route", resp.Route)
			tagWhy(span, &resp.Response)
			tagPhase(span, resp.Phase)
			if f := resp.Fault; f != nil {
				tagFault(span, f.Kind)
			} else if resp.Status >= 500 {
				ext.Error.Set(span, true)
			}
		}
		return response, err
	}
}

// distributionTags are the distributions' names boxed once: a string passed as a tag value would
// be boxed (allocated) per span.
var distributionTags = func() (tags [service.DistOverride + 1]any) {
	for d := range tags {
		tags[d] = service.Distribution(d).String()
	}
	return tags
}()

// tagWhy tags a span with what decided the request's latency, as the service reported it, so that
// a span an exemplar on a slow bucket leads to says why it is there: distribution (what the delay
// was drawn from, or override), quantile (where the draw fell in it, for a distribution whose draws
// differ: 0.97 is a draw from its tail, not a slow machine) and cpu (the CPU seconds the request
// burned). A request that waited for nothing and burned nothing gets none of them.
func tagWhy(span opentracing.Span, resp *service.Response) {
	if d := resp.Distribution; d != service.DistNone && int(d) < len(distributionTags) {
		span.SetTag("distribution", distributionTags[d])
		if resp.Distribution.Spread() {
			// A float32 widened prints 0.9700000286; six decimals are all it holds near 1.
			span.SetTag("quantile", math.Round(float64(resp.Quantile)*1e6)/1e6)
		}
	}
	if resp.CPU > 0 {
		span.SetTag("cpu", resp.CPU.Seconds())
	}
}

// tagFault tags a span with the fault injected in place of its answer: fault=<kind>, the code
// label it is counted under; and error=true unless the client got the answer in full, if slowly
// (slow_body), since the status tag is then not what the client saw.
func tagFault(span opentracing.Span, k service.FaultKind) {
	label, _ := instrumenting.FaultCodeLabel(instrumenting.FaultCode(k))
	span.SetTag("fault", label)
	if k.Fails() {
		ext.Error.Set(span, true)
	}
}

// tagPhase tags a span with the scenario phase whose rules answered it (scenario.phase), so a
// slow span says which stretch of the drill made it so; a request outside a scenario gets no tag.
func tagPhase(span opentracing.Span, phase *string) {
	if phase != nil {
		span.SetTag("scenario.phase", *phase)
	}
}

// operationNames are the server spans' names, one per method label value.
var operationNames = func() (names [len(instrumenting.Methods)]string) {
	for i, m := range instrumenting.Methods {
		names[i] = "HTTP " + m
	}
	names[instrumenting.MethodIndex(instrumenting.MethodGRPC)] = "gRPC" // the listener's calls, every method
	return names
}()

func operationName(method string) string { return operationNames[instrumenting.MethodIndex(method)] }

// methodTags are the standard methods boxed once, as the http.method tag's value: the method
// boxed per span was an allocation of every traced request.
var methodTags = func() (tags [len(instrumenting.Methods)]any) {
	for i, m := range instrumenting.Methods {
		tags[i] = m
	}
	return tags
}()

// methodTag is method as a tag value: one of methodTags for a standard method, else the method
// itself (a non-standard method is tagged as it came, though its span is named "HTTP OTHER").
func methodTag(method string) any {
	if i := instrumenting.MethodIndex(method); instrumenting.Methods[i] == method {
		return methodTags[i]
	}
	return method
}

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
	logger = debugLogger(logger, "ignoring unusable trace headers")
	extract := kitot.HTTPToContext(remoteParent{t.b.Tracer(ext.SpanKindRPCServerEnum)}, "HTTP", logger)
	return func(ctx context.Context, r *http.Request) context.Context {
		return t.remoteContext(ctx, r.Header, "trace headers", logger, func() context.Context { return extract(ctx, r) })
	}
}

// remoteContext is what a listener's before-func returns, for HTTP headers and gRPC metadata
// alike: extract's context, holding the caller's trace context, or ctx itself when h holds no
// key the backend reads (extraction allocates), more than MaxTraceHeaderBytes of them (logged
// as what), or nothing usable. Server then starts a trace of its own.
func (t *Tracing) remoteContext(ctx context.Context, h http.Header, what string, logger log.Logger, extract func() context.Context) context.Context {
	size := t.headers.size(h)
	if size < 0 {
		return ctx
	}
	if size > MaxTraceHeaderBytes {
		_ = logger.Log("err", fmt.Sprintf("%d bytes of %s, more than %d", size, what, MaxTraceHeaderBytes))
		return ctx
	}
	withRemote := extract()
	if in, ok := opentracing.SpanFromContext(withRemote).(*incoming); !ok || in.remote == nil {
		return ctx
	}
	return withRemote
}

// debugLogger is the logger of a before-func's failures: a bad trace context from a caller is
// the caller's business, so it is logged at level debug only, with msg saying what happened.
func debugLogger(logger log.Logger, msg string) log.Logger {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return level.Debug(log.With(logger, "component", "tracing", "msg", msg))
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
// answered. The span carries the route, the delay, what decided it (tagWhy) and the fault that
// replaced the answer after it, if any (fault=<kind>, not an error: the wait itself went as
// drawn). Requests that waited for nothing, or whose trace is not sampled (Request.TraceSampled,
// as Server resolved it), get no span and no clock read.
func (t *Tracing) Delay() service.Middleware {
	if t.b == nil {
		return func(next service.Service) service.Service { return next }
	}
	return func(next service.Service) service.Service {
		return &traceDelay{next: next, tracer: t.b.Tracer("")}
	}
}

type traceDelay struct {
	next   service.Service
	tracer opentracing.Tracer
}

func (d *traceDelay) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	resp, err := d.next.Handle(ctx, req)
	if resp.Delay <= 0 || !req.TraceSampled {
		return resp, err
	}
	parent := opentracing.SpanFromContext(ctx)
	if parent == nil {
		return resp, err
	}
	end := time.Now()
	span := d.tracer.StartSpan("delay", opentracing.ChildOf(parent.Context()), opentracing.StartTime(end.Add(-resp.Delay)))
	span.SetTag("route", resp.Route)
	span.SetTag("delay", resp.Delay.String())
	tagWhy(span, &resp)
	if f := resp.Fault; f != nil {
		label, _ := instrumenting.FaultCodeLabel(instrumenting.FaultCode(f.Kind))
		span.SetTag("fault", label)
	}
	tagPhase(span, resp.Phase)
	if resp.Status == service.StatusClientClosed {
		span.SetTag("cancelled", true) // the client went away during the delay
	}
	span.FinishWithOptions(opentracing.FinishOptions{FinishTime: end})
	return resp, err
}
