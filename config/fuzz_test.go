package config

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary documents to the loader: it never panics, every rejection is an *Error
// with at least one problem, and every accepted document passes the semantic checks and is answered
// in time (answersInTime).
func FuzzParse(f *testing.F) {
	for _, file := range []string{"examples/full.json", "testdata/bad.json", "testdata/semantic.json"} {
		data, err := os.ReadFile(filepath.FromSlash(file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"routes": [{"name": "a", "match": "/{id}/*", "delay": "1h1m1.5s"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("rejection without problems: %v", err)
			}
			return
		}
		if ps := cfg.Check(); len(ps) > 0 {
			t.Fatalf("accepted a document that fails Check: %v", ps)
		}
		answersInTime(t, cfg)
	})
}

// FuzzAcceptedConfigsAnswerInTime builds whole configs around routes of every latency
// distribution, calls and overrides, from durations anywhere up to the largest one, and holds every
// config Parse accepts to answersInTime. Random documents (FuzzParse) rarely reach these keys
// with values near the largest duration, which is where bounds overflowed (issue 23: a p99 of
// 2000000h passed check-config).
func FuzzAcceptedConfigsAnswerInTime(f *testing.F) {
	h := int64(time.Hour)
	f.Add(uint8(4), int64(10*time.Millisecond), int64(50*time.Millisecond), 2000000*h, int64(0), int64(time.Minute), int64(0), int64(0), uint8(0))
	f.Add(uint8(2), int64(time.Second), int64(time.Second), int64(0), int64(0), int64(math.MaxInt64), int64(0), int64(0), uint8(0))
	f.Add(uint8(0), 2000000*h, int64(0), int64(0), int64(0), 2562047*h, 2000000*h, int64(0), uint8(1))
	f.Add(uint8(0), int64(0), int64(0), int64(0), int64(0), 2562047*h, 2000000*h, 2000000*h, uint8(0))
	f.Add(uint8(0), int64(0), int64(0), int64(0), 2000000*h, 2562047*h, 2000000*h, int64(0), uint8(6))
	f.Add(uint8(1), int64(6*time.Second), int64(4*time.Second), int64(0), int64(0), int64(10*time.Second), int64(0), int64(0), uint8(0))
	f.Add(uint8(3), int64(time.Millisecond), 2000000*h, int64(0), int64(0), int64(time.Minute), int64(0), int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, dist uint8, a, b, c, maxDelay, wt, call1, call2 int64, flags uint8) {
		d := func(ns int64) Duration { return Duration(ns & math.MaxInt64) } // any duration, never negative
		r := Route{Name: "r", Match: "/r"}
		l := &Latency{Distribution: []string{"fixed", "uniform", "normal", "lognormal", "percentiles"}[dist%5]}
		switch l.Distribution {
		case "fixed":
			l.Delay = d(a)
		case "uniform":
			l.Delay, l.Jitter = d(a), d(b)
		case "normal":
			l.Mean, l.StdDev = d(a), d(b)
		case "lognormal":
			l.Median, l.P99 = d(a), d(b)
		case "percentiles":
			l.P50, l.P90, l.P99 = d(a), d(b), d(c)
		}
		if flags&8 != 0 {
			l.Max = d(c)
		}
		if flags&16 != 0 { // the shorthand instead
			r.Delay, r.Jitter = d(a), d(b)
		} else {
			r.Latency = l
		}
		for i, timeout := range []int64{call1, call2} {
			if timeout != 0 {
				r.Calls = append(r.Calls, Call{Name: string(rune('a' + i)), URL: "http://upstream/", Timeout: d(timeout)})
			}
		}
		if flags&1 != 0 {
			r.CallMode = "parallel"
		}
		if flags&2 != 0 {
			r.AllowOverrides, r.MaxDelay = true, d(maxDelay)
		}
		cfg := Default()
		cfg.HTTP.WriteTimeout = d(wt)
		cfg.Routes = []Route{r}
		doc, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if accepted, err := Parse("fuzz", doc); err == nil {
			answersInTime(t, accepted)
		}
	})
}

// answersInTime holds an accepted config to what check-config promises: every route answers within
// http.write_timeout. The longest a route's answer can take is its calls' timeouts (summed, or the
// longest in parallel) and then the longest latency its rule can draw (service.Latency.Bound, which
// service.FuzzLatencyBound holds every draw to) or, with overrides, its max_delay. Sums are taken
// in uint64, where two durations cannot overflow.
func answersInTime(t *testing.T, cfg Config) {
	t.Helper()
	wt := uint64(cfg.HTTP.WriteTimeout)
	for _, r := range cfg.Routes {
		rule := r.Rule(cfg.HTTP)
		var calls uint64
		for _, c := range rule.Calls {
			if r.CallMode == "parallel" {
				calls = max(calls, uint64(c.Timeout))
			} else if calls += uint64(c.Timeout); calls > math.MaxInt64 {
				t.Fatalf("route %s: calls of over the largest duration accepted", r.Name)
			}
		}
		bound, bounded := rule.Latency.Bound()
		switch {
		case !bounded:
			t.Fatalf("route %s: accepted without a latency bound: %+v", r.Name, rule.Latency)
		case bound < 0:
			t.Fatalf("route %s: a negative latency bound %d: %+v", r.Name, bound, rule.Latency)
		case calls+uint64(bound) >= wt:
			t.Fatalf("route %s: calls of up to %s and a latency of up to %s reach write_timeout %s", r.Name, time.Duration(calls), bound, cfg.HTTP.WriteTimeout.D())
		case rule.AllowOverrides && calls+uint64(rule.MaxDelay) >= wt:
			t.Fatalf("route %s: calls of up to %s and an override of up to %s reach write_timeout %s", r.Name, time.Duration(calls), rule.MaxDelay, cfg.HTTP.WriteTimeout.D())
		}
	}
}
