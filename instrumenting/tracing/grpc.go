package tracing

import (
	"context"
	"net/http"
	"strings"

	kitot "github.com/go-kit/kit/tracing/opentracing"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"google.golang.org/grpc/metadata"
)

// GRPCToContext is HTTPToContext for the gRPC listener: go-kit's GRPCToContext extracts the
// caller's trace context from the call's metadata (the same keys as the HTTP headers, in lower
// case) for Server to start its span under, with the same bound on its size and the same
// fallback, a trace of its own, for context that does not parse.
func (t *Tracing) GRPCToContext(logger log.Logger) kitgrpc.ServerRequestFunc {
	if t.b == nil {
		return func(ctx context.Context, _ metadata.MD) context.Context { return ctx }
	}
	logger = debugLogger(logger, "ignoring unusable trace metadata")
	extract := kitot.GRPCToContext(remoteParent{t.b.Tracer(ext.SpanKindRPCServerEnum)}, "gRPC", logger)
	return func(ctx context.Context, md metadata.MD) context.Context {
		return t.remoteContext(ctx, http.Header(md), "trace metadata", logger, func() context.Context { return extract(ctx, md) })
	}
}

// ContextToGRPC is ContextToHTTP for gRPC calls: go-kit's ContextToGRPC writes the call span's
// trace context into the call's metadata, in the backend's formats; without a span it writes a
// trace context marked not sampled.
func (t *Tracing) ContextToGRPC(logger log.Logger) kitgrpc.ClientRequestFunc {
	if t.b == nil {
		return func(ctx context.Context, _ *metadata.MD) context.Context { return ctx }
	}
	inject := kitot.ContextToGRPC(t.b.Tracer(ext.SpanKindRPCClientEnum), debugLogger(logger, "trace context not written"))
	return func(ctx context.Context, md *metadata.MD) context.Context {
		if opentracing.SpanFromContext(ctx) != nil {
			return inject(ctx, md)
		}
		h := http.Header{}
		t.b.NotSampled(h, nonZero(), nonZero(), nonZero())
		for k, vs := range h {
			(*md)[strings.ToLower(k)] = vs // gRPC metadata keys are lower case
		}
		return ctx
	}
}
