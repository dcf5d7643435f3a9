//go:build soak

package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// Soak parameters: the quota of the limited route and how long each phase of the repeating
// scenario lasts (each phase change is one apply, which starts the quota's bucket full again).
const (
	soakRPS    = 50
	soakBurst  = 2
	soakPhase  = 5 * time.Second
	soakRound  = 5000
	soakPatch  = time.Second // a PATCH of the slow route every second,
	soakReload = 5           // a POST /-/reload every 5th tick
)

// TestSoak runs a steady mixed load for SOAK_DURATION (default 10m; `make soak`) and checks that
// errors stay at the configured rate, that memory and goroutines stay flat, and that the counts
// are exact at the end. The mix has every kind of route a config can hold: a CPU and memory cost,
// a quota (its 429s are answers, counted exactly), an upstream call into a route of the same
// process (counted twice, as the caller's request and the callee's), and a scenario cycling two
// phases for ever, while the admin port patches a route every second and reloads the unchanged
// file every few: every change must apply, and none may lose a count.
func TestSoak(t *testing.T) {
	duration := 10 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		var err error
		if duration, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	api := kit.FreeAddr(t) // the front route calls into this process: its address comes first
	p := startOn(t, plainBinary, api, fmt.Sprintf(`{
  "admin": {"lifecycle": true},
  "routes": [
    {"name": "fast", "match": "/fast/*"},
    {"name": "slow", "match": "/slow/*", "delay": "20ms", "jitter": "10ms"},
    {"name": "flaky", "match": "/flaky/*", "error_rate": 0.05, "error_status": 503},
    {"name": "big", "match": "/big/*", "body_bytes": 16384},
    {"name": "cost", "match": "/cost/*", "cpu": "200us", "memory": 65536},
    {"name": "limited", "match": "/limited/*", "rate_limit": {"rps": %d, "burst": %d}},
    {"name": "front", "match": "/front/*", "calls": [{"name": "fast", "url": "http://%s/fast/{path}", "timeout": "5s"}]}
  ],
  "scenario": {"name": "soak", "repeat": true, "phases": [
    {"name": "calm", "duration": %q},
    {"name": "lag", "duration": %q, "routes": {"fast": {"delay": "1ms"}}}
  ]}
}`, soakRPS, soakBurst, api, soakPhase.String(), soakPhase.String()))
	paths := []string{"/fast/a", "/slow/b", "/flaky/c", "/big/d", "/cost/e", "/limited/f", "/front/g", "/unmatched/h"}
	routes := []string{"fast", "slow", "flaky", "big", "cost", "limited", "front", "other"}
	methods := []string{"GET", "POST"}
	pick := func(i int) (string, string) {
		return methods[i%2], p.api + paths[i%len(paths)] + fmt.Sprint(i)
	}
	// What one round sends, by "METHOD route": the requests each route must have counted.
	perRound := map[string]int{}
	for i := range soakRound {
		perRound[methods[i%2]+" "+routes[i%len(paths)]]++
	}

	// The admin port changes the config all through the run: the slow route's delay toggles
	// between two values every second, and the unchanged file is reloaded every fifth second.
	ctx, stop := context.WithCancel(context.Background())
	var patches, reloads int
	var admin sync.WaitGroup
	admin.Add(1)
	go func() {
		defer admin.Done()
		tick := time.NewTicker(soakPatch)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			patch := fmt.Sprintf(`{"delay": %q}`, []string{"30ms", "20ms"}[n%2])
			code, body := kit.Do(context.Background(), "PATCH", p.admin+"/-/routes/slow",
				http.Header{"Content-Type": {"application/merge-patch+json"}}, strings.NewReader(patch))
			if code != http.StatusOK {
				t.Errorf("PATCH %s: %d %.300s", patch, code, body)
			} else {
				patches++
			}
			if n%soakReload == soakReload-1 {
				if code, body := kit.Do(context.Background(), "POST", p.admin+"/-/reload", nil, nil); code != http.StatusOK {
					t.Errorf("POST /-/reload: %d %.300s", code, body)
				} else {
					reloads++
				}
			}
		}
	}()

	type sample struct{ rss, goroutines float64 }
	var samples []sample
	sent, rounds := 0, 0
	answered := map[string]int{}
	began := time.Now()
	deadline := began.Add(duration)
	for ; time.Now().Before(deadline); rounds++ {
		got := load(t, soakRound, 16, pick)
		for k, v := range got {
			answered[k] += v
		}
		sent += soakRound
		fams := p.metrics(t)
		samples = append(samples, sample{gauge(t, fams, "process_resident_memory_bytes"), gauge(t, fams, "go_goroutines")})
	}
	elapsed := time.Since(began)
	stop()
	admin.Wait()

	// Every request is counted once under its route, and every call of the front route once more
	// under the fast route it reached (a GET, the call's method).
	fronts := rounds * (perRound["GET front"] + perRound["POST front"])
	fams := waitCounts(t, p, sent+fronts, 1500*time.Millisecond)
	counts, _ := requestCounts(fams)
	byRoute := map[string]float64{}
	for k, v := range counts {
		f := strings.Fields(k) // method route code
		byRoute[f[0]+" "+f[1]] += v
	}
	for k, n := range perRound {
		want := float64(rounds * n)
		if k == "GET fast" {
			want += float64(fronts)
		}
		if byRoute[k] != want {
			t.Errorf("%s: %v counted, want %v", k, byRoute[k], want)
		}
	}
	var calls float64
	for _, s := range fams.Series("app_upstream_requests_total") {
		if s.Labels["route"] != "front" || s.Labels["call"] != "fast" || s.Labels["code"] != "200" {
			t.Errorf("upstream call counted as %v: %v", s.Labels, s.Value)
		}
		calls += s.Value
	}
	if calls != float64(fronts) {
		t.Errorf("%v calls counted, want %d", calls, fronts)
	}
	if ok := gauge(t, fams, "app_config_last_reload_successful"); ok != 1 {
		t.Errorf("app_config_last_reload_successful %v after %d PATCHes and %d reloads", ok, patches, reloads)
	}

	flakyFailed := counts["GET flaky 503"] + counts["POST flaky 503"]
	flakyAll := flakyFailed + counts["GET flaky 200"] + counts["POST flaky 200"]
	if rate := flakyFailed / flakyAll; rate < 0.04 || rate > 0.06 {
		t.Errorf("flaky error rate %.3f, configured 0.05", rate)
	}
	for k := range answered {
		switch k {
		case "GET 200", "POST 200", "GET 503", "POST 503", "GET 429", "POST 429":
		default:
			t.Errorf("unexpected answers %s: %d", k, answered[k])
		}
	}
	// The quota: every 429 the clients got is counted as one, and the 200s are the quota over the
	// run. The bucket starts full (soakBurst tokens) at start and at every apply (each PATCH,
	// reload and phase change), which bounds them from above; the clients ask the limited route
	// many times its quota all along, and the lulls between rounds (a scrape, the slowest
	// requests' tail) cost a few percent, hence the 10% below.
	limited429 := counts["GET limited 429"] + counts["POST limited 429"]
	limited200 := counts["GET limited 200"] + counts["POST limited 200"]
	if client429 := answered["GET 429"] + answered["POST 429"]; float64(client429) != limited429 {
		t.Errorf("the clients got %d 429s, %v counted", client429, limited429)
	}
	if limited429+limited200 != float64(rounds*(perRound["GET limited"]+perRound["POST limited"])) {
		t.Errorf("limited: %v answered 200 and %v 429, of %d sent", limited200, limited429, rounds*(perRound["GET limited"]+perRound["POST limited"]))
	}
	applies := 1 + patches + reloads + int(elapsed/soakPhase) + 1
	quota := soakRPS * elapsed.Seconds()
	if limited200 < 0.9*quota || limited200 > quota+float64(soakBurst*applies) {
		t.Errorf("limited route answered %v 200s in %v, quota %.0f (+%d for the %d bucket refills)",
			limited200, elapsed.Round(time.Millisecond), quota, soakBurst*applies, applies)
	}

	// Flat: the last quarter's peak within 10% of the first quarter's (after warm-up). The cost
	// route's memory is held only while its request runs (16 clients: at most 1 MiB at once), so
	// it moves the peaks little and the bound stays as it was.
	q := max(len(samples)/4, 1)
	peak := func(s []sample, f func(sample) float64) float64 {
		m := 0.0
		for _, x := range s {
			m = max(m, f(x))
		}
		return m
	}
	rss := func(s sample) float64 { return s.rss }
	gor := func(s sample) float64 { return s.goroutines }
	early, late := samples[:q], samples[len(samples)-q:]
	if peak(late, rss) > peak(early, rss)*1.10 {
		t.Errorf("RSS grew from %.1f to %.1f MiB", peak(early, rss)/(1<<20), peak(late, rss)/(1<<20))
	}
	if peak(late, gor) > peak(early, gor)+10 {
		t.Errorf("goroutines grew from %v to %v", peak(early, gor), peak(late, gor))
	}
	t.Logf("soak %v on %s: %d requests and %d calls, %d samples; RSS %.1f → %.1f MiB; goroutines %v → %v; "+
		"flaky error rate %.4f; limited: %v 200s (quota %.0f), 429 share %.4f; %d PATCHes and %d reloads applied",
		duration, runtime.Version(), sent, fronts, len(samples), peak(early, rss)/(1<<20), peak(late, rss)/(1<<20),
		peak(early, gor), peak(late, gor), flakyFailed/flakyAll, limited200, quota, limited429/(limited200+limited429),
		patches, reloads)
}
