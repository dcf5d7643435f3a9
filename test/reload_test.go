package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// reloadRoutes are the route sets the reload test moves between: the version route answers
// 200+version, so a client can tell which rules answered it; route a changes its status, b goes
// and comes back, c and d come and go.
func reloadConfig(version int) string {
	routes := []string{
		fmt.Sprintf(`{"name": "version", "match": "/version", "status": %d}`, 200+version),
		fmt.Sprintf(`{"name": "a", "match": "/a/*", "status": %d}`, 200+version%2),
	}
	if version%3 != 1 {
		routes = append(routes, `{"name": "b", "match": "/b/*"}`)
	}
	if version%2 == 1 {
		routes = append(routes, `{"name": "c", "match": "/c/*", "errors": [{"status": 503, "rate": 0.5}]}`)
	}
	if version%4 == 2 {
		routes = append(routes, `{"name": "d", "match": "/d/*", "delay": "1ms"}`)
	}
	return `{"admin": {"lifecycle": true}, "metrics": {"flush_interval": "100ms"}, "routes": [` + strings.Join(routes, ", ") + `]}`
}

// writeAtomically replaces file as an editor or Kubernetes does: a new file renamed over it.
func writeAtomically(t *testing.T, file, content string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoad reloads the config 20 times while clients send requests: file edits (the
// watcher), SIGHUP and POST /-/reload mixed, 6 of them invalid. Each valid reload takes effect
// within a second; each invalid one leaves the rules serving and sets the gauge to 0; no counter
// ever goes down; and at the end every route's app_requests_total equals what the clients
// counted, removed routes' last counts included.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	writeAtomically(t, file, reloadConfig(0))
	p := startFile(t, file)

	// Clients: each answer counted by the route the echo names and its status.
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	counted := map[string]float64{} // "route code"
	var clients sync.WaitGroup
	for range 6 {
		clients.Go(func() {
			for ctx.Err() == nil {
				path := "/" + string(rune('a'+rand.IntN(5))) + "/x" // a, b, c, d, e (never a route)
				code, e := kit.Echo(t, "GET", p.api+path, nil)
				mu.Lock()
				counted[fmt.Sprint(e.Route, " ", code)]++
				mu.Unlock()
			}
		})
	}
	// Meanwhile no published counter may go down.
	var monotonic sync.WaitGroup
	var decreased []string
	monotonic.Go(func() {
		last := map[string]float64{}
		for ctx.Err() == nil {
			m, err := kit.Scrape(p.admin + "/metrics")
			if err == nil {
				for _, s := range m.Series("app_requests_total") {
					key := s.Labels["route"] + " " + s.Labels["code"] + " " + s.Labels["method"]
					if s.Value < last[key] {
						decreased = append(decreased, fmt.Sprintf("%s: %v after %v", key, s.Value, last[key]))
					}
					last[key] = s.Value
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	invalid := map[int]string{
		3:  `{"routes": [{"name": "a", "match": "/a/*", "status": 99}]}`,               // out of range
		7:  `{"routes": [`,                                                             // not JSON
		9:  `{"http": {"addr": "127.0.0.1:1"}, "admin": {"lifecycle": true}}`,          // restart-only
		12: `{"routes": [{"name": "x", "match": "/x"}, {"name": "x", "match": "/y"}]}`, // duplicate name
		15: `{"tracing": {"backend": "otlp"}, "admin": {"lifecycle": true}}`,           // restart-only
		18: `{"routes": [{"name": "a", "match": "/a/*", "delay": "2562048h"}]}`,        // overflow
	}
	current := 0
	for i := 1; i <= 20; i++ {
		content, bad := invalid[i]
		if !bad {
			content = reloadConfig(i)
		}
		writeAtomically(t, file, content)
		how := []string{"file", "SIGHUP", "POST /-/reload"}[i%3]
		switch how {
		case "SIGHUP":
			p.SignalT(t, syscall.SIGHUP)
		case "POST /-/reload":
			code, body := kit.Do(ctx, "POST", p.admin+"/-/reload", nil, nil)
			if (code == 200) == bad {
				t.Errorf("reload %d (%s): POST /-/reload answered %d %q", i, how, code, body)
			}
		}
		if bad {
			kit.WaitFor(t, 5*time.Second, fmt.Sprintf("reload %d (invalid, by %s) to set the gauge to 0", i, how), func() bool {
				return p.metrics(t).Sum("app_config_last_reload_successful") == 0
			})
			if code, _ := kit.Get(p.api + "/version"); code != 200+current {
				t.Fatalf("after invalid reload %d the version route answers %d, want the running %d", i, code, 200+current)
			}
			continue
		}
		begin := time.Now()
		kit.WaitFor(t, time.Second, fmt.Sprintf("reload %d (by %s) to take effect within a second", i, how), func() bool {
			code, _ := kit.Get(p.api + "/version")
			return code == 200+i
		})
		current = i
		t.Logf("reload %2d by %-14s took effect after %v", i, how, time.Since(begin).Round(time.Millisecond))
		kit.WaitFor(t, 5*time.Second, "the gauge at 1", func() bool {
			return p.metrics(t).Sum("app_config_last_reload_successful") == 1
		})
	}
	stop()
	clients.Wait()
	monotonic.Wait()
	if len(decreased) > 0 {
		t.Fatalf("counters went down: %v", decreased)
	}
	// The clients' counts, the /version probes aside, against the final flush.
	kit.WaitUntil(t, 5*time.Second, "every route's count equal to the clients'", func() (bool, string, error) {
		m := p.metrics(t)
		mu.Lock()
		defer mu.Unlock()
		var diffs []string
		for key, want := range counted {
			route, code, _ := strings.Cut(key, " ")
			if got := m.Sum("app_requests_total", "route", route, "code", code); got != want {
				diffs = append(diffs, fmt.Sprintf("%s: %v counted, clients %v", key, got, want))
			}
		}
		return len(diffs) == 0, strings.Join(diffs, "; "), nil
	})
	mu.Lock()
	t.Logf("clients' answers: %v", counted)
	mu.Unlock()
}

// startFile runs anyroute on a config file the test keeps, for reloads, with extra flags.
func startFile(t *testing.T, file string, extra ...string) *proc {
	t.Helper()
	apiAddr, adminAddr := kit.FreeAddr(t), kit.FreeAddr(t)
	p := &proc{
		Proc: kit.StartT(t, kit.Cmd{Name: "anyroute", Path: binary,
			Args: append([]string{"-config", file, "-http.addr", apiAddr, "-admin.addr", adminAddr}, extra...), Env: []string{raceEnv}}),
		api:   "http://" + apiAddr,
		admin: "http://" + adminAddr,
	}
	kit.WaitHTTP(t, p.Proc, p.admin+"/readyz", nil, 15*time.Second)
	return p
}

// TestPatchRouteUnderLoad changes a route's error mix and delay through PATCH /-/routes/{name}
// while clients send requests: the answers and the metrics show the change within a flush; a
// patch that does not check is refused with its problem and changes nothing.
func TestPatchRouteUnderLoad(t *testing.T) {
	p := start(t, `{"admin": {"lifecycle": true}, "metrics": {"flush_interval": "100ms"}, "routes": [{"name": "pay", "match": "/pay/*"}]}`)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			for ctx.Err() == nil {
				kit.Get(p.api + "/pay/x")
			}
		})
	}
	patch := func(body string) (int, string) {
		return kit.Do(ctx, "PATCH", p.admin+"/-/routes/pay", http.Header{"Content-Type": {"application/merge-patch+json"}}, strings.NewReader(body))
	}
	if code, body := patch(`{"errors": [{"status": 503, "rate": 1}]}`); code != 200 || !strings.Contains(body, `"status": 503`) {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	kit.WaitFor(t, time.Second, "every answer 503", func() bool {
		code, _ := kit.Get(p.api + "/pay/y")
		return code == 503
	})
	before := p.metrics(t).Sum("app_requests_total", "route", "pay", "code", "503")
	kit.WaitFor(t, time.Second, "the 503s on /metrics within a flush", func() bool {
		return p.metrics(t).Sum("app_requests_total", "route", "pay", "code", "503") > before
	})
	if code, body := patch(`{"errors": null, "delay": "60ms"}`); code != 200 {
		t.Fatalf("PATCH: %d %s", code, body)
	}
	kit.WaitFor(t, time.Second, "answers 200 after the 60ms delay", func() bool {
		begin := time.Now()
		code, _ := kit.Get(p.api + "/pay/z")
		return code == 200 && time.Since(begin) >= 60*time.Millisecond
	})
	// Refused: a status out of range, an unknown key, an unknown route. The route stays as it is.
	for body, want := range map[string]int{`{"status": 99}`: 400, `{"colour": "red"}`: 400, `not json`: 400} {
		if code, text := patch(body); code != want || !strings.Contains(text, "refused") {
			t.Errorf("PATCH %s: %d %q, want %d and why", body, code, text, want)
		}
	}
	if code, _ := kit.Do(ctx, "PATCH", p.admin+"/-/routes/nope", nil, strings.NewReader(`{}`)); code != 404 {
		t.Errorf("PATCH of an unknown route: %d, want 404", code)
	}
	code, body := kit.Get(p.admin + "/-/config")
	var cfg struct {
		Routes []struct {
			Name  string `json:"name"`
			Delay string `json:"delay"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(body), &cfg); code != 200 || err != nil || len(cfg.Routes) != 1 || cfg.Routes[0].Delay != "60ms" {
		t.Errorf("GET /-/config: %d %v %s", code, err, body)
	}
	stop()
	clients.Wait()
}

// TestMutationsNeedLifecycle: with admin.lifecycle off (the default) every mutation answers 403
// and changes nothing.
func TestMutationsNeedLifecycle(t *testing.T) {
	p := start(t, `{"routes": [{"name": "pay", "match": "/pay/*"}]}`)
	for _, m := range []struct{ method, path, body string }{
		{"POST", "/-/reload", ""}, {"GET", "/-/config", ""}, {"PATCH", "/-/routes/pay", `{"status": 503}`},
		{"POST", "/-/readyz/disable", ""}, {"POST", "/-/healthz/disable", ""},
	} {
		if code, _ := kit.Do(context.Background(), m.method, p.admin+m.path, nil, strings.NewReader(m.body)); code != 403 {
			t.Errorf("%s %s: %d, want 403", m.method, m.path, code)
		}
	}
	if code, _ := kit.Get(p.api + "/pay/x"); code != 200 {
		t.Errorf("the route answers %d after a refused patch", code)
	}
	for _, probe := range []string{"/readyz", "/healthz"} {
		if code, _ := kit.Get(p.admin + probe); code != 200 {
			t.Errorf("%s answers %d after refused toggles", probe, code)
		}
	}
}

// TestProbeToggles: with lifecycle on, /readyz and /healthz can be forced to fail and put back.
func TestProbeToggles(t *testing.T) {
	p := start(t, `{"admin": {"lifecycle": true}}`)
	for _, tt := range []struct {
		toggle, probe string
		want          int
	}{
		{"/-/readyz/disable", "/readyz", 503}, {"/-/readyz/enable", "/readyz", 200},
		{"/-/healthz/disable", "/healthz", 500}, {"/-/healthz/enable", "/healthz", 200},
	} {
		if code, _ := kit.Do(context.Background(), "POST", p.admin+tt.toggle, nil, nil); code != 200 {
			t.Fatalf("POST %s: %d", tt.toggle, code)
		}
		if code, _ := kit.Get(p.admin + tt.probe); code != tt.want {
			t.Errorf("after %s, %s answers %d, want %d", tt.toggle, tt.probe, code, tt.want)
		}
	}
}
