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
			s, err := New(f, []Rule{callRule(tt.parallel, tt.fail)}, Options{})
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
	s, err := New(f, []Rule{callRule(true, false)}, Options{})
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
	s, err := New(f, []Rule{callRule(false, true)}, Options{MaxHops: 4})
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
	if _, err := New(nil, []Rule{callRule(false, true)}, Options{}); err == nil {
		t.Fatal("a rule with calls was accepted without a caller")
	}
}

// TestCallsCarryTheRequestsTrace: every call is told the incoming request's trace, for the
// counting decorator's exemplars.
func TestCallsCarryTheRequestsTrace(t *testing.T) {
	f := &fakeCaller{answers: map[string]CallResult{}}
	s, err := New(f, []Rule{callRule(true, false)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Handle(context.Background(), Request{Method: "GET", Path: "/x", TraceID: "4bf9", TraceSampled: true}); err != nil {
		t.Fatal(err)
	}
	if len(f.asked) != 3 {
		t.Fatalf("%d calls, want 3", len(f.asked))
	}
	for _, r := range f.asked {
		if r.TraceID != "4bf9" || !r.TraceSampled {
			t.Errorf("call %s carries trace %q sampled %v, want the request's 4bf9, sampled", r.Name, r.TraceID, r.TraceSampled)
		}
	}
}

// TestRefusedPathAnswers400: a call refused for its path is the client's doing: a route that
// fails on call errors answers 400, one that ignores them answers as usual.
func TestRefusedPathAnswers400(t *testing.T) {
	for fail, want := range map[bool]int{true: 400, false: 200} {
		f := &fakeCaller{answers: map[string]CallResult{"a": {Err: ErrUnsafePath}}}
		s, err := New(f, []Rule{callRule(false, fail)}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/.."}); resp.Status != want {
			t.Errorf("fail=%v: %d (%v), want %d", fail, resp.Status, resp.Err, want)
		}
	}
}

// TestHopHeaderCannotForceErrors: any client can send x-anyroute-hops; a route without calls
// ends every chain, so it answers as usual whatever the header says, and only routes that call
// are cut at max_hops.
func TestHopHeaderCannotForceErrors(t *testing.T) {
	f := &fakeCaller{answers: map[string]CallResult{}}
	leaf := Rule{ID: 2, Name: "leaf", Match: "/leaf", Status: 201}
	s, err := New(f, []Rule{leaf, callRule(false, true)}, Options{MaxHops: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, hops := range []int32{4, 10, 1 << 30} {
		if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/leaf", Hops: hops}); resp.Status != 201 || resp.Err != nil {
			t.Errorf("route without calls, %d hops: %d %v, want its own 201", hops, resp.Status, resp.Err)
		}
		if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/x", Hops: hops}); resp.Status != StatusLoopDetected {
			t.Errorf("route with calls, %d hops: %d, want 508", hops, resp.Status)
		}
	}
}

// TestCallsCutByTheRequestsEnd: a request whose context ends during its calls is answered as one
// that ends during its delay: 499 when the client left, 503 ErrStopping when the drain cut it,
// whatever on_call_error says; not 502 (or 200) as if the upstream had failed.
func TestCallsCutByTheRequestsEnd(t *testing.T) {
	for _, tt := range []struct {
		cause  error
		fail   bool
		status int
	}{
		{context.Canceled, true, StatusClientClosed},
		{context.Canceled, false, StatusClientClosed},
		{ErrStopping, true, 503},
		{ErrStopping, false, 503},
	} {
		for _, parallel := range []bool{false, true} {
			f := &fakeCaller{answers: map[string]CallResult{}, wait: time.Minute}
			s, err := New(f, []Rule{callRule(parallel, tt.fail)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			go func() { time.Sleep(20 * time.Millisecond); cancel(tt.cause) }()
			resp, err := s.Handle(ctx, Request{Method: "GET", Path: "/"})
			if resp.Status != tt.status || err == nil || (tt.status == 503) != errors.Is(resp.Err, ErrStopping) {
				t.Errorf("cause %v, fail=%v, parallel=%v: %d %v (err %v), want %d", tt.cause, tt.fail, parallel, resp.Status, resp.Err, err, tt.status)
			}
		}
	}
}

// TestUpstreamStatusesAreBounded: a failed call passes on a standard 5xx only; any other status
// an upstream gives (520, 599, 999) is answered 502, so the route's code series stay bounded.
func TestUpstreamStatusesAreBounded(t *testing.T) {
	for upstream, want := range map[int]int{500: 500, 503: 503, 508: 508, 511: 511, 509: 502, 520: 502, 599: 502, 600: 502, 999: 502} {
		f := &fakeCaller{answers: map[string]CallResult{"a": {Status: upstream}}}
		s, err := New(f, []Rule{callRule(false, true)}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/"}); resp.Status != want {
			t.Errorf("upstream %d: answered %d, want %d", upstream, resp.Status, want)
		}
	}
}

func TestGRPCTarget(t *testing.T) {
	for _, c := range []struct {
		url, addr, method string
		ok                bool
	}{
		{"grpc://inv:9090/shop.Inventory/Reserve", "inv:9090", "/shop.Inventory/Reserve", true},
		{"grpc://[::1]:9090/a.B/C", "[::1]:9090", "/a.B/C", true},
		{"grpc://inv/shop.Inventory/Reserve", "", "", false}, // no port
		{"grpc://inv:9090/shop.Inventory", "", "", false},
		{"grpc://inv:9090/a.B/C/D", "", "", false},
		{"grpc://inv:9090/a.B/{path}", "", "", false},
		{"grpc://inv:9090/a.B/C?x=1", "", "", false},
		{"http://inv:9090/a.B/C", "", "", false},
	} {
		addr, method, ok := GRPCTarget(c.url)
		if addr != c.addr || method != c.method || ok != c.ok {
			t.Errorf("GRPCTarget(%q) = %q %q %v, want %q %q %v", c.url, addr, method, ok, c.addr, c.method, c.ok)
		}
	}
}
