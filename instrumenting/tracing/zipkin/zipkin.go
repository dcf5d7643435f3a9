// Package zipkin is the tracing backend of zipkin-go-opentracing over zipkin-go: Zipkin v2 JSON
// spans sent over HTTP; trace context read from B3 headers, single or multi. zipkin-go-opentracing
// is inactive upstream; the otlp backend is the forward path.
package zipkin

import (
	"context"
	stdlog "log"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	zipkinot "github.com/openzipkin-contrib/zipkin-go-opentracing"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/reporter"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/tracing"
)

// New returns the zipkin backend. Spans pass a gate before zipkin-go's HTTP reporter takes them,
// so the spans lost to a full queue or a failed send are counted; failed sends are not retried.
func New(cfg config.Tracing, r tracing.Reporting) (tracing.Backend, error) {
	gate := tracing.NewSpanGate(r.Drops)
	counter := &sendCounter{client: &http.Client{}, gate: gate, logger: level.Warn(tracing.Throttle(r.Logger, tracing.LogEvery))}
	rep := &gatedReporter{gate: gate, drops: r.Drops, next: zipkinhttp.NewReporter(cfg.Zipkin.URL,
		zipkinhttp.Client(counter),
		zipkinhttp.Serializer(counter),
		zipkinhttp.Timeout(tracing.SendTimeout),
		zipkinhttp.BatchInterval(tracing.ReportInterval),
		// Above the gate's limit, so the reporter never discards spans on its own, uncounted.
		zipkinhttp.MaxBacklog(2*tracing.MaxPendingSpans),
		// Failed sends are logged by counter; what else the reporter says is detail.
		zipkinhttp.Logger(stdlog.New(log.NewStdlibAdapter(level.Debug(r.Logger)), "", 0)),
	)}
	local, err := zipkin.NewEndpoint(cfg.ServiceName, "")
	if err != nil {
		_ = rep.Close()
		return nil, err
	}
	native, err := zipkin.NewTracer(rep,
		zipkin.WithLocalEndpoint(local),
		zipkin.WithSampler(zipkin.AlwaysSample), // the head decision is tracing.Sampler's
		zipkin.WithTraceID128Bit(true),
		zipkin.WithSharedSpans(false), // our server span is a child of the caller's, as with the other backends
		zipkin.WithNoopSpan(true),     // unsampled spans cost next to nothing
	)
	if err != nil {
		_ = rep.Close()
		return nil, err
	}
	return &backend{tracer: zipkinot.Wrap(native), close: tracing.CloseWithin(rep.Close)}, nil
}

type backend struct {
	tracer opentracing.Tracer
	close  func(context.Context) error
}

// Tracer gives span.kind at start: zipkin-go-opentracing reads it only then.
func (b *backend) Tracer(kind ext.SpanKindEnum) opentracing.Tracer {
	return tracing.KindAtStart(b.tracer, kind)
}

func (b *backend) Span(span opentracing.Span) (string, bool) {
	sc, ok := span.Context().(zipkinot.SpanContext)
	if !ok {
		return "", false
	}
	return tracing.HexID(sc.TraceID.High, sc.TraceID.Low), sc.Sampled == nil || *sc.Sampled
}

// Sampled allocates once: the library returns a span's context only as a struct boxed into an
// interface, and has no other way to ask.
func (b *backend) Sampled(span opentracing.Span) bool {
	sc, ok := span.Context().(zipkinot.SpanContext)
	return ok && (sc.Sampled == nil || *sc.Sampled)
}

// Headers are B3's, multi (X-B3-*) and single (b3).
func (b *backend) Headers() []string { return []string{"b3", "x-b3-*"} }

func (b *backend) Close(ctx context.Context) error { return b.close(ctx) }

// NotSampled injects a B3 span context with the sampled flag off, in both forms.
func (b *backend) NotSampled(h http.Header, traceHigh, traceLow, spanID uint64) {
	no := false
	sc := zipkinot.SpanContext{TraceID: model.TraceID{High: traceHigh, Low: traceLow}, ID: model.ID(spanID), Sampled: &no}
	_ = b.tracer.Inject(sc, opentracing.HTTPHeaders, opentracing.HTTPHeadersCarrier(h))
}

// gatedReporter admits spans through the gate before zipkin-go's HTTP reporter takes them, and
// refuses them once closed (the HTTP reporter would block a sender forever after Close).
type gatedReporter struct {
	next   reporter.Reporter
	gate   *tracing.SpanGate
	drops  tracing.DropCounters
	mu     sync.RWMutex
	closed bool
}

func (r *gatedReporter) Send(s model.SpanModel) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.drops.SendFailed.Inc()
		return
	}
	if r.gate.Admit() {
		r.next.Send(s)
	}
}

func (r *gatedReporter) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	err := r.next.Close() // sends the last batch
	r.gate.Lost()
	return err
}

// sendCounter sits at both ends of zipkin-go's HTTP reporter sending a batch: as its serializer it
// learns how many spans the batch holds, as its HTTP client how the send went. The reporter
// serializes and sends one batch at a time, from one goroutine. It would keep a batch it could not
// send and send it again with the next, until its backlog overflowed; like the other backends, we
// drop it at once instead, counted: a failed send is answered to the reporter as a 503.
type sendCounter struct {
	reporter.JSONSerializer
	client *http.Client
	gate   *tracing.SpanGate
	logger log.Logger
	batch  atomic.Int64
}

func (c *sendCounter) Serialize(spans []*model.SpanModel) ([]byte, error) {
	c.batch.Store(int64(len(spans)))
	return c.JSONSerializer.Serialize(spans)
}

func (c *sendCounter) Do(req *http.Request) (*http.Response, error) {
	n := int(c.batch.Load())
	resp, err := c.client.Do(req)
	if err != nil {
		_ = c.logger.Log("msg", "spans not delivered", "spans", n, "err", err)
		c.gate.Settle(n, true)
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: req}, nil
	}
	failed := resp.StatusCode < 200 || resp.StatusCode > 299
	if failed {
		_ = c.logger.Log("msg", "spans not delivered", "spans", n, "status", resp.Status)
	}
	c.gate.Settle(n, failed)
	return resp, nil
}
