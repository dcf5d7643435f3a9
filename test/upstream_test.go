package test

import (
	"fmt"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestLoopIsCutAtMaxHops: a route that calls itself is cut after max_hops, answering 508 down the
// whole chain, each hop counted once.
func TestLoopIsCutAtMaxHops(t *testing.T) {
	addr := kit.FreeAddr(t)
	p := startOn(t, binary, addr, fmt.Sprintf(`{"max_hops": 4, "routes": [
  {"name": "loop", "match": "/loop/*", "calls": [{"name": "self", "url": "http://%s/loop/{path}", "timeout": "5s"}]}]}`, addr))
	code, e := kit.Echo(t, "GET", p.api+"/loop/x", nil)
	if code != 508 || !strings.Contains(e.Error, "upstream call self failed: 508") {
		t.Fatalf("%d %+v: want 508 from the upstream named", code, e)
	}
	// Walk the nested answers down to the hop that found the loop.
	depth, answer := 0, e
	for len(answer.Calls) == 1 && answer.Calls[0].Answer != nil {
		next, err := kit.ParseEcho(string(answer.Calls[0].Answer))
		if err != nil {
			t.Fatal(err)
		}
		answer, depth = next, depth+1
	}
	if depth != 4 || answer.Error != "loop detected: too many hops" || answer.Status != 508 || answer.RequestID != e.RequestID {
		t.Fatalf("the chain ends %d hops down with %+v; want hop 4 answering 508 loop detected, same request id", depth, answer)
	}
	kit.WaitFor(t, 5*time.Second, "5 requests counted, all 508", func() bool {
		return p.metrics(t).Sum("app_requests_total", "route", "loop", "code", "508") == 5
	})
}

// TestFailingUpstreams: an upstream that is down, one that takes the connection and never
// answers, and one slower than the call's timeout each give the configured answer within the
// timeout; on_call_error ignore answers as usual; no goroutine is left behind.
func TestFailingUpstreams(t *testing.T) {
	closed := kit.FreeAddr(t) // nothing listens
	hole := stuckAddr(t)
	slow := start(t, `{"http": {"write_timeout": "10s"}, "routes": [{"name": "slow", "match": "/*", "delay": "3s"}]}`)
	p := start(t, fmt.Sprintf(`{"routes": [
  {"name": "down", "match": "/down", "calls": [{"name": "down", "url": "http://%s/", "timeout": "500ms"}]},
  {"name": "hole", "match": "/hole", "calls": [{"name": "hole", "url": "http://%s/", "timeout": "300ms"}]},
  {"name": "slow", "match": "/slow", "calls": [{"name": "slow", "url": "%s/", "timeout": "300ms"}]},
  {"name": "ignore", "match": "/ignore", "on_call_error": "ignore", "calls": [{"name": "down", "url": "http://%s/", "timeout": "500ms"}]}
]}`, closed, hole, slow.api, closed))
	baseline := p.metrics(t).Sum("go_goroutines")
	slowest := map[string]time.Duration{}
	for _, tt := range []struct {
		path, callErr string
		status        int
		within        time.Duration
	}{
		{"/down", "no answer", 502, 500 * time.Millisecond},
		{"/hole", "timed out", 502, 300 * time.Millisecond},
		{"/slow", "timed out", 502, 300 * time.Millisecond},
		{"/ignore", "no answer", 200, 500 * time.Millisecond},
	} {
		for range 5 {
			begin := time.Now()
			code, e := kit.Echo(t, "GET", p.api+tt.path, nil)
			took := time.Since(begin)
			if code != tt.status || len(e.Calls) != 1 || e.Calls[0].Error != tt.callErr || e.Calls[0].Status != 0 {
				t.Fatalf("%s: %d %+v; want %d and the call's error %q", tt.path, code, e, tt.status, tt.callErr)
			}
			if tt.status == 502 && e.Error != "upstream call "+e.Calls[0].Name+" failed: "+tt.callErr {
				t.Errorf("%s: error %q does not name the call", tt.path, e.Error)
			}
			if took > tt.within+time.Second {
				t.Errorf("%s: answered after %v, the call's timeout is %v", tt.path, took, tt.within)
			}
			slowest[tt.path] = max(slowest[tt.path], took)
		}
	}
	t.Logf("slowest answers: %v", slowest)
	kit.WaitUntil(t, 10*time.Second, "every request and call counted, the goroutines back to their number before", func() (bool, string, error) {
		m := p.metrics(t)
		calls := func(route, code string) float64 {
			return m.Sum("app_upstream_requests_total", "route", route, "code", code)
		}
		counts := fmt.Sprintf("502: %v, 200: %v, calls down/error %v hole/timeout %v slow/timeout %v ignore/error %v, goroutines %v (before %v)",
			m.Sum("app_requests_total", "code", "502"), m.Sum("app_requests_total", "code", "200"),
			calls("down", "error"), calls("hole", "timeout"), calls("slow", "timeout"), calls("ignore", "error"), m.Sum("go_goroutines"), baseline)
		return m.Sum("app_requests_total", "code", "502") == 15 && m.Sum("app_requests_total", "route", "ignore", "code", "200") == 5 &&
			calls("down", "error") == 5 && calls("hole", "timeout") == 5 && calls("slow", "timeout") == 5 && calls("ignore", "error") == 5 &&
			m.Sum("go_goroutines") <= baseline+2, counts, nil
	})
}

// TestRequestIDIsForwarded: the caller's x-request-id reaches the upstream, and comes back in the
// echo and the response header; without one, the service makes one for the whole tree.
func TestRequestIDIsForwarded(t *testing.T) {
	up := start(t, "")
	p := start(t, fmt.Sprintf(`{"routes": [{"name": "front", "match": "/*", "calls": [{"name": "up", "url": "%s/{path}"}]}]}`, up.api))
	_, e := kit.Echo(t, "GET", p.api+"/a/b", http.Header{"X-Request-Id": {"trace-me-42"}})
	nested, err := kit.ParseEcho(string(e.Calls[0].Answer))
	if err != nil || e.RequestID != "trace-me-42" || nested.RequestID != "trace-me-42" || nested.Path != "/a/b" {
		t.Fatalf("echo %+v, upstream's %+v (%v)", e, nested, err)
	}
	_, e = kit.Echo(t, "GET", p.api+"/c", nil)
	nested, _ = kit.ParseEcho(string(e.Calls[0].Answer))
	if len(e.RequestID) != 32 || nested.RequestID != e.RequestID {
		t.Fatalf("made request id %q, upstream saw %q", e.RequestID, nested.RequestID)
	}
}
