package service

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestFaultsAndErrorsShareOneDraw: with a seed, a rule's faults take the first shares of one draw
// and its error mix the next, each answered to its share of requests; a faulted answer keeps the
// rule's status and padding (slow_body writes them) and carries the rule's own Fault.
func TestFaultsAndErrorsShareOneDraw(t *testing.T) {
	seed := uint64(7)
	faults := []Fault{{Kind: FaultReset, Rate: 0.1}, {Kind: FaultSlowBody, Rate: 0.2, BytesPerSecond: 100}}
	s, err := New(nil, []Rule{{Name: "r", Match: "/r", BodyBytes: 5, Faults: faults, Errors: []ErrorShare{{Status: 503, Rate: 0.3}}}},
		Options{Random: NewRandom(&seed)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	got := map[string]int{}
	for range n {
		resp, err := s.Handle(context.Background(), Request{Method: "GET", Path: "/r"})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case resp.Fault != nil:
			if resp.Status != 200 || resp.Padding != 5 || resp.Err != nil {
				t.Fatalf("a faulted answer changed its status, padding or error: %+v", resp)
			}
			got[resp.Fault.Kind.String()]++
			faults[0].Kind = FaultMalformed // the caller's slice: the rule must not see it
		default:
			got[map[int]string{200: "200", 503: "503"}[resp.Status]]++
		}
	}
	for key, share := range map[string]float64{"reset": 0.1, "slow_body": 0.2, "503": 0.3, "200": 0.4} {
		sd := math.Sqrt(share * (1 - share) / n)
		if d := math.Abs(float64(got[key])/n - share); d > 5*sd {
			t.Errorf("%s: %d of %d, want a share of %g (off by %.1f standard errors)", key, got[key], n, share, d/sd)
		}
	}
	if got["malformed"] != 0 || len(got) != 4 {
		t.Errorf("answers %v: want only reset, slow_body, 503 and 200", got)
	}
}

// TestErrorMixDrawsAsBeforeFaults: a rule with an error mix and no faults makes one draw per
// request from the seeded source, as it did before faults existed, so seeded runs repeat.
func TestErrorMixDrawsAsBeforeFaults(t *testing.T) {
	seed := uint64(42)
	s, err := New(nil, []Rule{{Name: "r", Match: "/r", Errors: []ErrorShare{{Status: 500, Rate: 0.25}, {Status: 502, Rate: 0.25}}}},
		Options{Random: NewRandom(&seed)})
	if err != nil {
		t.Fatal(err)
	}
	ref := NewRandom(&seed)
	for i := range 1000 {
		want := 200
		switch u := ref.Float64(); {
		case u < 0.25:
			want = 500
		case u < 0.5:
			want = 502
		}
		resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/r"})
		if resp.Status != want || resp.Fault != nil {
			t.Fatalf("request %d: %d (fault %v), want %d", i, resp.Status, resp.Fault, want)
		}
	}
}

// TestRateLimitRefusesAtOnce: past its burst, a rule's quota answers 429 with ErrRateLimited and a
// Retry-After of the longest wait for a token in whole seconds, before any latency, call or draw.
func TestRateLimitRefusesAtOnce(t *testing.T) {
	s := newTestService(t,
		Rule{Name: "slow", Match: "/slow", Latency: Latency{Delay: 50 * time.Millisecond}, RateLimit: RateLimit{RPS: 0.4, Burst: 2}},
		Rule{Name: "free", Match: "/free"})
	for i := range 2 {
		if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/slow"}); resp.Status != 200 || resp.Delay == 0 {
			t.Fatalf("request %d within the burst: %+v", i, resp)
		}
	}
	begin := time.Now()
	resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/slow"})
	var rl *RateLimitError
	if resp.Status != 429 || !errors.Is(resp.Err, ErrRateLimited) || !errors.As(resp.Err, &rl) || resp.Padding != 0 {
		t.Fatalf("past the burst: %+v", resp)
	}
	if rl.RetryAfter != 3*time.Second { // 1/0.4 = 2.5 s, rounded up
		t.Errorf("Retry-After %v, want 3s", rl.RetryAfter)
	}
	if took := time.Since(begin); took >= 50*time.Millisecond || resp.Delay != 0 {
		t.Errorf("a refusal waited %v (delay %v): it must not do the rule's work", took, resp.Delay)
	}
	if resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/free"}); resp.Status != 200 {
		t.Errorf("another route's requests are refused too: %+v", resp)
	}
}

func TestFaultAndQuotaChecks(t *testing.T) {
	for _, tt := range []struct {
		rule Rule
		want string
	}{
		{Rule{Faults: []Fault{{Kind: FaultKind(99), Rate: 0.1}}}, "unknown kind"},
		{Rule{Faults: []Fault{{Kind: FaultReset, Rate: 1.5}}}, "rate 1.5"},
		{Rule{Faults: []Fault{{Kind: FaultSlowBody, Rate: 0.1}}}, "bytes_per_second 0"},
		{Rule{RateLimit: RateLimit{Burst: 3}}, "rps 0"},
		{Rule{RateLimit: RateLimit{RPS: 5}}, "burst 0"},
	} {
		tt.rule.Name, tt.rule.Match = "r", "/r"
		if _, err := New(nil, []Rule{tt.rule}, Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error naming %q", tt.rule, err, tt.want)
		}
	}
	for _, k := range FaultKinds {
		if got, ok := ParseFaultKind(k.String()); !ok || got != k {
			t.Errorf("%v does not parse back: %v %v", k, got, ok)
		}
	}
	if _, ok := ParseFaultKind(""); ok {
		t.Error("the empty name parses as a kind")
	}
}
