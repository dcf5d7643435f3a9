package tracing

import (
	"context"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
)

// Root starts the client span of a request whose trace starts at the caller: the requests of
// `anyroute load`, so that a load request's trace begins where the request did and the service's
// server span becomes its child (ContextToHTTP writes its context into the request). The head
// Sampler decides, as Server does for roots: a request it turns down gets no span (ContextToHTTP
// then writes a context marked not sampled) and Root returns ctx and nil. Without a backend it
// does nothing.
func (t *Tracing) Root(ctx context.Context, operation string) (context.Context, *RootSpan) {
	if t.b == nil || !t.sample() {
		return ctx, nil
	}
	span := t.b.Tracer(ext.SpanKindRPCClientEnum).StartSpan(operation, ext.SpanKindRPCClient)
	traceID, sampled := t.b.Span(span)
	return opentracing.ContextWithSpan(ctx, span), &RootSpan{span: span, TraceID: traceID, Sampled: sampled}
}

// RootSpan is a span Root started.
type RootSpan struct {
	span    opentracing.Span
	TraceID string // as the backend prints it
	Sampled bool   // recorded and sent: its trace id may be an exemplar
}

// Finish tags the span with the request's method, URL and status (0 when no answer came, which
// marks it an error, as a 5xx does) and ends it.
func (r *RootSpan) Finish(method, url string, status int) {
	if r == nil {
		return
	}
	if r.Sampled {
		ext.HTTPMethod.Set(r.span, method)
		ext.HTTPUrl.Set(r.span, urlTag(url))
		if status > 0 {
			ext.HTTPStatusCode.Set(r.span, uint16(status))
		}
		if status == 0 || status >= 500 {
			ext.Error.Set(r.span, true)
		}
	}
	r.span.Finish()
}
