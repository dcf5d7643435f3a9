package service

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestOverrides(t *testing.T) {
	s := newTestService(t,
		Rule{ID: 1, Name: "open", Match: "/open", AllowOverrides: true, MaxDelay: 50 * time.Millisecond, Errors: []ErrorShare{{Status: 500, Rate: 1}}},
		Rule{ID: 2, Name: "closed", Match: "/closed"},
	)
	for _, tt := range []struct {
		name    string
		req     Request
		status  int
		refused bool
		delayed bool
	}{
		{"query status", Request{Path: "/open", Query: "status=418"}, 418, false, false},
		{"header status wins", Request{Path: "/open", Query: "status=418", OverrideStatus: "503"}, 503, false, false},
		{"query delay", Request{Path: "/open", Query: "delay=20ms&status=201"}, 201, false, true},
		{"header delay", Request{Path: "/open", OverrideDelay: "20ms", OverrideStatus: "200"}, 200, false, true},
		{"no override: the mix answers", Request{Path: "/open"}, 500, false, false},
		{"status past 599", Request{Path: "/open", Query: "status=600"}, 400, true, false},
		{"1xx status", Request{Path: "/open", Query: "status=101"}, 400, true, false},
		{"status not a number", Request{Path: "/open", OverrideStatus: "teapot"}, 400, true, false},
		{"delay past max_delay", Request{Path: "/open", Query: "delay=51ms"}, 400, true, false},
		{"delay not a duration", Request{Path: "/open", OverrideDelay: "soon"}, 400, true, false},
		{"negative delay", Request{Path: "/open", OverrideDelay: "-1s"}, 400, true, false},
		{"a query that does not parse, no override asked: the mix answers", Request{Path: "/open", Query: "q=%zz&x=100%"}, 500, false, false},
		{"a query that does not parse elsewhere, a status asked", Request{Path: "/open", Query: "q=%zz&status=418"}, 418, false, false},
		{"a status parameter that does not parse", Request{Path: "/open", Query: "status=%zz"}, 400, true, false},
		{"an escaped key", Request{Path: "/open", Query: "%73tatus=418"}, 418, false, false},
		{"the first status of two", Request{Path: "/open", Query: "status=418&status=%zz"}, 418, false, false},
		{"a pair with a semicolon is no parameter", Request{Path: "/open", Query: "a=1;status=418"}, 500, false, false},
		{"closed route ignores them", Request{Path: "/closed", Query: "status=503&delay=1h", OverrideStatus: "503"}, 200, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Method = "GET"
			begin := time.Now()
			resp, err := s.Handle(context.Background(), tt.req)
			if err != nil || resp.Status != tt.status {
				t.Fatalf("status %d, %v; want %d", resp.Status, err, tt.status)
			}
			var oe *OverrideError
			if refused := errors.As(resp.Err, &oe); refused != tt.refused {
				t.Fatalf("refused %v (%v), want %v", refused, resp.Err, tt.refused)
			}
			if delayed := time.Since(begin) >= 20*time.Millisecond && resp.Delay == 20*time.Millisecond; delayed != tt.delayed {
				t.Fatalf("delayed %v (Delay %v), want %v", delayed, resp.Delay, tt.delayed)
			}
		})
	}
}

// TestStatusMixShares: 20,000 draws of a 5% / 1% mix land within 5 standard deviations of
// their shares, and the rest answers the rule's status.
func TestStatusMixShares(t *testing.T) {
	s := newTestService(t, Rule{ID: 1, Name: "mix", Match: "/*", Status: 201, Errors: []ErrorShare{{Status: 503, Rate: 0.05}, {Status: 429, Rate: 0.01}}})
	const n = 20000
	got := map[int]int{}
	for range n {
		resp, _ := s.Handle(context.Background(), Request{Method: "GET", Path: "/"})
		got[resp.Status]++
	}
	for status, share := range map[int]float64{503: 0.05, 429: 0.01, 201: 0.94} {
		mean := share * n
		sd := 5 * math.Sqrt(n*share*(1-share))
		if float64(got[status]) < mean-sd || float64(got[status]) > mean+sd {
			t.Errorf("status %d: %d of %d, want %.0f ± %.0f", status, got[status], n, mean, sd)
		}
	}
	if len(got) != 3 {
		t.Errorf("statuses %v", got)
	}
}
