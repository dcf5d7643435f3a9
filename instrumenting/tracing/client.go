package tracing

import (
	"context"
	"net/http"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kitot "github.com/go-kit/kit/tracing/opentracing"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"

	"github.com/anyroute/anyroute/service"
)

// Client returns the middleware of the upstream client's endpoint: one client span per call, with
// go-kit's TraceClient, a child of the request's server span, named "call NAME" (names come from
// the config, so they are bounded) and tagged call, route, and by the client's before- and
// after-funcs http.method, http.url, peer.*, http.status_code; error=true when no answer came or
// it was a 5xx. The upstream's server span becomes its child through the headers ContextToHTTP
// writes. A call of a request without a span (one the Sampler turned down) gets none either.
func (t *Tracing) Client() kitendpoint.Middleware {
	if t.b == nil {
		return func(next kitendpoint.Endpoint) kitendpoint.Endpoint { return next }
	}
	client := kitot.TraceClient(t.b.Tracer(ext.SpanKindRPCClientEnum), "call")
	return func(next kitendpoint.Endpoint) kitendpoint.Endpoint {
		traced := client(t.tagClientSpan(next))
		return func(ctx context.Context, request any) (any, error) {
			if opentracing.SpanFromContext(ctx) == nil {
				return next(ctx, request)
			}
			return traced(ctx, request)
		}
	}
}

func (t *Tracing) tagClientSpan(next kitendpoint.Endpoint) kitendpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		span := opentracing.SpanFromContext(ctx)
		if req, ok := request.(service.CallRequest); ok && t.b.Sampled(span) {
			span.SetOperationName("call " + req.Name)
			span.SetTag("call", req.Name)
			span.SetTag("route", req.Route)
		}
		return next(ctx, request)
	}
}

// ContextToHTTP returns the upstream client's before-func that writes the call span's trace
// context into the request's headers, in the backend's formats. Without a span (the request was
// not sampled) it writes a new trace context marked not sampled, so the upstream does not start
// a trace of its own.
func (t *Tracing) ContextToHTTP(logger log.Logger) kithttp.RequestFunc {
	if t.b == nil {
		return func(ctx context.Context, _ *http.Request) context.Context { return ctx }
	}
	inject := kitot.ContextToHTTP(t.b.Tracer(ext.SpanKindRPCClientEnum), debugLogger(logger, "trace context not written"))
	return func(ctx context.Context, r *http.Request) context.Context {
		if opentracing.SpanFromContext(ctx) == nil {
			t.b.NotSampled(r.Header, nonZero(), nonZero(), nonZero())
			return ctx
		}
		return inject(ctx, r)
	}
}

// ClientAfter returns the upstream client's after-func that tags the call span with the answer's
// status.
func (t *Tracing) ClientAfter() kithttp.ClientResponseFunc {
	return func(ctx context.Context, resp *http.Response) context.Context {
		if t.b == nil {
			return ctx
		}
		if span := opentracing.SpanFromContext(ctx); span != nil && t.b.Sampled(span) {
			ext.HTTPStatusCode.Set(span, uint16(resp.StatusCode))
			if resp.StatusCode >= 500 {
				ext.Error.Set(span, true)
			}
		}
		return ctx
	}
}
