package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/instrumenting/metrics"
	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/transport/load/stages"
)

// LateAfter is how far past its due time a send counts as late in the summary; the send lag
// histogram has the whole distribution.
const LateAfter = 10 * time.Millisecond

// Runner runs one spec. Its counters are the run's single source of truth: the request metrics
// (by target, method and code) are an Aggregator's, which the /metrics collector and the summary
// both read, and the schedule's counters (scheduled, sent, dropped, per second) are its own.
type Runner struct {
	spec    Spec
	plan    stages.Plan
	agg     *metrics.Aggregator
	tracing *tracing.Tracing
	inject  func(context.Context, *http.Request) context.Context
	client  *http.Client
	targets []target
	cum     []float64 // cumulative weights, for the seeded choice of a target
	runID   string    // prefix of the x-request-id of every request

	hard       context.Context // the requests' context: canceled when the drain runs out, or by Abort
	abort      context.CancelFunc
	start      time.Time
	started    atomic.Bool
	scheduled  atomic.Int64
	sent       atomic.Int64
	dropped    atomic.Int64
	late       atomic.Int64
	ended      atomic.Int64
	classes    [6]atomic.Int64 // ended by class: no answer, 1xx .. 5xx
	lastDue    atomic.Int64    // offset of the last send's due time, ns
	lastSend   atomic.Int64    // offset of the last send, ns
	seconds    []second
	lag        logHist
	latency    logHist
	lagMetric  prometheus.Histogram
	stoppedAt  atomic.Int64 // offset of the stop, ns; 0: ran to the end
	stopReason atomic.Value
}

type target struct {
	Target
	id     int // the aggregator's route id
	header http.Header
}

// second counts one second of the schedule: requests due in it, sent in it (late: of those, sent
// more than LateAfter past their due time), dropped in it.
type second struct {
	scheduled, sent, late, dropped atomic.Int64
}

// NewAggregator returns the aggregator of a spec's requests: one route per target name, timed on
// the service's default latency buckets.
func NewAggregator(spec Spec, buckets []float64) *metrics.Aggregator {
	names := make([]string, len(spec.Targets))
	for i, t := range spec.Targets {
		names[i] = t.Name
	}
	return metrics.NewAggregator("other", names, buckets, metrics.MaxRoutes(len(names)+1))
}

// NewRunner returns the runner of a checked spec (WithDefaults, then Check), counting into agg
// (from NewAggregator) and tracing each request with tr (which may have no backend).
func NewRunner(spec Spec, agg *metrics.Aggregator, tr *tracing.Tracing, logger log.Logger) *Runner {
	r := &Runner{spec: spec, plan: spec.Plan(), agg: agg, tracing: tr, inject: tr.ContextToHTTP(logger)}
	total := 0.0
	for _, t := range spec.Targets {
		h := http.Header{}
		for k, v := range t.Headers {
			h.Set(k, v)
		}
		r.targets = append(r.targets, target{Target: t, id: agg.RouteID(t.Name), header: h})
		total += t.Weight
		r.cum = append(r.cum, total)
	}
	bound := spec.MaxInFlight
	if spec.Closed() {
		bound = spec.Concurrency
	}
	r.client = &http.Client{Transport: &http.Transport{
		Proxy:               nil, // load goes where the URL says, never through an environment's proxy
		MaxIdleConns:        bound,
		MaxIdleConnsPerHost: bound, // every connection in flight may be reused: no churn at high rates
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		// A connection per request when asked (Spec.NewConnections): each is balanced afresh.
		DisableKeepAlives: spec.NewConnections,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var id [4]byte
	_, _ = rand.Read(id[:])
	r.runID = hex.EncodeToString(id[:])
	d := time.Duration(spec.Duration)
	if !spec.Closed() {
		d = r.plan.Duration()
	}
	r.seconds = make([]second, int(math.Ceil(d.Seconds()))+1) // the last takes sends that fell past the end
	r.lagMetric = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "load", Name: "send_lag_seconds",
		Help:    "How long after its due time each request left (open model): what the generator controls; latency runs from the due time.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
	})
	r.stopReason.Store("end")
	r.hard, r.abort = context.WithCancel(context.Background())
	return r
}

// Abort cancels the requests in flight at once, as a drain that ran out does: they end as
// canceled and are counted. A second SIGINT or SIGTERM calls it.
func (r *Runner) Abort() { r.abort() }

