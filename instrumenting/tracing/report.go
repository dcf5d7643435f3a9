package tracing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits every backend keeps to. A reporter holds at most MaxPendingSpans spans that its backend
// has not yet taken; past that, new spans are dropped (and counted) rather than queued, so a slow
// or dead backend costs bounded memory and never makes a request wait.
const (
	MaxPendingSpans = 2048
	SendTimeout     = 5 * time.Second  // one send to the backend
	ReportInterval  = time.Second      // how long a finished span may wait to be sent
	LogEvery        = 30 * time.Second // at most one backend complaint logged per interval
)

// Reporting is what a backend reports through: its logger, already naming the component and the
// backend, and the counters of the spans it could not deliver.
type Reporting struct {
	Logger log.Logger
	Drops  DropCounters
}

// DropCounters count the finished spans a backend never received, by reason.
type DropCounters struct {
	QueueFull  prometheus.Counter // the backend was too slow or away for long: the queue was full
	SendFailed prometheus.Counter // a send to the backend failed or was refused
}

// NewReporting registers NAMESPACE_tracing_spans_dropped_total{reason} on reg and returns the
// Reporting of the named backend. Every backend, "none" too, has the counter, so dashboards and
// alerts find it whatever the config.
func NewReporting(logger log.Logger, reg prometheus.Registerer, namespace, backend string) (Reporting, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "tracing_spans_dropped_total",
		Help:      "Finished spans the tracing backend never received: reason queue_full when the backend was too slow or away long enough to fill the reporter's queue, send_failed when a send failed.",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			return Reporting{}, fmt.Errorf("tracing metrics: %w", err)
		}
	}
	return Reporting{
		Logger: log.With(logger, "component", "tracing", "backend", backend),
		Drops:  DropCounters{QueueFull: vec.WithLabelValues("queue_full"), SendFailed: vec.WithLabelValues("send_failed")},
	}, nil
}

// SpanGate bounds the spans handed to a reporter and not yet settled (delivered or lost), for
// reporters whose own queues do not count what they drop. Admit before handing a span over; Settle
// what a send reports; Lost once the reporter has closed.
type SpanGate struct {
	pending atomic.Int64
	drops   DropCounters
}

// NewSpanGate returns a gate of MaxPendingSpans that counts in drops.
func NewSpanGate(drops DropCounters) *SpanGate { return &SpanGate{drops: drops} }

// Admit takes a place for one span, or counts it as queue_full and returns false.
func (g *SpanGate) Admit() bool {
	if g.pending.Add(1) > MaxPendingSpans {
		g.pending.Add(-1)
		g.drops.QueueFull.Inc()
		return false
	}
	return true
}

// Settle gives back the places of n spans a send took, counting them as send_failed if it failed.
func (g *SpanGate) Settle(n int, failed bool) {
	g.pending.Add(-int64(n))
	if failed && n > 0 {
		g.drops.SendFailed.Add(float64(n))
	}
}

// Lost counts whatever is still pending as undelivered.
func (g *SpanGate) Lost() {
	if n := g.pending.Swap(0); n > 0 {
		g.drops.SendFailed.Add(float64(n))
	}
}

// CloseWithin runs a closer that takes no context, giving up (and leaving it running) when ctx
// ends: a backend that does not answer must not hold the process at exit.
func CloseWithin(closeFn func() error) func(context.Context) error {
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

// KindAtStart returns a tracer that gives every span it starts the span.kind kind from the start,
// for libraries that read the kind only then (zipkin-go-opentracing, the OpenTelemetry bridge);
// go-kit's decorators set it afterwards.
func KindAtStart(tracer opentracing.Tracer, kind ext.SpanKindEnum) opentracing.Tracer {
	if kind == "" {
		return tracer
	}
	return kindAtStart{Tracer: tracer, kind: opentracing.Tag{Key: string(ext.SpanKind), Value: kind}}
}

// kindAtStart adds the span.kind tag to every span's start options. The tag is held as the option
// interface, boxed once: converted at each start it was an allocation per span.
type kindAtStart struct {
	opentracing.Tracer
	kind opentracing.StartSpanOption
}

func (t kindAtStart) StartSpan(name string, opts ...opentracing.StartSpanOption) opentracing.Span {
	return t.Tracer.StartSpan(name, append(opts, t.kind)...)
}

// HexID writes a 128-bit trace id as 32 hex digits, or 16 when its high half is zero (a 64-bit
// id), as jaeger-client-go and zipkin-go print them, with one allocation instead of fmt's two; ""
// for the invalid id 0.
func HexID(hi, lo uint64) string {
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

// Throttle passes the first log line and then at most one per interval, adding how many it held
// back: a backend that stays down must not flood the log.
func Throttle(next log.Logger, every time.Duration) log.Logger {
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
