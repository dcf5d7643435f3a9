package test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type echo struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	Query    string `json:"query"`
	Route    string `json:"route"`
	Status   int    `json:"status"`
	Instance string `json:"instance"`
	TraceID  string `json:"trace_id"`
}

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
			req, err := http.NewRequest(m, p.api+raw+"?q=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", m, raw, err)
			}
			var e echo
			decodeErr := json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s %s: status %d", m, raw, resp.StatusCode)
			}
			if m == "HEAD" {
				continue // no body to echo
			}
			if decodeErr != nil {
				t.Fatalf("%s %s: %v", m, raw, decodeErr)
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
		code, body := get(p.admin + path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("admin %s: %d %q", path, code, body)
		}
	}
	if code, _ := get(p.admin + "/debug/pprof/"); code != 404 {
		t.Errorf("pprof must be off by default, got %d", code)
	}
	if code, _ := runBinary(t, "healthcheck", "-admin.addr", strings.TrimPrefix(p.admin, "http://")); code != 0 {
		t.Errorf("healthcheck against a live admin port: exit %d", code)
	}
	if code, _ := runBinary(t, "healthcheck", "-admin.addr", freeAddr(t)); code != 1 {
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
	code, out = runBinary(t, "-config", file, "-http.addr", freeAddr(t), "-admin.addr", freeAddr(t))
	if code != 2 || strings.Contains(out, "listening") {
		t.Errorf("server with a bad config: exit %d\n%s", code, out)
	}
}

func TestSIGTERMDrainsSlowRequests(t *testing.T) {
	p := start(t, `{"routes": [{"name": "slow", "match": "/slow", "delay": "1500ms"}], "shutdown": {"grace": "10s"}}`)
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i] = get(p.api + "/slow?i=" + url.QueryEscape(string(rune('a'+i))))
		}()
	}
	time.Sleep(500 * time.Millisecond) // every request is in flight, none answered
	p.signal(t, syscall.SIGTERM)

	// Readiness drops at once while the slow requests drain.
	deadline := time.Now().Add(time.Second)
	for {
		code, _ := get(p.admin + "/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after SIGTERM", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	for i := range n {
		var e echo
		if codes[i] != 200 || json.Unmarshal([]byte(bodies[i]), &e) != nil || e.Route != "slow" {
			t.Errorf("request %d: %d %q", i, codes[i], bodies[i])
		}
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