// pick is the target of the n-th request: a hash of the seed and n against the cumulative
// weights, so that a seed gives the same targets in the same order whatever the timing.
func (r *Runner) pick(n int64) *target {
	if len(r.targets) == 1 {
		return &r.targets[0]
	}
	u := float64(splitmix64(r.spec.Seed^uint64(n)*0x9e3779b97f4a7c15)>>11) / (1 << 53)
	i, _ := slices.BinarySearch(r.cum, u*r.cum[len(r.cum)-1])
	return &r.targets[min(i, len(r.targets)-1)]
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Run sends the load until the schedule (or the closed model's duration) ends or ctx is done (a
// signal), then waits for the requests in flight for up to the spec's drain (or until Abort); the
// ones still out then are canceled and counted as canceled. It returns when every request sent
// has ended and been counted. A Runner runs once.
func (r *Runner) Run(ctx context.Context) {
	hard := r.hard
	defer r.abort()
	var wg sync.WaitGroup
	r.start = time.Now()
	r.started.Store(true)
	if r.spec.Closed() {
		r.runClosed(ctx, hard, &wg)
	} else {
		r.runOpen(ctx, hard, &wg)
	}
	if ctx.Err() != nil {
		r.stoppedAt.Store(int64(max(time.Since(r.start), 1)))
		r.stopReason.Store("signal")
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drain := time.NewTimer(time.Duration(r.spec.Drain))
	defer drain.Stop()
	select {
	case <-done:
	case <-drain.C:
		r.abort() // the requests still out end now, as canceled
		<-done
	}
}

func (r *Runner) runOpen(stop context.Context, hard context.Context, wg *sync.WaitGroup) {
	sem := make(chan struct{}, r.spec.MaxInFlight)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for n := int64(0); ; n++ {
		off, ok := r.plan.SendTime(n)
		if !ok {
			return
		}
		due := r.start.Add(off)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-stop.Done():
				return
			case <-timer.C:
			}
		} else if stop.Err() != nil {
			return
		}
		r.scheduled.Add(1)
		due1 := r.bucket(off)
		due1.scheduled.Add(1)
		select {
		case sem <- struct{}{}:
		default: // as many in flight as allowed: this one is not sent, and is counted as dropped
			r.dropped.Add(1)
			due1.dropped.Add(1)
			continue
		}
		now := time.Now()
		r.countSend(now, off)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.do(hard, n, r.pick(n), due)
			<-sem
		}()
	}
}

// countSend counts a request leaving now that was due at off.
func (r *Runner) countSend(now time.Time, off time.Duration) {
	at := now.Sub(r.start)
	lag := max(at-off, 0)
	r.lag.observe(lag)
	r.lagMetric.Observe(lag.Seconds())
	b := r.bucket(at)
	if lag > LateAfter {
		r.late.Add(1)
		b.late.Add(1)
	}
	b.sent.Add(1)
	r.lastDue.Store(int64(off))
	r.lastSend.Store(int64(at))
	r.sent.Add(1)
}

func (r *Runner) bucket(at time.Duration) *second {
	return &r.seconds[min(max(int(at/time.Second), 0), len(r.seconds)-1)]
}

func (r *Runner) runClosed(stop context.Context, hard context.Context, wg *sync.WaitGroup) {
	end := r.start.Add(time.Duration(r.spec.Duration))
	var next atomic.Int64
	stopped := make(chan struct{})
	var stopOnce sync.Once
	deadline := time.AfterFunc(time.Until(end), func() { stopOnce.Do(func() { close(stopped) }) })
	defer deadline.Stop()
	go func() {
		select {
		case <-stop.Done():
			stopOnce.Do(func() { close(stopped) })
		case <-stopped:
		}
	}()
	var workers sync.WaitGroup
	for range r.spec.Concurrency {
		workers.Add(1)
		wg.Add(1)
		go func() {
			defer workers.Done()
			defer wg.Done()
			for {
				select {
				case <-stopped:
					return
				default:
				}
				n := next.Add(1) - 1
				now := time.Now()
				off := now.Sub(r.start)
				r.scheduled.Add(1)
				r.bucket(off).scheduled.Add(1)
				r.countSend(now, off)
				r.do(hard, n, r.pick(n), now)
			}
		}()
	}
	<-stopped
}

// do sends one request and counts how it ended; latency runs from due.
func (r *Runner) do(ctx context.Context, n int64, t *target, due time.Time) {
	token := r.agg.Begin()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.spec.Timeout))
	defer cancel()
	ctx, span := r.tracing.Root(ctx, "load "+t.Name)
	status, code := r.send(ctx, n, t)
	d := time.Since(due)
	span.Finish(t.Method, t.URL, status)
	if span != nil && span.Sampled {
		r.agg.EndSampled(token, t.id, t.Method, code, d, metrics.Monotonic(), span.TraceID)
	} else {
		r.agg.End(token, t.id, t.Method, code, d)
	}
	r.latency.observe(d)
	r.classes[min(status/100, 5)].Add(1)
	r.ended.Add(1)
}

// send makes the request and reads the answer's body to its end (so the connection is reused),
// returning its status and code label (the status, or why no answer came).
func (r *Runner) send(ctx context.Context, n int64, t *target) (status, code int) {
	var body io.Reader
	if t.Body != "" {
		body = strings.NewReader(t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, body)
	if err != nil { // the URL and method were checked: only a bug lands here
		return 0, metrics.CodeError
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	req.Header.Set("X-Request-Id", r.runID+"-"+strconv.FormatInt(n, 10))
	r.inject(ctx, req)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, errorCode(ctx, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if http.StatusText(resp.StatusCode) == "" {
		return resp.StatusCode, metrics.CodeNonStandard
	}
	return resp.StatusCode, resp.StatusCode
}

func errorCode(ctx context.Context, err error) int {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return metrics.CodeTimeout
	case ctx.Err() != nil:
		return metrics.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return metrics.CodeTimeout
	}
	return metrics.CodeError
}
