// Package jaeger is the tracing backend of jaeger-client-go: spans go to a Jaeger agent over UDP or
// to a collector over HTTP; trace context is read from uber-trace-id or, failing that, B3 headers.
// jaeger-client-go is archived upstream; the otlp backend is the forward path.
package jaeger

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber/jaeger-client-go"
	jaegertransport "github.com/uber/jaeger-client-go/transport"
	jaegerzipkin "github.com/uber/jaeger-client-go/zipkin"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing"
)

// New returns the jaeger backend. Its reporter counts what it drops because its queue is full and
// what its sender fails to send; over UDP a missing agent cannot be seen, so there only overflows
// are counted. Failed sends are not retried.
func New(cfg config.Tracing, r tracing.Reporting) (tracing.Backend, error) {
	jlog := logger{warn: level.Warn(tracing.Throttle(r.Logger, tracing.LogEvery)), debug: level.Debug(r.Logger)}
	// The reporter's queue drops, also kept for the agent's batch stats.
	queueFull := new(atomic.Int64)
	var sender jaeger.Transport
	if cfg.Jaeger.CollectorURL != "" {
		sender = jaegertransport.NewHTTPTransport(cfg.Jaeger.CollectorURL, jaegertransport.HTTPTimeout(tracing.SendTimeout))
	} else {
		// The sender re-resolves the agent's address every 30s, so an agent that is not up yet
		// (or a name that does not resolve yet) is not an error at start.
		agent, err := newAgentSender(cfg.Jaeger.AgentAddr, 0, queueFull, jlog)
		if err != nil {
			return nil, fmt.Errorf("jaeger agent %q: %w", cfg.Jaeger.AgentAddr, err)
		}
		sender = agent
	}
	// The client's metrics are plain counters, so ours stand in for the two that lose spans.
	metrics := jaeger.NewNullMetrics()
	metrics.ReporterDropped = counter{c: r.Drops.QueueFull, total: queueFull}
	metrics.ReporterFailure = counter{c: r.Drops.SendFailed}
	rep := jaeger.NewRemoteReporter(sender,
		jaeger.ReporterOptions.QueueSize(tracing.MaxPendingSpans),
		jaeger.ReporterOptions.BufferFlushInterval(tracing.ReportInterval),
		jaeger.ReporterOptions.Metrics(metrics),
		jaeger.ReporterOptions.Logger(jlog),
	)
	prop := jaegerOrB3{
		jaeger: jaeger.NewHTTPHeaderPropagator(new(jaeger.HeadersConfig).ApplyDefaults(), *metrics),
		b3:     jaegerzipkin.NewZipkinB3HTTPHeaderPropagator(),
	}
	tracer, closer := jaeger.NewTracer(cfg.ServiceName, newEveryRoot(cfg.Sampler), rep,
		jaeger.TracerOptions.Gen128Bit(true), // the same trace ids as B3 and W3C callers send
		// Reuse spans: allocating one per request was a third of the request path's allocations
		// with probabilistic sampling. Nothing holds a span after Finish.
		jaeger.TracerOptions.PoolSpans(true),
		jaeger.TracerOptions.Metrics(metrics),
		jaeger.TracerOptions.Logger(jlog),
		jaeger.TracerOptions.Injector(opentracing.HTTPHeaders, prop),
		jaeger.TracerOptions.Extractor(opentracing.HTTPHeaders, prop),
	)
	return &backend{tracer: tracer, close: tracing.CloseWithin(closer.Close)}, nil
}

type backend struct {
	tracer opentracing.Tracer
	close  func(context.Context) error
}

// Tracer returns the same tracer for every kind: jaeger-client-go takes span.kind whenever it is
// set (given at start too, it would record it twice).
func (b *backend) Tracer(ext.SpanKindEnum) opentracing.Tracer { return b.tracer }

func (b *backend) Span(span opentracing.Span) (string, bool) {
	s, ok := span.(*jaeger.Span)
	if !ok {
		return "", false
	}
	sc := s.SpanContext() // read once: the span's context is large
	id := sc.TraceID()
	return tracing.HexID(id.High, id.Low), sc.IsSampled()
}

