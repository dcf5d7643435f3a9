package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anyroute/anyroute/service"
)

func TestCollectorExposition(t *testing.T) {
	agg := NewAggregator("other", []string{"orders"}, []float64{0.01, 0.1})
	orders := agg.RouteID("orders")
	for _, o := range []struct {
		route  int
		method string
		code   int
		d      time.Duration
	}{
		{orders, "GET", 200, 5 * time.Millisecond},
		{orders, "GET", 200, 50 * time.Millisecond},
		{orders, "GET", 200, 10 * time.Millisecond}, // on a bound: counted in that bucket (le)
		{orders, "POST", 503, 2 * time.Second},
		{0, "BREW", 200, time.Millisecond}, // the catch-all, an invented method
		{7, "GET", 404, time.Millisecond},  // unknown route id: folded into other
	} {
		agg.End(agg.Begin(), o.route, o.method, o.code, o.d)
	}
	f := NewFlusher(agg, time.Second)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{Version: "v1", Revision: "abc"}))

	want := `
# HELP app_requests_total Requests answered, by method, route rule and status code.
# TYPE app_requests_total counter
app_requests_total{code="200",method="GET",route="orders"} 3
app_requests_total{code="503",method="POST",route="orders"} 1
app_requests_total{code="200",method="OTHER",route="other"} 1
app_requests_total{code="404",method="GET",route="other"} 1
# HELP app_request_duration_seconds Time the service took to answer, by method, route rule and status code.
# TYPE app_request_duration_seconds histogram
app_request_duration_seconds_bucket{code="200",method="GET",route="orders",le="0.01"} 2
app_request_duration_seconds_bucket{code="200",method="GET",route="orders",le="0.1"} 3
app_request_duration_seconds_bucket{code="200",method="GET",route="orders",le="+Inf"} 3
app_request_duration_seconds_sum{code="200",method="GET",route="orders"} 0.065
app_request_duration_seconds_count{code="200",method="GET",route="orders"} 3
app_request_duration_seconds_bucket{code="503",method="POST",route="orders",le="0.01"} 0
app_request_duration_seconds_bucket{code="503",method="POST",route="orders",le="0.1"} 0
app_request_duration_seconds_bucket{code="503",method="POST",route="orders",le="+Inf"} 1
app_request_duration_seconds_sum{code="503",method="POST",route="orders"} 2
app_request_duration_seconds_count{code="503",method="POST",route="orders"} 1
app_request_duration_seconds_bucket{code="200",method="OTHER",route="other",le="0.01"} 1
app_request_duration_seconds_bucket{code="200",method="OTHER",route="other",le="0.1"} 1
app_request_duration_seconds_bucket{code="200",method="OTHER",route="other",le="+Inf"} 1
app_request_duration_seconds_sum{code="200",method="OTHER",route="other"} 0.001
app_request_duration_seconds_count{code="200",method="OTHER",route="other"} 1
app_request_duration_seconds_bucket{code="404",method="GET",route="other",le="0.01"} 1
app_request_duration_seconds_bucket{code="404",method="GET",route="other",le="0.1"} 1
app_request_duration_seconds_bucket{code="404",method="GET",route="other",le="+Inf"} 1
app_request_duration_seconds_sum{code="404",method="GET",route="other"} 0.001
app_request_duration_seconds_count{code="404",method="GET",route="other"} 1
# HELP app_requests_in_flight Requests being answered now.
# TYPE app_requests_in_flight gauge
app_requests_in_flight 0
# HELP app_metrics_folded_requests_total Requests whose route was not a configured rule and were counted under route "other" instead.
# TYPE app_metrics_folded_requests_total counter
app_metrics_folded_requests_total 1
`
	err := testutil.CollectAndCompare(reg, strings.NewReader(want),
		"app_requests_total", "app_request_duration_seconds", "app_requests_in_flight", "app_metrics_folded_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "app_build_info", "app_metrics_flushes_total",
		"app_metrics_flush_duration_seconds", "app_metrics_last_flush_timestamp_seconds"); n != 4 {
		t.Fatalf("flusher health and build info: %d metrics, want 4", n)
	}
	if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
		t.Fatalf("metric lint: %v %v", lint, err)
	}
}

func TestCollectorServesOnlyWhatWasFlushed(t *testing.T) {
	agg := NewAggregator("other", nil, []float64{1})
	f := NewFlusher(agg, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))
	agg.End(agg.Begin(), 0, "GET", 200, time.Millisecond)
	if n := testutil.CollectAndCount(reg, "app_requests_total"); n != 0 {
		t.Fatalf("unflushed request already served")
	}
	f.Flush()
	if n := testutil.CollectAndCount(reg, "app_requests_total"); n != 1 {
		t.Fatalf("flushed request not served")
	}
}

