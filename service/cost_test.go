package service

import (
	"context"
	"sync"
	"testing"
	"time"
)

// burnRecorder collects what Options.Burned is told.
type burnRecorder struct {
	mu    sync.Mutex
	total map[int]time.Duration
	calls int
}

func (b *burnRecorder) burned(id int, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.total == nil {
		b.total = map[int]time.Duration{}
	}
	b.total[id] += d
	b.calls++
}

// TestCPUBurnsAndReports: a rule's cpu is burned on the request (the thread's CPU clock says at
// least that much was spent), reported by its rule's ID, and a rule without cpu reports nothing.
func TestCPUBurnsAndReports(t *testing.T) {
	var rec burnRecorder
	s, err := New(nil, []Rule{
		{ID: 7, Name: "burn", Match: "/burn", CPU: Latency{Distribution: "fixed", Delay: 3 * time.Millisecond}},
		{ID: 8, Name: "idle", Match: "/idle"},
	}, Options{Burned: rec.burned})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := s.Handle(context.Background(), Request{Method: "GET", Path: "/burn"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Handle(context.Background(), Request{Method: "GET", Path: "/idle"}); err != nil {
			t.Fatal(err)
		}
	}
	if rec.calls != 5 {
		t.Fatalf("Burned was told %d times, want 5 (once per /burn request, never for /idle)", rec.calls)
	}
	// At least what was asked; at most a little more (one round of arithmetic past it, and the
	// clock reads), whatever else the machine runs, since the clock is the thread's.
	if got := rec.total[7]; got < 15*time.Millisecond || got > 25*time.Millisecond {
		t.Errorf("route 7 burned %s over 5 requests, want 15ms and a little more", got)
	}
}

// TestBurnSpendsThreadCPU: burn's own measure is the thread's CPU clock, which it does not stop
// short of.
func TestBurnSpendsThreadCPU(t *testing.T) {
	for _, d := range []time.Duration{0, time.Microsecond, 2 * time.Millisecond} {
		if got := burn(d); got < d || got > d+5*time.Millisecond {
			t.Errorf("burn(%s) = %s", d, got)
		}
	}
}

// TestCPUDrawsLikeALatency: cpu takes a latency's distributions and its cap: a draw never exceeds
// max, and a bad shape is refused when the rules compile.
func TestCPUDrawsLikeALatency(t *testing.T) {
	cpu := Latency{Distribution: "lognormal", Median: time.Millisecond, P99: 50 * time.Millisecond, Max: 4 * time.Millisecond}
	for _, d := range draws(t, cpu, 2000) {
		if d > 4*time.Millisecond || d < 0 {
			t.Fatalf("draw %s outside [0, max 4ms]", d)
		}
	}
	if b, ok := cpu.Bound(); !ok || b != 4*time.Millisecond {
		t.Errorf("Bound = %s, %v; want max", b, ok)
	}
	_, err := New(nil, []Rule{{Name: "bad", Match: "/b", CPU: Latency{Distribution: "lognormal", Median: 2 * time.Millisecond, P99: time.Millisecond}}}, Options{})
	if err == nil {
		t.Fatal("a lognormal cpu with p99 below its median compiled")
	}
}

// TestMemoryHeldForTheRequest: a rule's memory is counted held while its request runs and not
// after.
func TestMemoryHeldForTheRequest(t *testing.T) {
	const n = 3 << 20
	s, err := New(nil, []Rule{{Name: "mem", Match: "/mem", Memory: n, Latency: Latency{Distribution: "fixed", Delay: 300 * time.Millisecond}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.Handle(context.Background(), Request{Method: "GET", Path: "/mem"})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for s.Memory().Held != n {
		if time.Now().After(deadline) {
			t.Fatalf("held %d while the request runs, want %d", s.Memory().Held, n)
		}
		time.Sleep(time.Millisecond)
	}
	<-done
	if got := s.Memory().Held; got != 0 {
		t.Errorf("held %d after the answer, want 0", got)
	}
}

// TestLeakStopsAtItsCapAndIsReleased: every request keeps its share until the cap; a release gives
// it all back and the leak starts again; a reload that keeps the leak keeps what it holds, one that
// removes it gives it back.
func TestLeakStopsAtItsCapAndIsReleased(t *testing.T) {
	rules := []Rule{{Name: "r", Match: "/r"}}
	leak := Leak{PerRequest: 3000, Max: 10000}
	s, err := New(nil, rules, Options{Leak: leak})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) {
		t.Helper()
		if _, err := s.Handle(context.Background(), Request{Method: "GET", Path: path}); err != nil {
			t.Fatal(err)
		}
	}
	get("/r")
	get("/unmatched") // the catch-all leaks too
	if got := s.Memory().Leaked; got != 6000 {
		t.Fatalf("leaked %d after 2 requests, want 6000", got)
	}
	for range 10 {
		get("/r")
	}
	if got := s.Memory().Leaked; got != 10000 {
		t.Fatalf("leaked %d after 12 requests, want the cap 10000", got)
	}
	if err := s.Replace(rules, Options{Leak: leak}); err != nil {
		t.Fatal(err)
	}
	if got := s.Memory().Leaked; got != 10000 {
		t.Fatalf("a reload with the same leak left %d leaked, want 10000 kept", got)
	}
	if got := s.ReleaseLeak(); got != 10000 {
		t.Errorf("ReleaseLeak = %d, want 10000", got)
	}
	if got := s.Memory().Leaked; got != 0 {
		t.Fatalf("leaked %d after the release, want 0", got)
	}
	get("/r")
	if got := s.Memory().Leaked; got != 3000 {
		t.Fatalf("leaked %d after a request past the release, want 3000", got)
	}
	if err := s.Replace(rules, Options{}); err != nil {
		t.Fatal(err)
	}
	get("/r")
	if got := s.Memory().Leaked; got != 0 {
		t.Fatalf("leaked %d once a reload removed the leak, want 0", got)
	}
}

// TestResidentFollowsTheOptions: the resident block is what the options say, and a Replace that
// changes it changes it, including to nothing; rules that fail to compile leave it.
func TestResidentFollowsTheOptions(t *testing.T) {
	rules := []Rule{{Name: "r", Match: "/r"}}
	s, err := New(nil, rules, Options{Resident: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Memory().Resident; got != 1<<20 {
		t.Fatalf("resident %d, want 1 MiB", got)
	}
	if err := s.Replace([]Rule{{Name: "bad", Match: "/{"}}, Options{Resident: 5 << 20}); err == nil {
		t.Fatal("a bad pattern compiled")
	}
	if got := s.Memory().Resident; got != 1<<20 {
		t.Fatalf("a refused Replace changed resident to %d", got)
	}
	if err := s.Replace(rules, Options{Resident: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	if got := s.Memory().Resident; got != 2<<20 {
		t.Fatalf("resident %d, want 2 MiB", got)
	}
	if err := s.Replace(rules, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Memory().Resident; got != 0 {
		t.Fatalf("resident %d after a Replace without it, want 0", got)
	}
}

// TestNoCostIsOneBranch: a rule that costs nothing is marked so when compiled, so the request
// path skips the cost with one test.
func TestNoCostIsOneBranch(t *testing.T) {
	tb, err := compile([]Rule{{Name: "plain", Match: "/p"}, {Name: "mem", Match: "/m", Memory: 1}}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.rules[0].cost || tb.other.cost || !tb.rules[1].cost {
		t.Errorf("cost flags: plain %v, other %v, mem %v; want false, false, true", tb.rules[0].cost, tb.other.cost, tb.rules[1].cost)
	}
}
