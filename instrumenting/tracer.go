package instrumenting

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/opentracing/opentracing-go"
	zipkinot "github.com/openzipkin-contrib/zipkin-go-opentracing"
	"github.com/openzipkin/zipkin-go"
	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/reporter"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber/jaeger-client-go"
	jaegertransport "github.com/uber/jaeger-client-go/transport"
	"github.com/uber/jaeger-client-go/utils"
	jaegerzipkin "github.com/uber/jaeger-client-go/zipkin"
	"go.opentelemetry.io/otel/attribute"
	otbridge "go.opentelemetry.io/otel/bridge/opentracing"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/anyroute/anyroute/config"
)

// Limits shared by the backends. A reporter holds at most maxPendingSpans spans that its backend
// has not yet taken; past that, new spans are dropped (and counted) rather than queued, so a slow or
// dead backend costs bounded memory and never makes a request wait.
const (
	maxPendingSpans = 2048
	sendTimeout     = 5 * time.Second  // one send to the backend
	reportInterval  = time.Second      // how long a finished span may wait to be sent
	logEvery        = 30 * time.Second // at most one backend complaint logged per interval
	instrumentation = "github.com/anyroute/anyroute"
)

// NewTracer builds the OpenTracing tracer that cfg.Backend names: a no-op tracer for "none",
// jaeger-client-go for "jaeger", zipkin-go-opentracing for "zipkin", and the OpenTelemetry SDK
// behind its OpenTracing bridge for "otlp". Every backend reports from a background goroutine:
// spans it cannot deliver, because its queue is full or a send failed, are dropped and counted in
// tracing_spans_dropped_total{reason} on reg, and its complaints are logged at most once per 30s.
// Failed sends are not retried. Over UDP (jaeger's agent) a send cannot be seen to fail: there,
// only spans the full queue turns away are counted.
//
// The returned func flushes the spans still buffered and releases the reporter; it gives up when
// its context ends. Call it once, after the last request has finished.
func NewTracer(cfg config.Tracing, logger log.Logger, reg prometheus.Registerer) (opentracing.Tracer, func(context.Context) error, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	drops, err := newDropCounters(reg)
	if err != nil {
		return nil, nil, err
	}
	logger = log.With(logger, "component", "tracing", "backend", cfg.Backend)
	switch cfg.Backend {
	case "", "none":
		return opentracing.NoopTracer{}, func(context.Context) error { return nil }, nil
	case "jaeger":
		return newJaegerTracer(cfg, logger, drops)
	case "zipkin":
		return newZipkinTracer(cfg, logger, drops)
	case "otlp":
		return newOTLPTracer(cfg, logger, drops)
	}
	return nil, nil, fmt.Errorf("unknown tracing backend %q", cfg.Backend)
}

// dropCounters count the spans a backend never received, by reason.
type dropCounters struct {
	queueFull  prometheus.Counter // the backend was too slow or away for long: the queue was full
	sendFailed prometheus.Counter // a send to the backend failed or was refused
}

func newDropCounters(reg prometheus.Registerer) (dropCounters, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracing_spans_dropped_total",
		Help: "Finished spans the tracing backend never received: reason queue_full when the backend was too slow or away long enough to fill the reporter's queue, send_failed when a send failed.",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			return dropCounters{}, fmt.Errorf("tracing metrics: %w", err)
		}
	}
	return dropCounters{queueFull: vec.WithLabelValues("queue_full"), sendFailed: vec.WithLabelValues("send_failed")}, nil
}

// spanGate bounds the spans handed to a reporter and not yet settled (delivered or lost), for
// reporters whose own queues do not count what they drop. Admit before handing a span over;
// settle what a send reports.
type spanGate struct {
	limit   int64
	pending atomic.Int64
	drops   dropCounters
}

func newSpanGate(drops dropCounters) *spanGate {
	return &spanGate{limit: maxPendingSpans, drops: drops}
}

func (g *spanGate) admit() bool {
	if g.pending.Add(1) > g.limit {
		g.pending.Add(-1)
		g.drops.queueFull.Inc()
		return false
	}
	return true
}

func (g *spanGate) settle(n int, failed bool) {
	g.pending.Add(-int64(n))
	if failed && n > 0 {
		g.drops.sendFailed.Add(float64(n))
	}
}

// lost counts whatever is still pending as undelivered: called once the reporter has closed.
func (g *spanGate) lost() {
	if n := g.pending.Swap(0); n > 0 {
		g.drops.sendFailed.Add(float64(n))
	}
}