// TestAggregatorIsExactUnderContention hammers the aggregator from many goroutines while the
// flusher runs, and checks that the final published totals equal the requests made.
func TestAggregatorIsExactUnderContention(t *testing.T) {
	routes := []string{"a", "b", "c"}
	agg := NewAggregator("other", routes, []float64{0.001, 0.01})
	f := NewFlusher(agg, time.Millisecond)
	go func() { _ = f.Run() }()

	const workers, perWorker = 16, 5000
	codes := []int{200, 201, 404, 500, 503}
	methods := []string{"GET", "POST", "BREW"}
	var wg sync.WaitGroup
	var lastMu sync.Mutex
	var monotonicErr error
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				tok := agg.Begin()
				agg.End(tok, (w+i)%4, methods[i%3], codes[(w*i)%len(codes)], time.Duration(i%20)*time.Millisecond)
			}
		}()
	}
	// Meanwhile, published totals only ever grow.
	done := make(chan struct{})
	go func() {
		defer close(done)
		var prev uint64
		for range 200 {
			total := snapshotTotal(f.Current())
			if total < prev {
				lastMu.Lock()
				monotonicErr = fmt.Errorf("published total went from %d to %d", prev, total)
				lastMu.Unlock()
			}
			prev = total
			time.Sleep(200 * time.Microsecond)
		}
	}()
	wg.Wait()
	<-done
	f.Stop()

	snap := f.Current()
	if got := snapshotTotal(snap); got != workers*perWorker {
		t.Fatalf("published %d requests, made %d", got, workers*perWorker)
	}
	if monotonicErr != nil {
		t.Fatal(monotonicErr)
	}
	if agg.InFlight() != 0 {
		t.Fatalf("in flight %d after all requests ended", agg.InFlight())
	}
	// Series stay bounded: 4 routes × 3 methods (BREW → OTHER) × at most 5 codes.
	if n := len(snap.Series); n > 4*3*5 {
		t.Fatalf("%d series", n)
	}
	for _, s := range snap.Series {
		if s.Buckets[len(s.Buckets)-1] > s.Count {
			t.Fatalf("series %+v: bucket above count", s)
		}
	}
}

func snapshotTotal(s *Snapshot) uint64 {
	var n uint64
	for _, x := range s.Series {
		n += x.Count
	}
	return n
}

type fixedService struct {
	resp service.Response
	err  error
}

func (f fixedService) Handle(context.Context, service.Request) (service.Response, error) {
	return f.resp, f.err
}

func TestCountingRecordsEveryAnswer(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{1})
	r := agg.RouteID("r")
	ok := Counting(agg)(fixedService{resp: service.Response{Status: 201, RouteID: r}})
	gone := Counting(agg)(fixedService{resp: service.Response{Status: 499, RouteID: r}, err: context.Canceled})
	for range 3 {
		_, _ = ok.Handle(context.Background(), service.Request{Method: "PUT"})
	}
	if _, err := gone.Handle(context.Background(), service.Request{Method: "GET"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the decorator must pass errors through, got %v", err)
	}
	got := map[string]uint64{}
	for _, s := range agg.Snapshot().Series {
		got[fmt.Sprintf("%s %s %d", s.Route, s.Method, s.Code)] = s.Count
	}
	if len(got) != 2 || got["r PUT 201"] != 3 || got["r GET 499"] != 1 {
		t.Fatalf("recorded %v", got)
	}
}

func TestCountingDoesNotAllocate(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.1, 1})
	svc := Counting(agg)(fixedService{resp: service.Response{Status: 200}})
	ctx, req := context.Background(), service.Request{Method: "GET", Path: "/"}
	_, _ = svc.Handle(ctx, req) // the first answer of a code creates its cell
	if n := testing.AllocsPerRun(1000, func() { _, _ = svc.Handle(ctx, req) }); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

func TestRouteIDs(t *testing.T) {
	agg := NewAggregator("other", []string{"a", "b"}, []float64{1})
	if agg.RouteID("a") != 1 || agg.RouteID("b") != 2 || agg.RouteID("other") != 0 || agg.RouteID("nope") != 0 {
		t.Fatalf("ids a=%d b=%d other=%d nope=%d; want 1, 2, and 0 for the catch-all and unknown names",
			agg.RouteID("a"), agg.RouteID("b"), agg.RouteID("other"), agg.RouteID("nope"))
	}
	// The zero id counts under the catch-all and is not folded: only out-of-range ids are.
	agg.End(agg.Begin(), 0, "GET", 500, time.Millisecond)
	agg.End(agg.Begin(), -1, "GET", 500, time.Millisecond)
	snap := agg.Snapshot()
	if len(snap.Series) != 1 || snap.Series[0].Route != "other" || snap.Series[0].Count != 2 || snap.Folded != 1 {
		t.Fatalf("series %+v folded %d; want 2 requests under other, 1 of them folded", snap.Series, snap.Folded)
	}
}

