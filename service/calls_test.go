package service

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCaller answers each call by name as told, and records what it was asked.
type fakeCaller struct {
	mu      sync.Mutex
	answers map[string]CallResult
	asked   []CallRequest
	wait    time.Duration
}

func (f *fakeCaller) Call(ctx context.Context, req CallRequest) CallResult {
	f.mu.Lock()
	f.asked = append(f.asked, req)
	res := f.answers[req.Name]
	f.mu.Unlock()
	select {
	case <-time.After(f.wait):
	case <-ctx.Done():
		return CallResult{Err: context.Cause(ctx)}
	}
	return res
}

func (f *fakeCaller) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.asked {
		out = append(out, r.Name)
	}
	return out
}

func callRule(parallel, fail bool) Rule {
	return Rule{ID: 1, Name: "front", Match: "/*", Parallel: parallel, FailOnCallError: fail, Calls: []Call{
		{Name: "a", URL: "http://a/{path}", Method: "GET", Timeout: time.Second},
		{Name: "b", URL: "http://b/", Method: "POST", Timeout: time.Second},
		{Name: "c", URL: "http://c/", Method: "GET", Timeout: time.Second},
	}}
}

func TestCalls(t *testing.T) {
	ok := CallResult{Status: 200}
	for _, tt := range []struct {
		name             string
		parallel, fail   bool
		answers          map[string]CallResult
		status           int
		asked            int
		errSays          string
		reportedAllCalls bool
	}{
		{"sequential, all fine", false, true, map[string]CallResult{"a": ok, "b": ok, "c": ok}, 200, 3, "", true},
		{"sequential stops at a 503", false, true, map[string]CallResult{"a": ok, "b": {Status: 503}, "c": ok}, 503, 2, "upstream call b failed: 503", false},
		{"a 4xx is an answer, not a failure", false, true, map[string]CallResult{"a": {Status: 404}, "b": ok, "c": ok}, 200, 3, "", true},
		{"no answer is 502", false, true, map[string]CallResult{"a": {Err: ErrNoAnswer}, "b": ok, "c": ok}, 502, 1, "upstream call a failed: no answer", false},
		{"ignore goes on", false, false, map[string]CallResult{"a": {Err: ErrCallTimeout}, "b": {Status: 500}, "c": ok}, 200, 3, "", true},
		{"parallel makes all", true, true, map[string]CallResult{"a": ok, "b": {Status: 504}, "c": ok}, 504, 3, "upstream call b failed: 504", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCaller{answers: tt.answers}
			s, err := New([]Rule{callRule(tt.parallel, tt.fail)}, Options{Caller: f})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.Handle(context.Background(), Request{Method: "GET", Path: "/x/y", RequestID: "rid-1", Hops: 2})
			if err != nil || resp.Status != tt.status {
				t.Fatalf("status %d, %v; want %d (%+v)", resp.Status, err, tt.status, resp)
			}
			if len(f.asked) != tt.asked {
				t.Fatalf("calls made %v, want %d", f.names(), tt.asked)
			}
			if (tt.errSays == "") != (resp.Err == nil) || (resp.Err != nil && resp.Err.Error() != tt.errSays) {
				t.Errorf("error %v, want %q", resp.Err, tt.errSays)
			}
			if got := len(resp.Calls); (got == 3) != tt.reportedAllCalls || got != tt.asked {
				t.Errorf("%d calls reported, %d made", got, tt.asked)
			}
			for i, c := range resp.Calls {
				if c.Name != []string{"a", "b", "c"}[i] {
					t.Errorf("call %d reported as %q: results keep the rule's order", i, c.Name)
				}
			}
			for _, req := range f.asked {
				if req.RequestID != "rid-1" || req.Hops != 3 || req.Route != "front" || req.Path != "/x/y" {
					t.Errorf("call %s asked with %+v; want the request id, hops+1, the route and the path", req.Name, req)
				}
			}
		})
	}
}

// TestParallelCallsOverlap: three calls of 100ms each, in parallel, take about 100ms.
func TestParallelCallsOverlap(t *testing.T) {
	f := &fakeCaller{answers: map[string]CallResult{}, wait: 100 * time.Millisecond}
	s, err := New([]Rule{callRule(true, false)}, Options{Caller: f})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/"})
	if took := time.Since(begin); took > 250*time.Millisecond || len(resp.Calls) != 3 {
		t.Fatalf("3 parallel calls of 100ms took %v (%d reported)", took, len(resp.Calls))
	}
}

func TestLoopIsCutAtMaxHops(t *testing.T) {
	f := &fakeCaller{answers: map[string]CallResult{}}
	s, err := New([]Rule{callRule(false, true)}, Options{Caller: f, MaxHops: 4})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/", Hops: 4})
	if resp.Status != StatusLoopDetected || !errors.Is(resp.Err, ErrLoop) || len(f.asked) != 0 {
		t.Fatalf("at max hops: %+v, %d calls made", resp, len(f.asked))
	}
	if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/", Hops: 3}); resp.Status == StatusLoopDetected {
		t.Fatal("below max hops: 508")
	}
}

func TestRequestIDIsKeptOrMade(t *testing.T) {
	s := newTestService(t)
	resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/", RequestID: "abc"})
	if resp.RequestID != "abc" {
		t.Fatalf("request id %q, want the caller's", resp.RequestID)
	}
	a, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/"})
	b, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/"})
	if len(a.RequestID) != 32 || a.RequestID == b.RequestID || strings.Trim(a.RequestID, "0123456789abcdef") != "" {
		t.Fatalf("made ids %q and %q, want distinct 32-digit hex", a.RequestID, b.RequestID)
	}
}

func TestRulesWithCallsNeedACaller(t *testing.T) {
	if _, err := New([]Rule{callRule(false, true)}, Options{}); err == nil {
		t.Fatal("a rule with calls was accepted without a caller")
	}
}