// closeWithin runs a closer that takes no context, giving up (and leaving it running) when ctx
// ends: a backend that does not answer must not hold the process at exit.
func closeWithin(closeFn func() error) func(context.Context) error {
	return func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- closeFn() }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return fmt.Errorf("flushing spans: %w", ctx.Err())
		}
	}
}

// --- jaeger -------------------------------------------------------------------------------------

func newJaegerTracer(cfg config.Tracing, logger log.Logger, drops dropCounters) (opentracing.Tracer, func(context.Context) error, error) {
	sampler, err := jaegerSampler(cfg.Sampler)
	if err != nil {
		return nil, nil, err
	}
	jlog := jaegerLogger{warn: level.Warn(throttle(logger, logEvery)), debug: level.Debug(logger)}
	var sender jaeger.Transport
	if cfg.Jaeger.CollectorURL != "" {
		sender = jaegertransport.NewHTTPTransport(cfg.Jaeger.CollectorURL, jaegertransport.HTTPTimeout(sendTimeout))
	} else {
		// The UDP client re-resolves the agent's address every 30s, so an agent that is not up
		// yet (or a name that does not resolve yet) is not an error at start.
		sender, err = jaeger.NewUDPTransportWithParams(jaeger.UDPTransportParams{
			AgentClientUDPParams: utils.AgentClientUDPParams{HostPort: cfg.Jaeger.AgentAddr, Logger: jlog},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("jaeger agent %q: %w", cfg.Jaeger.AgentAddr, err)
		}
	}
	// The remote reporter counts what it drops (queue full) and what its sender fails to send; its
	// metrics are plain counters, so ours stand in for them.
	metrics := jaeger.NewNullMetrics()
	metrics.ReporterDropped = jaegerCounter{drops.queueFull}
	metrics.ReporterFailure = jaegerCounter{drops.sendFailed}
	rep := jaeger.NewRemoteReporter(sender,
		jaeger.ReporterOptions.QueueSize(maxPendingSpans),
		jaeger.ReporterOptions.BufferFlushInterval(reportInterval),
		jaeger.ReporterOptions.Metrics(metrics),
		jaeger.ReporterOptions.Logger(jlog),
	)
	prop := jaegerOrB3{
		jaeger: jaeger.NewHTTPHeaderPropagator(new(jaeger.HeadersConfig).ApplyDefaults(), *metrics),
		b3:     jaegerzipkin.NewZipkinB3HTTPHeaderPropagator(),
	}
	tracer, closer := jaeger.NewTracer(cfg.ServiceName, sampler, rep,
		jaeger.TracerOptions.Gen128Bit(true), // the same trace ids as B3 and W3C callers send
		// Reuse spans: allocating one per request was a third of the request path's allocations
		// with probabilistic sampling. Nothing holds a span after Finish (TraceID keeps the id).
		jaeger.TracerOptions.PoolSpans(true),
		jaeger.TracerOptions.Metrics(metrics),
		jaeger.TracerOptions.Logger(jlog),
		jaeger.TracerOptions.Injector(opentracing.HTTPHeaders, prop),
		jaeger.TracerOptions.Extractor(opentracing.HTTPHeaders, prop),
	)
	return tracer, closeWithin(closer.Close), nil
}

func jaegerSampler(s config.Sampler) (jaeger.Sampler, error) {
	switch s.Type {
	case "const":
		return jaeger.NewConstSampler(s.Param >= 1), nil
	case "probabilistic":
		return jaeger.NewProbabilisticSampler(s.Param)
	case "ratelimiting":
		return jaeger.NewRateLimitingSampler(s.Param), nil
	}
	return nil, fmt.Errorf("unknown sampler type %q", s.Type)
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

type jaegerCounter struct{ c prometheus.Counter }

func (j jaegerCounter) Inc(n int64) {
	if n > 0 {
		j.c.Add(float64(n))
	}
}

// jaegerLogger adapts jaeger-client-go's logger: its errors (failed sends) are warnings, throttled;
// its news is debug. Without a Debugf method the client skips its per-flush messages altogether.
type jaegerLogger struct{ warn, debug log.Logger }

func (l jaegerLogger) Error(msg string) { _ = l.warn.Log("msg", msg) }

func (l jaegerLogger) Infof(msg string, args ...any) {
	_ = l.debug.Log("msg", fmt.Sprintf(msg, args...))
}

// --- zipkin -------------------------------------------------------------------------------------

func newZipkinTracer(cfg config.Tracing, logger log.Logger, drops dropCounters) (opentracing.Tracer, func(context.Context) error, error) {
	sampler, err := zipkinSampler(cfg.Sampler)
	if err != nil {
		return nil, nil, err
	}
	gate := newSpanGate(drops)
	counter := &zipkinCounter{client: &http.Client{}, gate: gate, logger: level.Warn(throttle(logger, logEvery))}
	rep := &zipkinReporter{gate: gate, next: zipkinhttp.NewReporter(cfg.Zipkin.URL,
		zipkinhttp.Client(counter),
		zipkinhttp.Serializer(counter),
		zipkinhttp.Timeout(sendTimeout),
		zipkinhttp.BatchInterval(reportInterval),
		// Above the gate's limit, so the reporter never discards spans on its own, uncounted.
		zipkinhttp.MaxBacklog(2*maxPendingSpans),
		// Failed sends are logged by counter; what else the reporter says is detail.
		zipkinhttp.Logger(stdlog.New(logWriter{level.Debug(logger)}, "", 0)),
	)}
	local, err := zipkin.NewEndpoint(cfg.ServiceName, "")
	if err != nil {
		_ = rep.Close()
		return nil, nil, err
	}
	native, err := zipkin.NewTracer(rep,
		zipkin.WithLocalEndpoint(local),
		zipkin.WithSampler(sampler),
		zipkin.WithTraceID128Bit(true),
		zipkin.WithSharedSpans(false), // our server span is a child of the caller's, as with the other backends
		zipkin.WithNoopSpan(true),     // unsampled spans cost next to nothing
	)
	if err != nil {
		_ = rep.Close()
		return nil, nil, err
	}
	return zipkinot.Wrap(native), closeWithin(rep.Close), nil
}

func zipkinSampler(s config.Sampler) (zipkin.Sampler, error) {
	switch s.Type {
	case "const":
		if s.Param >= 1 {
			return zipkin.AlwaysSample, nil
		}
		return zipkin.NeverSample, nil
	case "probabilistic":
		return zipkin.NewBoundarySampler(s.Param, time.Now().UnixNano())
	case "ratelimiting":
		l := newRateLimiter(s.Param)
		return func(uint64) bool { return l.allow() }, nil
	}
	return nil, fmt.Errorf("unknown sampler type %q", s.Type)
}

// zipkinReporter admits spans through the gate before zipkin-go's HTTP reporter takes them, and
// refuses them once closed (the HTTP reporter would block a sender forever after Close).
type zipkinReporter struct {
	next   reporter.Reporter
	gate   *spanGate
	mu     sync.RWMutex
	closed bool
}

func (r *zipkinReporter) Send(s model.SpanModel) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.gate.drops.sendFailed.Inc()
		return
	}
	if r.gate.admit() {
		r.next.Send(s)
	}
}

