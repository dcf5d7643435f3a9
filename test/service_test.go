package test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

func TestAnyMethodAnyPath(t *testing.T) {
	p := start(t, "", "POD_NAME=pod-under-test")
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"}
	long := "/" + strings.Repeat("a", 600)
	paths := map[string]string{ // raw request path → decoded path echoed
		"/":                     "/",
		"/metrics":              "/metrics",
		"/healthz":              "/healthz",
		"/h%C3%A9llo/%E6%97%A5": "/héllo/日",
		"/a%2Fb/c%20d":          "/a/b/c d",
		"/ünïcödé":              "/ünïcödé",
		long:                    long,
	}
	for _, m := range methods {
		for raw, decoded := range paths {
			code, body := kit.Do(context.Background(), m, p.api+raw+"?q=1", nil, nil)
			if code == 0 {
				t.Fatalf("%s %s: %s", m, raw, body)
			}
			if code != 200 {
				t.Errorf("%s %s: status %d", m, raw, code)
			}
			if m == "HEAD" {
				continue // no body to echo
			}
			e, err := kit.ParseEcho(body)
			if err != nil {
				t.Fatalf("%s %s: %v", m, raw, err)
			}
			if e.Method != m || e.Path != decoded || e.Query != "q=1" || e.Route != "other" || e.Instance != "pod-under-test" {
				t.Errorf("%s %s: echo %+v", m, raw, e)
			}
		}
	}
}

func TestAdminEndpoints(t *testing.T) {
	p := start(t, "")
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": "go_goroutines",
	} {
		code, body := kit.Get(p.admin + path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("admin %s: %d %q", path, code, body)
		}
	}
	if code, _ := kit.Get(p.admin + "/debug/pprof/"); code != 404 {
		t.Errorf("pprof must be off by default, got %d", code)
	}
	if code, _ := runBinary(t, "healthcheck", "-admin.addr", strings.TrimPrefix(p.admin, "http://")); code != 0 {
		t.Errorf("healthcheck against a live admin port: exit %d", code)
	}
	if code, _ := runBinary(t, "healthcheck", "-admin.addr", kit.FreeAddr(t)); code != 1 {
		t.Errorf("healthcheck against a closed port: exit %d, want 1", code)
	}
}

func TestCheckConfigNamesEveryViolation(t *testing.T) {
	bad := `{
  "http": {"addr": 8080, "max_body_bytes": -1},
  "admin": {"pprof": "yes"},
  "metrics": {"flush_interval": "1 second"},
  "log": {"level": "loud"},
  "tracing": {"sampler": {"type": "sometimes"}},
  "extra": true,
  "routes": [{"name": "ok", "match": "/ok", "status": 99}]
}`
	file := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runBinary(t, "check-config", file)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, out)
	}
	pointers := []string{"/http/addr", "/http/max_body_bytes", "/admin/pprof", "/metrics/flush_interval",
		"/log/level", "/tracing/sampler/type", "/extra", "/routes/0/status"}
	for _, ptr := range pointers {
		if !strings.Contains(out, file+": "+ptr+": ") {
			t.Errorf("no line names %s:\n%s", ptr, out)
		}
	}
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != len(pointers) {
		t.Errorf("%d lines for %d violations:\n%s", n, len(pointers), out)
	}

	// The server refuses the same file and never starts listening.
	code, out = runBinary(t, "-config", file, "-http.addr", kit.FreeAddr(t), "-admin.addr", kit.FreeAddr(t))
	if code != 2 || strings.Contains(out, "listening") {
		t.Errorf("server with a bad config: exit %d\n%s", code, out)
	}
}

func TestSIGTERMDrainsSlowRequests(t *testing.T) {
	// flush_interval: the in-flight gauge below is as old as one flush.
	p := start(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [{"name": "slow", "match": "/slow", "delay": "1500ms"}], "shutdown": {"grace": "10s"}}`)
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i] = kit.Get(p.api + "/slow?i=" + url.QueryEscape(string(rune('a'+i))))
		}()
	}
	// Every request in flight, none answered (each takes 1.5s), before the signal.
	kit.WaitFor(t, time.Second, "the 8 requests in flight", func() bool { return inFlight(p) == n })
	p.SignalT(t, syscall.SIGTERM)

	// Readiness drops at once while the slow requests drain.
	kit.WaitFor(t, time.Second, "/readyz to turn 503 after SIGTERM", func() bool {
		code, _ := kit.Get(p.admin + "/readyz")
		return code == http.StatusServiceUnavailable
	})
	wg.Wait()
	for i := range n {
		e, err := kit.ParseEcho(bodies[i])
		if codes[i] != 200 || err != nil || e.Route != "slow" {
			t.Errorf("request %d: %d %q %v", i, codes[i], bodies[i], err)
		}
	}
	if code := p.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// inFlight is app_requests_in_flight on /metrics, or -1 when the scrape fails.
func inFlight(p *proc) float64 {
	m, err := kit.Scrape(p.admin + "/metrics")
	if err != nil {
		return -1
	}
	return m.Sum("app_requests_in_flight")
}
