package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/transport/load/stages"
)

func newTestRunner(t *testing.T, spec Spec) *Runner {
	t.Helper()
	spec = spec.WithDefaults()
	if err := spec.Check(); err != nil {
		t.Fatal(err)
	}
	return NewRunner(spec, NewAggregator(spec, []float64{0.01, 0.1, 1}), tracing.New(nil, tracing.Always), log.NewNopLogger())
}

// TestOpenModelSendsTheScheduleAndCountsEveryRequest: at a constant rate every due request is sent
// and ends under its status, and the x-request-id of each is unique.
func TestOpenModelSendsTheScheduleAndCountsEveryRequest(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids[r.Header.Get("X-Request-Id")] = true
		mu.Unlock()
		if r.URL.Path == "/teapot" {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	r := newTestRunner(t, Spec{Rate: 200, Duration: stages.Duration(time.Second), Seed: 1,
		Targets: []Target{{URL: srv.URL + "/ok", Weight: 3}, {URL: srv.URL + "/teapot"}}})
	r.Run(context.Background())
	s := r.Summary()
	if s.Planned != 200 || s.Scheduled != 200 || s.Sent != 200 || s.Ended != 200 || s.Dropped != 0 {
		t.Fatalf("summary %+v", s)
	}
	if s.Codes["200"]+s.Codes["418"] != 200 || s.Targets[0].Codes["200"] != s.Targets[0].Sent || s.Targets[1].Codes["418"] != s.Targets[1].Sent {
		t.Fatalf("codes %v, targets %+v", s.Codes, s.Targets)
	}
	if s.Targets[0].Sent < 120 || s.Targets[0].Sent > 180 { // weight 3 of 4: 150 expected
		t.Errorf("the weight-3 target got %d of 200", s.Targets[0].Sent)
	}
	if len(ids) != 200 {
		t.Errorf("%d distinct x-request-ids for 200 requests", len(ids))
	}
}

// TestTargetChoiceFollowsTheSeed: the same seed picks the same targets; another seed, others.
func TestTargetChoiceFollowsTheSeed(t *testing.T) {
	spec := Spec{Rate: 1, Duration: stages.Duration(time.Second),
		Targets: []Target{{URL: "http://a/"}, {URL: "http://b/"}, {URL: "http://c/"}}}
	seq := func(seed uint64) (s []string) {
		spec.Seed = seed
		r := newTestRunner(t, spec)
		for n := range int64(50) {
			s = append(s, r.pick(n).Name)
		}
		return s
	}
	a, b, c := seq(1), seq(1), seq(2)
	if len(a) != 50 || fmtS(a) != fmtS(b) {
		t.Fatalf("seed 1 picked %v, then %v", a, b)
	}
	if fmtS(a) == fmtS(c) {
		t.Fatalf("seeds 1 and 2 picked the same %v", a)
	}
}

func fmtS(s []string) (out string) {
	for _, x := range s {
		out += x + ","
	}
	return out
}

// TestInFlightBoundDropsAndCounts: with one request allowed in flight and a server that holds
// every request, the due requests past the first are dropped and counted, scheduled = sent +
// dropped, and the held request, released by the drain's cancel, ends as canceled.
func TestInFlightBoundDropsAndCounts(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	r := newTestRunner(t, Spec{Rate: 100, Duration: stages.Duration(500 * time.Millisecond), MaxInFlight: 1,
		Drain: stages.Duration(100 * time.Millisecond), Targets: []Target{{URL: srv.URL}}})
	r.Run(context.Background())
	s := r.Summary()
	if s.Scheduled != 50 || s.Sent != 1 || s.Dropped != 49 || s.Ended != 1 || s.Codes["canceled"] != 1 {
		t.Fatalf("scheduled %d, sent %d, dropped %d, ended %d, codes %v", s.Scheduled, s.Sent, s.Dropped, s.Ended, s.Codes)
	}
	var dropped int64
	for _, b := range s.Seconds {
		dropped += b.Dropped
	}
	if dropped != 49 {
		t.Errorf("per-second dropped add up to %d, want 49", dropped)
	}
}

// TestStopWaitsForRequestsInFlight: a stop (the signal's context) ends the sending at once and
// waits for the requests out, which end with their answers and are counted.
func TestStopWaitsForRequestsInFlight(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(200 * time.Millisecond) }))
	defer srv.Close()
	r := newTestRunner(t, Spec{Rate: 100, Duration: stages.Duration(time.Minute), Targets: []Target{{URL: srv.URL}}})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r.Run(ctx)
	s := r.Summary()
	if s.StoppedBy != "signal" || s.Sent == 0 || s.Sent != s.Ended || s.Codes["200"] != s.Sent {
		t.Fatalf("stopped by %s: sent %d, ended %d, codes %v", s.StoppedBy, s.Sent, s.Ended, s.Codes)
	}
	if s.ElapsedSeconds >= 1 {
		t.Errorf("elapsed %v s for a stop at 0.5 s", s.ElapsedSeconds)
	}
}

// TestClosedModelKeepsConcurrencyBusy: N workers never have more than N requests out, and every
// request is counted.
func TestClosedModelKeepsConcurrencyBusy(t *testing.T) {
	var out, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		n := out.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		out.Add(-1)
	}))
	defer srv.Close()
	r := newTestRunner(t, Spec{Concurrency: 4, Duration: stages.Duration(500 * time.Millisecond), Targets: []Target{{URL: srv.URL}}})
	r.Run(context.Background())
	s := r.Summary()
	if s.Model != "closed" || s.Sent == 0 || s.Sent != s.Ended || s.Codes["200"] != s.Sent || s.Scheduled != s.Sent {
		t.Fatalf("summary %+v", s)
	}
	if most.Load() > 4 {
		t.Errorf("%d requests out at once with 4 workers", most.Load())
	}
}

// TestNewConnections: with NewConnections every request arrives on a connection of its own (the
// server sees as many new connections, from as many client addresses, as requests); without it the
// client keeps its connections alive and reuses them.
func TestNewConnections(t *testing.T) {
	for _, c := range []struct {
		name    string
		fresh   bool
		atLeast int // new connections
		atMost  int
	}{
		{"kept alive", false, 1, 5},
		{"new connections", true, 40, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			remotes := map[string]int{}
			var opened atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				mu.Lock()
				remotes[r.RemoteAddr]++
				mu.Unlock()
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			// 40 requests at 40/s, one at a time: a kept-alive connection is idle when the next is due.
			r := newTestRunner(t, Spec{Rate: 40, Duration: stages.Duration(time.Second), NewConnections: c.fresh,
				Targets: []Target{{URL: srv.URL}}})
			r.Run(context.Background())
			if s := r.Summary(); s.Codes["200"] != 40 {
				t.Fatalf("summary %+v", s)
			}
			mu.Lock()
			defer mu.Unlock()
			if n := int(opened.Load()); n < c.atLeast || n > c.atMost || len(remotes) != n {
				t.Errorf("%d connections opened, from %d addresses, for 40 requests; want %d to %d", n, len(remotes), c.atLeast, c.atMost)
			}
		})
	}
}