func (b *backend) Sampled(span opentracing.Span) bool {
	s, ok := span.(*jaeger.Span)
	return ok && s.SpanContext().IsSampled()
}

// Headers are uber-trace-id with jaeger's debug and baggage headers, and B3 in both forms.
func (b *backend) Headers() []string {
	return []string{"uber-trace-id", "jaeger-debug-id", "jaeger-baggage", "uberctx-*", "b3", "x-b3-*"}
}

func (b *backend) Close(ctx context.Context) error { return b.close(ctx) }

// NotSampled injects a jaeger span context with the sampled flag off, in both formats.
func (b *backend) NotSampled(h http.Header, traceHigh, traceLow, spanID uint64) {
	sc := jaeger.NewSpanContext(jaeger.TraceID{High: traceHigh, Low: traceLow}, jaeger.SpanID(spanID), 0, false, nil)
	_ = b.tracer.Inject(sc, opentracing.HTTPHeaders, opentracing.HTTPHeadersCarrier(h))
}

// everyRoot samples every root span: the head decision is tracing.Sampler's, and a root reaches
// the tracer only when it said yes. It tags the root with that sampler, as jaeger's own samplers
// name themselves there. The tags are made once: made per root, their slice and the boxed type and
// param were three allocations of every traced request. The tracer only reads them (it appends
// their values to the span's own tags), as it does jaeger's ConstSampler's, which are shared too.
type everyRoot struct {
	head config.Sampler
	tags []jaeger.Tag
}

func newEveryRoot(head config.Sampler) *everyRoot {
	return &everyRoot{head: head, tags: []jaeger.Tag{
		jaeger.NewTag(jaeger.SamplerTypeTagKey, head.Type), jaeger.NewTag(jaeger.SamplerParamTagKey, head.Param)}}
}

func (s *everyRoot) IsSampled(jaeger.TraceID, string) (bool, []jaeger.Tag) { return true, s.tags }

func (*everyRoot) Close() {}

func (s *everyRoot) Equal(other jaeger.Sampler) bool {
	o, ok := other.(*everyRoot)
	return ok && o.head == s.head
}

// jaegerOrB3 reads uber-trace-id and, when a caller sent none (or an unusable one), B3 headers;
// it writes both.
type jaegerOrB3 struct {
	jaeger *jaeger.TextMapPropagator
	b3     jaegerzipkin.Propagator
}

func (p jaegerOrB3) Extract(carrier any) (jaeger.SpanContext, error) {
	sc, err := p.jaeger.Extract(carrier)
	if err == nil && sc.TraceID().IsValid() {
		return sc, nil
	}
	b3, b3Err := p.b3.Extract(carrier)
	switch {
	case b3Err == nil:
		return b3, nil
	case err == nil:
		return sc, nil // jaeger-debug-id or baggage alone, and no B3
	case errors.Is(err, opentracing.ErrSpanContextNotFound):
		return b3, b3Err
	}
	return sc, err
}

func (p jaegerOrB3) Inject(sc jaeger.SpanContext, carrier any) error {
	if err := p.jaeger.Inject(sc, carrier); err != nil {
		return err
	}
	return p.b3.Inject(sc, carrier)
}

// counter is a jaeger-client-go counter that adds to ours, and to total when there is one.
type counter struct {
	c     prometheus.Counter
	total *atomic.Int64
}

func (j counter) Inc(n int64) {
	if n > 0 {
		j.c.Add(float64(n))
		if j.total != nil {
			j.total.Add(n)
		}
	}
}

// logger adapts jaeger-client-go's logger: its errors (failed sends) are warnings, throttled;
// its news is debug. Without a Debugf method the client skips its per-flush messages altogether.
type logger struct{ warn, debug log.Logger }

func (l logger) Error(msg string) { _ = l.warn.Log("msg", msg) }

func (l logger) Infof(msg string, args ...any) {
	_ = l.debug.Log("msg", fmt.Sprintf(msg, args...))
}
