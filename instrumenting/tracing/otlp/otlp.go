// Package otlp is the tracing backend of the OpenTelemetry SDK behind its OpenTracing bridge: spans
// exported over OTLP/HTTP, trace context read from W3C traceparent (and baggage). It is the
// maintained forward path beside the archived jaeger and inactive zipkin libraries.
package otlp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"go.opentelemetry.io/otel/attribute"
	otbridge "go.opentelemetry.io/otel/bridge/opentracing"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing"
)

// tracerName names the tracer within the OpenTelemetry SDK.
const tracerName = "github.com/anyroute/anyroute"

// New returns the otlp backend. Finished, sampled spans pass a gate before the batch processor
// queues them, so spans lost to a full queue or a failed export are counted; exports are not
// retried, and failures are logged here rather than by the SDK's global error handler.
func New(cfg config.Tracing, r tracing.Reporting) (tracing.Backend, error) {
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(cfg.OTLP.Endpoint),
		otlptracehttp.WithTimeout(tracing.SendTimeout),
		// No retries: a batch that fails is counted and dropped, and the next one tries again.
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
	}
	if cfg.OTLP.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := newProtoExporter(context.Background(), otlptracehttp.NewClient(opts...))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	gate := tracing.NewSpanGate(r.Drops)
	bsp := sdktrace.NewBatchSpanProcessor(
		&exporter{SpanExporter: exp, gate: gate, logger: level.Warn(tracing.Throttle(r.Logger, tracing.LogEvery))},
		sdktrace.WithBatchTimeout(tracing.ReportInterval),
		sdktrace.WithExportTimeout(tracing.SendTimeout),
		sdktrace.WithMaxQueueSize(2*tracing.MaxPendingSpans), // above the gate's limit: it never drops uncounted
	)
	tp := sdktrace.NewTracerProvider(
		// The head decision is tracing.Sampler's; a caller's decision is followed.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))),
		sdktrace.WithSpanProcessor(gated{SpanProcessor: bsp, gate: gate}),
	)
	bridge := otbridge.NewBridgeTracer()
	bridge.SetOpenTelemetryTracer(tp.Tracer(tracerName))
	bridge.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	warn := level.Debug(r.Logger)
	bridge.SetWarningHandler(func(msg string) { _ = warn.Log("msg", strings.TrimSpace(msg)) })
	return &backend{tracer: bridge, close: tp.Shutdown}, nil
}

type backend struct {
	tracer opentracing.Tracer
	close  func(context.Context) error
}

// Tracer gives span.kind at start: the bridge reads it only then.
func (b *backend) Tracer(kind ext.SpanKindEnum) opentracing.Tracer {
	return tracing.KindAtStart(b.tracer, kind)
}

func (b *backend) Span(span opentracing.Span) (string, bool) {
	sc, ok := span.Context().(interface {
		TraceID() trace.TraceID
		IsSampled() bool
	})
	if !ok || !sc.TraceID().IsValid() {
		return "", false
	}
	return sc.TraceID().String(), sc.IsSampled()
}

func (b *backend) Sampled(span opentracing.Span) bool {
	sc, ok := span.Context().(interface {
		TraceID() trace.TraceID
		IsSampled() bool
	})
	return ok && sc.TraceID().IsValid() && sc.IsSampled()
}

// Headers are W3C trace context's and baggage.
func (b *backend) Headers() []string { return []string{"traceparent", "tracestate", "baggage"} }

func (b *backend) Close(ctx context.Context) error { return b.close(ctx) }

// NotSampled injects a W3C trace context with the sampled flag off.
func (b *backend) NotSampled(h http.Header, traceHigh, traceLow, spanID uint64) {
	var tid trace.TraceID
	var sid trace.SpanID
	binary.BigEndian.PutUint64(tid[:8], traceHigh)
	binary.BigEndian.PutUint64(tid[8:], traceLow)
	binary.BigEndian.PutUint64(sid[:], spanID)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
}

// gated admits finished, sampled spans through the gate before the batch processor queues them.
type gated struct {
	sdktrace.SpanProcessor
	gate *tracing.SpanGate
}

func (p gated) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() && p.gate.Admit() {
		p.SpanProcessor.OnEnd(s)
	}
}

// exporter settles every batch with the gate and logs failures itself, so the SDK's global error
// handler (which would log each one) never hears of them.
type exporter struct {
	sdktrace.SpanExporter
	gate   *tracing.SpanGate
	logger log.Logger
}

func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.gate.Settle(len(spans), err != nil)
	if err != nil {
		_ = e.logger.Log("msg", "spans not delivered", "spans", len(spans), "err", err)
	}
	return nil
}
