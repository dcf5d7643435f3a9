package service

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
)

func newTestService(t *testing.T, rules ...Rule) Service {
	t.Helper()
	s, err := New(nil, rules, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandleRouting(t *testing.T) {
	s := newTestService(t,
		Rule{ID: 1, Name: "create", Match: "/items", Methods: []string{"POST"}, Status: 201},
		Rule{ID: 2, Name: "items", Match: "/items/*"},
		Rule{ID: 3, Name: "teapot", Match: "/tea/{kind}", Status: 418, BodyBytes: 10},
		Rule{ID: 4, Name: "shadowed", Match: "/items/x", Status: 500},
	)
	tests := []struct {
		method, path string
		route        string
		id           int
		status       int
		padding      int
	}{
		{"POST", "/items", "create", 1, 201, 0},
		{"GET", "/items", "items", 2, 200, 0}, // method filter falls through to the next rule
		{"GET", "/items/x", "items", 2, 200, 0},
		{"PURGE", "/tea/green", "teapot", 3, 418, 10},
		{"GET", "/tea", OtherRoute, 0, 200, 0},
		{"GET", "/nowhere", OtherRoute, 0, 200, 0},
	}
	for _, tt := range tests {
		resp, err := s.Handle(context.Background(), Request{Method: tt.method, Path: tt.path})
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		if resp.Route != tt.route || resp.RouteID != tt.id || resp.Status != tt.status || resp.Padding != tt.padding {
			t.Errorf("%s %s = %+v, want route %s id %d status %d padding %d",
				tt.method, tt.path, resp, tt.route, tt.id, tt.status, tt.padding)
		}
	}
}

func TestHandleInjectedErrors(t *testing.T) {
	s := newTestService(t,
		Rule{Name: "always", Match: "/always", Errors: []ErrorShare{{Status: 503, Rate: 1}}},
		Rule{Name: "never", Match: "/never", Errors: []ErrorShare{{Status: 503, Rate: 0}}},
		Rule{Name: "none", Match: "/none"},
	)
	for path, want := range map[string]int{"/always": 503, "/never": 200, "/none": 200} {
		resp, err := s.Handle(context.Background(), Request{Method: "GET", Path: path})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != want {
			t.Errorf("%s: status %d, want %d", path, resp.Status, want)
		}
		if (want != 200) != errors.Is(resp.Err, ErrInjected) {
			t.Errorf("%s: Err = %v", path, resp.Err)
		}
	}
}

func TestHandleErrorRateIsAShare(t *testing.T) {
	s := newTestService(t, Rule{Name: "half", Match: "/*", Errors: []ErrorShare{{Status: 500, Rate: 0.5}}})
	const n = 4000
	failed := 0
	for range n {
		resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/x"})
		if resp.Err != nil {
			failed++
		}
	}
	// 0.5 ± 5 standard deviations of a binomial(4000, 0.5): fails by chance about once in 3.5 million runs.
	if failed < 1842 || failed > 2158 {
		t.Fatalf("%d of %d failed, want about half", failed, n)
	}
}

func TestHandleBodyTooLarge(t *testing.T) {
	s := newTestService(t, Rule{Name: "slow", Match: "/*", Latency: Latency{Delay: time.Hour}, BodyBytes: 100})
	resp, err := s.Handle(context.Background(), Request{Method: "POST", Path: "/x", BodyTooLarge: true})
	if err != nil || resp.Status != 413 || !errors.Is(resp.Err, ErrBodyTooLarge) || resp.Padding != 0 {
		t.Fatalf("got %+v, %v; want 413 without waiting for the delay", resp, err)
	}
	if resp.Route != "slow" {
		t.Fatalf("route %q: a rejected body still counts under its route", resp.Route)
	}
}

func TestHandleBrokenBody(t *testing.T) {
	s := newTestService(t, Rule{ID: 1, Name: "up", Match: "/up", Latency: Latency{Delay: time.Hour}, BodyBytes: 5})
	resp, err := s.Handle(context.Background(), Request{Method: "POST", Path: "/up", BodyBroken: true})
	if err != nil || resp.Status != 400 || !errors.Is(resp.Err, ErrBadBody) || resp.Route != "up" || resp.RouteID != 1 || resp.Padding != 0 {
		t.Fatalf("got %+v, %v; want 400 under its route without waiting for the delay", resp, err)
	}
}

// TestHandleCutByShutdown: a delay cut short because the server stops is answered 503, not 499.
func TestHandleCutByShutdown(t *testing.T) {
	s := newTestService(t, Rule{ID: 1, Name: "slow", Match: "/slow", Latency: Latency{Delay: time.Hour}})
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrStopping)
	resp, err := s.Handle(ctx, Request{Method: "GET", Path: "/slow"})
	if !errors.Is(err, ErrStopping) || resp.Status != 503 || !errors.Is(resp.Err, ErrStopping) {
		t.Fatalf("got %+v, %v; want 503 ErrStopping", resp, err)
	}
}

// TestHandleExtremeJitter: delays and jitters at the largest durations do not overflow the draw.
func TestHandleExtremeJitter(t *testing.T) {
	s := newTestService(t, Rule{ID: 1, Name: "huge", Match: "/*", Latency: Latency{Distribution: "uniform", Delay: math.MaxInt64, Jitter: math.MaxInt64}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if resp, _ := s.Handle(ctx, Request{Method: "GET", Path: "/x"}); resp.Status != StatusClientClosed {
		t.Fatalf("got %+v", resp)
	}
}

func TestHandleDelay(t *testing.T) {
	s := newTestService(t, Rule{Name: "slow", Match: "/slow", Latency: Latency{Distribution: "uniform", Delay: 30 * time.Millisecond, Jitter: 10 * time.Millisecond}})
	begin := time.Now()
	resp, err := s.Handle(context.Background(), Request{Method: "GET", Path: "/slow"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 20*time.Millisecond || took < resp.Delay {
		t.Fatalf("answered after %v, before the delay minus the jitter or the %v the response reports", took, resp.Delay)
	}
	if resp.Delay < 20*time.Millisecond || resp.Delay > 40*time.Millisecond {
		t.Fatalf("Response.Delay %v, want the delay drawn: 30ms ± 10ms", resp.Delay)
	}
	if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/fast"}); resp.Delay != 0 {
		t.Fatalf("a rule without a delay reports Delay %v", resp.Delay)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err = s.Handle(ctx, Request{Method: "GET", Path: "/slow"})
	if !errors.Is(err, context.Canceled) || resp.Status != StatusClientClosed || resp.Route != "slow" || resp.Delay > 10*time.Millisecond {
		t.Fatalf("cancelled: got %+v, %v", resp, err)
	}
}

func TestNewRejectsBadPattern(t *testing.T) {
	if _, err := New(nil, []Rule{{Name: "bad", Match: "/a*"}}, Options{}); err == nil {
		t.Fatal("New accepted a bad pattern")
	}
}

type panicking struct{}

func (panicking) Handle(context.Context, Request) (Response, error) { panic("boom") }

type counter struct{ n int }

func (c *counter) Inc() { c.n++ }

func TestRecoverAnswers500(t *testing.T) {
	var logged strings.Builder
	panics := &counter{}
	svc := Recover(log.NewLogfmtLogger(&logged), panics)(panicking{})

	resp, err := svc.Handle(context.Background(), Request{Method: "GET", Path: "/boom", TraceID: "trace-7"})
	if err != nil || resp.Status != 500 || !errors.Is(resp.Err, ErrPanic) || resp.Route != OtherRoute || resp.RouteID != 0 {
		t.Fatalf("got %+v, %v; want 500 under the catch-all route, id 0", resp, err)
	}
	if panics.n != 1 {
		t.Fatalf("panics counted %d times", panics.n)
	}
	for _, want := range []string{"level=error", "panic=boom", "trace_id=trace-7", "path=/boom", "stack="} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q: %s", want, logged.String())
		}
	}
}

// TestReplaceIsAtomic: while tables are swapped as fast as they can be, every answer comes from
// one table or the other, never half of each (the status from one, the padding from the other),
// and a set of rules that does not compile leaves the current one in place.
func TestReplaceIsAtomic(t *testing.T) {
	tableOf := func(n int) []Rule {
		return []Rule{{ID: 1, Name: "r", Match: "/*", Status: 200 + n, BodyBytes: n}}
	}
	r, err := New(nil, tableOf(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var swaps sync.WaitGroup
	swaps.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Replace(tableOf(1+i%2), Options{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	seen := map[int]int{}
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n < 20000 || (len(seen) < 2 && time.Now().Before(deadline)); n++ {
		resp, _ := r.Handle(context.Background(), Request{Method: "GET", Path: "/x"})
		if resp.Status-200 != resp.Padding {
			t.Fatalf("status %d with padding %d: half of one table, half of another", resp.Status, resp.Padding)
		}
		seen[resp.Status]++
	}
	close(stop)
	swaps.Wait()
	if len(seen) != 2 {
		t.Errorf("answers %v: want both tables seen", seen)
	}
	if err := r.Replace([]Rule{{Name: "bad", Match: "/a*"}}, Options{}); err == nil {
		t.Fatal("a rule that does not compile was accepted")
	}
	if resp, _ := r.Handle(context.Background(), Request{Method: "GET", Path: "/x"}); resp.Route != "r" {
		t.Fatalf("after a refused Replace, route %q answers; want the previous table's", resp.Route)
	}
}

// TestResponseSaysWhyItTookItsTime: the response names what its delay was drawn from and where
// the draw fell (the uniform's quantile is its position between Delay-Jitter and Delay+Jitter), a
// fixed delay and an override have no quantile, a rule without latency no distribution, and a
// rule's cpu is reported as burned.
func TestResponseSaysWhyItTookItsTime(t *testing.T) {
	ms := time.Millisecond
	s := newTestService(t,
		Rule{ID: 1, Name: "spread", Match: "/spread", Latency: Latency{Distribution: "uniform", Delay: 4 * ms, Jitter: 2 * ms}},
		Rule{ID: 2, Name: "fixed", Match: "/fixed", Latency: Latency{Delay: ms}},
		Rule{ID: 3, Name: "open", Match: "/open", AllowOverrides: true, MaxDelay: 50 * ms, Latency: Latency{Distribution: "normal", Mean: ms, StdDev: ms}},
		Rule{ID: 4, Name: "burn", Match: "/burn", CPU: Latency{Delay: 2 * ms}},
	)
	handle := func(req Request) Response {
		t.Helper()
		req.Method = "GET"
		resp, err := s.Handle(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	seen := map[bool]bool{} // quantile below and above 0.5
	for range 20 {
		resp := handle(Request{Path: "/spread"})
		q := float64(resp.Quantile)
		want := 2*ms + time.Duration(q*float64(4*ms))
		if resp.Distribution != DistUniform || resp.Distribution.String() != "uniform" || q < 0 || q >= 1 ||
			(resp.Delay-want).Abs() > time.Microsecond {
			t.Fatalf("uniform: %v at quantile %v, delay %v (want %v there)", resp.Distribution, q, resp.Delay, want)
		}
		seen[q > 0.5] = true
	}
	if len(seen) != 2 {
		t.Errorf("20 uniform draws all on one side of the median: %v", seen)
	}
	if resp := handle(Request{Path: "/fixed"}); resp.Distribution != DistFixed || resp.Quantile != 0 || resp.Delay != ms {
		t.Errorf("fixed: %v at %v, delay %v", resp.Distribution, resp.Quantile, resp.Delay)
	}
	if resp := handle(Request{Path: "/open", OverrideDelay: "2ms"}); resp.Distribution != DistOverride || resp.Distribution.String() != "override" || resp.Quantile != 0 || resp.Delay != 2*ms {
		t.Errorf("override: %v at %v, delay %v", resp.Distribution, resp.Quantile, resp.Delay)
	}
	if resp := handle(Request{Path: "/burn"}); resp.Distribution != DistNone || resp.Distribution.String() != "" || resp.CPU < 2*ms || resp.CPU > 50*ms {
		t.Errorf("no latency, cpu 2ms: %v, burned %v", resp.Distribution, resp.CPU)
	}
	if resp := handle(Request{Path: "/spread"}); resp.CPU != 0 {
		t.Errorf("a rule without cpu reports %v burned", resp.CPU)
	}
}