func (r *zipkinReporter) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	err := r.next.Close() // sends the last batch
	r.gate.lost()
	return err
}

// zipkinCounter sits at both ends of zipkin-go's HTTP reporter sending a batch: as its serializer
// it learns how many spans the batch holds, as its HTTP client how the send went. The reporter
// serializes and sends one batch at a time, from one goroutine. It would keep a batch it could not
// send and send it again with the next, until its backlog overflowed; like the other backends, we
// drop it at once instead, counted: a failed send is answered to the reporter as a 503.
type zipkinCounter struct {
	reporter.JSONSerializer
	client *http.Client
	gate   *spanGate
	logger log.Logger
	batch  atomic.Int64
}

func (c *zipkinCounter) Serialize(spans []*model.SpanModel) ([]byte, error) {
	c.batch.Store(int64(len(spans)))
	return c.JSONSerializer.Serialize(spans)
}

func (c *zipkinCounter) Do(req *http.Request) (*http.Response, error) {
	n := int(c.batch.Load())
	resp, err := c.client.Do(req)
	if err != nil {
		_ = c.logger.Log("msg", "spans not delivered", "spans", n, "err", err)
		c.gate.settle(n, true)
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: req}, nil
	}
	failed := resp.StatusCode < 200 || resp.StatusCode > 299
	if failed {
		_ = c.logger.Log("msg", "spans not delivered", "spans", n, "status", resp.Status)
	}
	c.gate.settle(n, failed)
	return resp, nil
}