// TestHugeBucketBound: a bound past what nanoseconds can hold saturates instead of wrapping
// negative, which would put every observation in +Inf.
func TestHugeBucketBound(t *testing.T) {
	agg := NewAggregator("other", nil, []float64{1, 1e10})
	agg.End(agg.Begin(), 0, "GET", 200, 2*time.Second)
	if s := agg.Snapshot().Series[0]; s.Buckets[0] != 0 || s.Buckets[1] != 1 || s.Count != 1 {
		t.Fatalf("2s observation: buckets %v count %d, want [0 1] and 1", s.Buckets, s.Count)
	}
}

// TestStopWithoutRun: Stop makes the final flush itself when Run never started, and returns.
func TestStopWithoutRun(t *testing.T) {
	agg := NewAggregator("other", nil, []float64{1})
	f := NewFlusher(agg, time.Hour)
	agg.End(agg.Begin(), 0, "GET", 200, time.Millisecond)
	done := make(chan struct{})
	go func() { f.Stop(); f.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop blocked with Run never started")
	}
	if got := snapshotTotal(f.Current()); got != 1 {
		t.Fatalf("final flush published %d requests, want 1", got)
	}
	if err := f.Run(); err != nil { // a Run after Stop returns at once
		t.Fatal(err)
	}
}

// TestRegisterWhileCounting: routes registered while requests are counted get ids of their own
// and count from 0; the routes before keep theirs and their counts; past MaxRoutes a name gets the
// catch-all's id.
func TestRegisterWhileCounting(t *testing.T) {
	agg := NewAggregator("other", []string{"a"}, []float64{1}, MaxRoutes(4))
	a := agg.RouteID("a")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var counted atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				agg.End(agg.Begin(), a, "GET", 200, time.Millisecond)
				counted.Add(1)
			}
		})
	}
	b := agg.Register("b")
	c := agg.Register("c")
	if b == a || c == b || b == 0 || c == 0 || agg.Register("b") != b {
		t.Fatalf("ids a=%d b=%d c=%d", a, b, c)
	}
	if d := agg.Register("d"); d != 0 {
		t.Fatalf("a fifth route (MaxRoutes 4 with the catch-all) got id %d, want 0", d)
	}
	agg.End(agg.Begin(), c, "POST", 201, time.Millisecond)
	close(stop)
	wg.Wait()
	got := map[string]uint64{}
	for _, s := range agg.Snapshot().Series {
		got[s.Route] += s.Count
	}
	if got["a"] != uint64(counted.Load()) || got["c"] != 1 || got["b"] != 0 {
		t.Fatalf("counted %v; want a %d, c 1", got, counted.Load())
	}
}

type fixedCaller struct{ res service.CallResult }

func (f fixedCaller) Call(context.Context, service.CallRequest) service.CallResult { return f.res }

// TestUpstreamCallsAreExposed: calls counted by CountingCaller, by the code of their status or of
// why no answer came, are exposed as upstream_requests_total and upstream_request_duration_seconds
// with route, call and code labels, flushed with the requests.
func TestUpstreamCallsAreExposed(t *testing.T) {
	reqs := NewAggregator("other", nil, []float64{0.01, 0.1})
	calls := NewCallCounter([]float64{0.01, 0.1}, 16)
	inv := calls.Register("checkout", "inventory")
	pay := calls.Register("checkout", "payment")
	for _, c := range []struct {
		id  int
		res service.CallResult
	}{
		{inv, service.CallResult{Status: 200, Duration: 5 * time.Millisecond}},
		{inv, service.CallResult{Status: 200, Duration: 50 * time.Millisecond}},
		{pay, service.CallResult{Status: 503, Duration: time.Millisecond}},
		{pay, service.CallResult{Err: service.ErrCallTimeout, Duration: 2 * time.Second}},
		{pay, service.CallResult{Err: service.ErrNoAnswer, Duration: time.Millisecond}},
		{pay, service.CallResult{Err: context.Canceled, Duration: time.Millisecond}},
		{pay, service.CallResult{Err: service.ErrUnsafePath}},
		{pay, service.CallResult{Err: service.ErrCallLimit}},
		{pay, service.CallResult{Status: 520, Duration: time.Millisecond}},
		{pay, service.CallResult{Status: 599, Duration: time.Millisecond}},
		{pay, service.CallResult{Status: 999, Duration: time.Millisecond}},
	} {
		CountingCaller(calls)(fixedCaller{c.res}).Call(context.Background(), service.CallRequest{Call: service.Call{ID: c.id}})
	}
	f := NewFlusherWithCalls(reqs, calls, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))
	want := `
# HELP app_upstream_requests_total Upstream calls made, by route rule, call and status code (timeout, error or canceled when no answer came, refused or limited when not made, nonstandard for a status HTTP does not define).
# TYPE app_upstream_requests_total counter
app_upstream_requests_total{call="inventory",code="200",route="checkout"} 2
app_upstream_requests_total{call="payment",code="503",route="checkout"} 1
app_upstream_requests_total{call="payment",code="canceled",route="checkout"} 1
app_upstream_requests_total{call="payment",code="error",route="checkout"} 1
app_upstream_requests_total{call="payment",code="limited",route="checkout"} 1
app_upstream_requests_total{call="payment",code="nonstandard",route="checkout"} 3
app_upstream_requests_total{call="payment",code="refused",route="checkout"} 1
app_upstream_requests_total{call="payment",code="timeout",route="checkout"} 1
`
	if err := testutil.CollectAndCompare(reg, strings.NewReader(want), "app_upstream_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "app_upstream_request_duration_seconds"); n != 8 {
		t.Fatalf("%d duration series, want 8", n)
	}
	if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
		t.Fatalf("metric lint: %v %v", lint, err)
	}
}

