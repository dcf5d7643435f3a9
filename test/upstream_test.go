package test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestLoopIsCutAtMaxHops: two services whose routes call each other are cut after max_hops,
// answering 508 down the whole chain, each hop counted once. A route calling its own service is
// refused before it runs (check-config, and at start with the address -http.addr gives).
func TestLoopIsCutAtMaxHops(t *testing.T) {
	addrA, addrB := kit.FreeAddr(t), kit.FreeAddr(t)
	loop := func(peer string) string {
		return fmt.Sprintf(`{"max_hops": 4, "routes": [
  {"name": "loop", "match": "/loop/*", "calls": [{"name": "peer", "url": "http://%s/loop/{path}", "timeout": "5s"}]}]}`, peer)
	}
	a := startOn(t, binary, addrA, loop(addrB))
	b := startOn(t, binary, addrB, loop(addrA))
	code, e := kit.Echo(t, "GET", a.api+"/loop/x", nil)
	if code != 508 || !strings.Contains(e.Error, "upstream call peer failed: 508") {
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
		return a.metrics(t).Sum("app_requests_total", "route", "loop", "code", "508") == 3 &&
			b.metrics(t).Sum("app_requests_total", "route", "loop", "code", "508") == 2
	})

	self := filepath.Join(t.TempDir(), "self.json")
	if err := os.WriteFile(self, []byte(loop(addrA)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runBinary(t, "-http.addr", addrA, "-admin.addr", kit.FreeAddr(t), "-config", self); code != 2 || !strings.Contains(out, "own API address") {
		t.Errorf("started with a route calling itself through -http.addr: exit %d, %s", code, out)
	}
	self2 := filepath.Join(t.TempDir(), "self2.json")
	doc := strings.Replace(loop("127.0.0.1:8080"), `{"max_hops"`, `{"http": {"addr": ":8080"}, "max_hops"`, 1)
	if err := os.WriteFile(self2, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runBinary(t, "check-config", self2); code != 2 || !strings.Contains(out, "/routes/0/calls/0/url") {
		t.Errorf("check-config of a route calling itself: exit %d, %s", code, out)
	}
}

// TestFanOutIsBounded: two services whose route calls the other 16 times in parallel (the widest
// fan-out max_hops 4 allows; one service calling itself is refused) once turned one request into
// tens of thousands. The bound on calls in flight per request tree cuts it to a few hundred
// requests; every call made or refused is counted exactly, and the goroutines go back to their
// number before.
func TestFanOutIsBounded(t *testing.T) {
	addrA, addrB := kit.FreeAddr(t), kit.FreeAddr(t)
	fan := func(peer string) string {
		var calls []string
		for i := range 16 {
			calls = append(calls, fmt.Sprintf(`{"name": "c%d", "url": "http://%s/fan/{path}", "timeout": "10s"}`, i, peer))
		}
		return `{"max_hops": 4, "http": {"idle_timeout": "1s"}, "routes": [
  {"name": "fan", "match": "/fan/*", "call_mode": "parallel", "calls": [` + strings.Join(calls, ", ") + `]}]}`
	}
	a := startOn(t, binary, addrA, fan(addrB))
	b := startOn(t, binary, addrB, fan(addrA))
	before := a.metrics(t).Sum("go_goroutines") + b.metrics(t).Sum("go_goroutines")
	code, e := kit.Echo(t, "GET", a.api+"/fan/x", nil)
	if (code != 503 && code != 508) || len(e.Calls) != 16 {
		t.Fatalf("%d %+v: want 503 (calls refused down the tree) or 508 (the tree's end), at once", code, e)
	}
	var last string
	kit.WaitUntil(t, 30*time.Second, "every request answered and counted, every call counted, the goroutines back", func() (bool, string, error) {
		ma, mb := a.metrics(t), b.metrics(t)
		reqA, reqB := ma.Sum("app_requests_total"), mb.Sum("app_requests_total")
		callsA, limitedA := ma.Sum("app_upstream_requests_total"), ma.Sum("app_upstream_requests_total", "code", "limited")
		callsB, limitedB := mb.Sum("app_upstream_requests_total"), mb.Sum("app_upstream_requests_total", "code", "limited")
		inFlight := ma.Sum("app_requests_in_flight") + mb.Sum("app_requests_in_flight")
		goroutines := ma.Sum("go_goroutines") + mb.Sum("go_goroutines")
		got := fmt.Sprintf("requests A %v B %v; calls A %v (%v limited) B %v (%v limited); in flight %v; goroutines %v (before %v)",
			reqA, reqB, callsA, limitedA, callsB, limitedB, inFlight, goroutines, before)
		last = got
		if reqA+reqB > 1000 {
			return false, got, fmt.Errorf("one request set off %v requests", reqA+reqB)
		}
		// Every call made reached the other service and was counted there; every request that
		// made calls made all 16, each counted, made or refused.
		return inFlight == 0 && callsA-limitedA == reqB && callsB-limitedB == reqA-1 &&
			math.Mod(callsA, 16) == 0 && math.Mod(callsB, 16) == 0 && callsA <= 16*reqA && callsB <= 16*reqB &&
			goroutines <= before+10, got, nil
	})
	t.Log(last)
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

// TestRequestsEndingDuringCallsAreCountedAsDuringDelays: a client that leaves while its request
// waits for an upstream is answered and counted 499, as one leaving during a delay is, and not
// 502 as if the upstream had failed; a drain cut while a request waits for an upstream answers
// the documented 503 "server shutting down" and exits 3.
func TestRequestsEndingDuringCallsAreCountedAsDuringDelays(t *testing.T) {
	hole := stuckAddr(t)
	for _, mode := range []string{"fail", "ignore"} {
		t.Run(mode, func(t *testing.T) {
			p := start(t, fmt.Sprintf(`{"http": {"write_timeout": "2m"}, "shutdown": {"grace": "1s"}, "routes": [
  {"name": "wait", "match": "/*", "on_call_error": %q, "calls": [{"name": "hole", "url": "http://%s/", "timeout": "1m"}]}]}`, mode, hole))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			code, _ := kit.Do(ctx, "GET", p.api+"/leave", nil, nil)
			cancel()
			if code != 0 {
				t.Fatalf("the client that left got %d", code)
			}
			kit.WaitUntil(t, 10*time.Second, "the request that left counted 499, its call canceled", func() (bool, string, error) {
				m := p.metrics(t)
				got := fmt.Sprintf("499: %v, all: %v, canceled calls: %v", m.Sum("app_requests_total", "code", "499"),
					m.Sum("app_requests_total"), m.Sum("app_upstream_requests_total", "code", "canceled"))
				return m.Sum("app_requests_total", "code", "499") == 1 && m.Sum("app_requests_total") == 1 &&
					m.Sum("app_upstream_requests_total", "code", "canceled") == 1, got, nil
			})

			answer := make(chan string, 1)
			go func() {
				code, body := kit.Get(p.api + "/cut")
				answer <- fmt.Sprint(code, " ", body)
			}()
			kit.WaitFor(t, 5*time.Second, "the request in flight", func() bool { return inFlight(p) == 1 })
			p.SignalT(t, syscall.SIGTERM)
			if code := p.WaitExit(t, 10*time.Second); code != 3 {
				t.Errorf("exit code %d after a drain cut during a call, want 3", code)
			}
			if got := <-answer; !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"error":"server shutting down"`) {
				t.Errorf("the request cut during its call got %q, want 503 server shutting down", got)
			}
		})
	}
}