// logWriter turns a standard library logger's lines into structured log lines.
type logWriter struct{ logger log.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	_ = w.logger.Log("msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// --- otlp ---------------------------------------------------------------------------------------

func newOTLPTracer(cfg config.Tracing, logger log.Logger, drops dropCounters) (opentracing.Tracer, func(context.Context) error, error) {
	sampler, err := otelSampler(cfg.Sampler)
	if err != nil {
		return nil, nil, err
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(cfg.OTLP.Endpoint),
		otlptracehttp.WithTimeout(sendTimeout),
		// No retries: a batch that fails is counted and dropped, and the next one tries again.
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
	}
	if cfg.OTLP.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	gate := newSpanGate(drops)
	bsp := sdktrace.NewBatchSpanProcessor(
		&otelExporter{SpanExporter: exp, gate: gate, logger: level.Warn(throttle(logger, logEvery))},
		sdktrace.WithBatchTimeout(reportInterval),
		sdktrace.WithExportTimeout(sendTimeout),
		sdktrace.WithMaxQueueSize(2*maxPendingSpans), // above the gate's limit: it never drops uncounted
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))),
		sdktrace.WithSpanProcessor(otelGate{SpanProcessor: bsp, gate: gate}),
	)
	bridge := otbridge.NewBridgeTracer()
	bridge.SetOpenTelemetryTracer(tp.Tracer(instrumentation))
	bridge.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	warn := level.Debug(logger)
	bridge.SetWarningHandler(func(msg string) { _ = warn.Log("msg", strings.TrimSpace(msg)) })
	return bridge, tp.Shutdown, nil
}

// otelSampler follows the parent's decision when the caller sent one, as the other backends do.
func otelSampler(s config.Sampler) (sdktrace.Sampler, error) {
	var root sdktrace.Sampler
	switch s.Type {
	case "const":
		root = sdktrace.NeverSample()
		if s.Param >= 1 {
			root = sdktrace.AlwaysSample()
		}
	case "probabilistic":
		root = sdktrace.TraceIDRatioBased(s.Param)
	case "ratelimiting":
		root = otelRateLimited{newRateLimiter(s.Param), s.Param}
	default:
		return nil, fmt.Errorf("unknown sampler type %q", s.Type)
	}
	return sdktrace.ParentBased(root), nil
}

type otelRateLimited struct {
	limiter   *rateLimiter
	perSecond float64
}

func (s otelRateLimited) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	decision := sdktrace.Drop
	if s.limiter.allow() {
		decision = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: decision, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}

func (s otelRateLimited) Description() string { return fmt.Sprintf("RateLimiting{%g}", s.perSecond) }

// otelGate admits finished, sampled spans through the gate before the batch processor queues them.
type otelGate struct {
	sdktrace.SpanProcessor
	gate *spanGate
}

func (p otelGate) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() && p.gate.admit() {
		p.SpanProcessor.OnEnd(s)
	}
}

// otelExporter settles every batch with the gate and logs failures itself, so the SDK's global
// error handler (which would log each one) never hears of them.
type otelExporter struct {
	sdktrace.SpanExporter
	gate   *spanGate
	logger log.Logger
}

func (e *otelExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.gate.settle(len(spans), err != nil)
	if err != nil {
		_ = e.logger.Log("msg", "spans not delivered", "spans", len(spans), "err", err)
	}
	return nil
}

// --- shared -------------------------------------------------------------------------------------

// rateLimiter is a token bucket: perSecond tokens a second, holding at most max(perSecond, 1).
type rateLimiter struct {
	mu                  sync.Mutex
	rate, balance, most float64
	last                time.Time
}

func newRateLimiter(perSecond float64) *rateLimiter {
	most := math.Max(perSecond, 1)
	return &rateLimiter{rate: perSecond, balance: most, most: most, last: time.Now()}
}

func (l *rateLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.balance = math.Min(l.most, l.balance+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.balance >= 1 {
		l.balance--
		return true
	}
	return false
}

// throttle passes the first log line and then at most one per interval, adding how many it held
// back: a backend that stays down must not flood the log.
func throttle(next log.Logger, every time.Duration) log.Logger {
	return &throttled{next: next, every: every}
}

type throttled struct {
	next  log.Logger
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	held  int
}

func (t *throttled) Log(keyvals ...any) error {
	t.mu.Lock()
	now := time.Now()
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.held++
		t.mu.Unlock()
		return nil
	}
	held := t.held
	t.last, t.held = now, 0
	t.mu.Unlock()
	if held > 0 {
		keyvals = append(keyvals, "suppressed", held)
	}
	return t.next.Log(keyvals...)
}