// TestFaultsAreCountedByWhatTheClientGot: an answer a fault replaced is counted under the fault's
// code label, not the status the rule decided, each kind apart; a slow_body too, since its client
// got its answer only slowly.
func TestFaultsAreCountedByWhatTheClientGot(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{1})
	r := agg.RouteID("r")
	for i, k := range service.FaultKinds {
		fault := &service.Fault{Kind: k, Rate: 1}
		svc := Counting(agg)(fixedService{resp: service.Response{Status: 200, RouteID: r, Fault: fault}})
		for range i + 1 {
			_, _ = svc.Handle(context.Background(), service.Request{Method: "GET"})
		}
	}
	_, _ = Counting(agg)(fixedService{resp: service.Response{Status: 200, RouteID: r}}).Handle(context.Background(), service.Request{Method: "GET"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", NewFlusher(agg, time.Hour), BuildInfo{}))
	want := `
# HELP app_requests_total Requests answered, by method, route rule and status code.
# TYPE app_requests_total counter
app_requests_total{code="200",method="GET",route="r"} 1
app_requests_total{code="reset",method="GET",route="r"} 1
app_requests_total{code="close",method="GET",route="r"} 2
app_requests_total{code="hang",method="GET",route="r"} 3
app_requests_total{code="slow_body",method="GET",route="r"} 4
app_requests_total{code="truncate",method="GET",route="r"} 5
app_requests_total{code="malformed",method="GET",route="r"} 6
`
	if err := testutil.CollectAndCompare(reg, strings.NewReader(want), "app_requests_total"); err != nil {
		t.Fatal(err)
	}
}

// TestEveryCallHasItsOwnSlot: a counter sized for n calls counts n distinct (route, call) pairs
// each under its own labels, also while snapshots run beside the registrations, and only the
// calls past n under the overflow slot. The request aggregator posing as the calls' counter gave
// a config of one route with 16 calls 5 slots (4 x max_routes + 1): 11 calls under route="".
func TestEveryCallHasItsOwnSlot(t *testing.T) {
	const n = 16 * 8
	calls := NewCallCounter([]float64{0.1}, n)
	stop := make(chan struct{})
	done := make(chan struct{})
	// Snapshots racing the registrations never see a registered slot without its labels. They stop
	// before the calls past n: those are counted under the overflow slot, which has no labels.
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, s := range calls.Snapshot() {
				if s.Route == "" && s.Series.Count > 0 {
					t.Errorf("a registered call's series published without labels: %+v", s)
					return
				}
			}
		}
	}()
	counted := map[CallLabels]int{}
	for i := range n + 3 {
		if i == n {
			close(stop)
			<-done
		}
		l := CallLabels{Route: fmt.Sprintf("r%d", i/16), Call: fmt.Sprintf("c%d", i%16)}
		id := calls.Register(l.Route, l.Call)
		if again := calls.Register(l.Route, l.Call); again != id {
			t.Fatalf("%v registered as %d, then %d", l, id, again)
		}
		if i >= n {
			l = CallLabels{}
		}
		CountingCaller(calls)(fixedCaller{service.CallResult{Status: 200}}).Call(context.Background(), service.CallRequest{Call: service.Call{ID: id}})
		counted[l]++
	}
	got := map[CallLabels]int{}
	for _, s := range calls.Snapshot() {
		got[s.CallLabels] += int(s.Series.Count)
	}
	if !maps.Equal(got, counted) || len(got) != n+1 || got[CallLabels{}] != 3 {
		t.Fatalf("%d series published (%d under the overflow slot), want %d apart and 3 overflowed", len(got), got[CallLabels{}], n)
	}
}
