package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// drillConfig is an incident drill of three phases over one route: a baseline at 20ms, a latency
// regression to 300ms ramping in over its first second, an error burst of half the requests.
const drillConfig = `{"admin": {"lifecycle": true}, "metrics": {"flush_interval": "100ms"}, "seed": 25,
 "routes": [{"name": "api", "match": "/api", "delay": "20ms"}],
 "scenario": {"name": "drill", "start": "on_demand", "phases": [
  {"name": "baseline", "duration": "2s"},
  {"name": "regression", "duration": "3s", "ramp": "1s", "routes": {"api": {"delay": "300ms"}}},
  {"name": "burst", "duration": "2s", "routes": {"api": {"error_rate": 0.5}}}]}}`

// sample is one client request: when it was sent, from the scenario's start, how long it took and
// what it got.
type sample struct {
	at, took time.Duration
	status   int
}

// TestScenarioDrill plays the drill against the real binary while clients send requests: in the
// middle of each phase the latency and the error share the clients measure are the phase's, and
// halfway up the ramp the latency is between the baseline's and the regression's; the phase gauge
// shows the active phase in each, the transitions count every change, and the base runs again at
// the end.
func TestScenarioDrill(t *testing.T) {
	p := start(t, drillConfig)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		mu      sync.Mutex
		samples []sample
		clients sync.WaitGroup
	)
	status := func() map[string]any {
		var st map[string]any
		if err := kit.GetJSON(context.Background(), p.admin+"/-/scenario", &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st["running"] != false {
		t.Fatalf("an on_demand scenario runs before its start: %v", st)
	}
	if code, body := kit.Do(ctx, "POST", p.admin+"/-/scenario/start", nil, nil); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	t0 := time.Now()
	for range 6 {
		clients.Go(func() {
			for ctx.Err() == nil {
				at := time.Since(t0)
				code, _ := kit.Get(p.api + "/api")
				took := time.Since(t0) - at
				mu.Lock()
				samples = append(samples, sample{at, took, code})
				mu.Unlock()
			}
		})
	}

	// The gauge in the middle of each phase, and the state the admin call reads.
	for _, w := range []struct {
		at    float64
		phase string
	}{{1, "baseline"}, {3.75, "regression"}, {6, "burst"}} {
		time.Sleep(time.Until(t0.Add(time.Duration(w.at * float64(time.Second)))))
		m := p.metrics(t)
		for _, phase := range []string{"baseline", "regression", "burst"} {
			want := 0.0
			if phase == w.phase {
				want = 1
			}
			if got := m.Sum("app_scenario_phase", "scenario", "drill", "phase", phase); got != want {
				t.Errorf("at %gs: app_scenario_phase{phase=%q} = %g, want %g", w.at, phase, got, want)
			}
		}
		if st := status(); st["phase"] != w.phase {
			t.Errorf("at %gs: GET /-/scenario says %v, want phase %s", w.at, st, w.phase)
		}
	}
	time.Sleep(time.Until(t0.Add(8 * time.Second)))
	stop()
	clients.Wait()

	if st := status(); st["running"] != false || st["runs_done"] != 1.0 {
		t.Errorf("after the last phase: %v, want the course ended after one run", st)
	}
	m := p.metrics(t)
	if got := m.Sum("app_scenario_transitions_total", "scenario", "drill"); got != 4 {
		t.Errorf("app_scenario_transitions_total = %g, want 4 (three phases entered, the end)", got)
	}
	if got := m.Sum("app_scenario_phase", "scenario", "drill"); got != 0 {
		t.Errorf("after the end, the phase gauges sum to %g, want 0", got)
	}

	// The middle of each phase, and of the ramp, a quarter second of margin for a loaded machine.
	window := func(from, to float64) (took []time.Duration, errors, n int) {
		for _, s := range samples {
			if s.at >= time.Duration(from*float64(time.Second)) && s.at+s.took <= time.Duration(to*float64(time.Second)) {
				took = append(took, s.took)
				n++
				if s.status >= 500 {
					errors++
				}
			}
		}
		slices.Sort(took)
		return took, errors, n
	}
	median := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	for _, w := range []struct {
		name                 string
		from, to             float64
		minMedian, maxMedian time.Duration
		minShare, maxShare   float64
	}{
		{"baseline", 0.4, 1.6, 20 * time.Millisecond, 120 * time.Millisecond, 0, 0},
		{"ramp", 2.2, 2.85, 50 * time.Millisecond, 290 * time.Millisecond, 0, 0},
		{"regression", 3.25, 4.75, 300 * time.Millisecond, 600 * time.Millisecond, 0, 0},
		{"burst", 5.4, 6.6, 20 * time.Millisecond, 120 * time.Millisecond, 0.35, 0.65},
		{"after", 7.4, 8, 20 * time.Millisecond, 120 * time.Millisecond, 0, 0},
	} {
		took, errs, n := window(w.from, w.to)
		if n < 5 {
			t.Errorf("%s: only %d requests answered within [%gs, %gs]", w.name, n, w.from, w.to)
			continue
		}
		share := float64(errs) / float64(n)
		t.Logf("%s: %d requests, median %s, error share %.3f", w.name, n, median(took), share)
		if med := median(took); med < w.minMedian || med > w.maxMedian {
			t.Errorf("%s: median latency %s, want within [%s, %s]", w.name, med, w.minMedian, w.maxMedian)
		}
		if share < w.minShare || share > w.maxShare {
			t.Errorf("%s: error share %.3f (%d of %d), want within [%g, %g]", w.name, share, errs, n, w.minShare, w.maxShare)
		}
	}
}

// TestScenarioReload: a reload mid-scenario that leaves the scenario as written keeps its clock
// (the phase goes on, its time left keeps falling) and lays the phase over the new base; one that
// changes the scenario restarts it from its first phase, and the log says so.
func TestScenarioReload(t *testing.T) {
	doc := func(baseDelay, phaseDuration string) string {
		return fmt.Sprintf(`{"admin": {"lifecycle": true}, "routes": [{"name": "api", "match": "/api", "delay": %q}],
 "scenario": {"name": "drill", "phases": [
  {"name": "first", "duration": %q, "routes": {"api": {"error_rate": 1, "error_status": 503}}},
  {"name": "second", "duration": "30s"}]}}`, baseDelay, phaseDuration)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(doc("1ms", "20s"))
	p := startFile(t, file, "-config.watch=false")
	ctx := context.Background()
	status := func() (phase string, left time.Duration) {
		t.Helper()
		var st struct {
			Phase    string `json:"phase"`
			TimeLeft string `json:"time_left"`
		}
		if err := kit.GetJSON(ctx, p.admin+"/-/scenario", &st); err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(st.TimeLeft)
		if err != nil {
			t.Fatalf("time_left %q: %v", st.TimeLeft, err)
		}
		return st.Phase, d
	}
	reload := func() {
		t.Helper()
		if code, body := kit.Do(ctx, "POST", p.admin+"/-/reload", nil, nil); code != 200 {
			t.Fatalf("reload: %d %s", code, body)
		}
	}

	time.Sleep(1500 * time.Millisecond)
	phase, before := status()
	if phase != "first" || before > 19*time.Second {
		t.Fatalf("1.5s in: phase %q with %s left, want first with at most 19s", phase, before)
	}
	write(doc("50ms", "20s")) // the base changes, the scenario does not
	reload()
	phase, after := status()
	if phase != "first" || after > before {
		t.Errorf("after a reload keeping the scenario: phase %q with %s left (had %s), want first, its clock kept", phase, after, before)
	}
	start := time.Now()
	code, _ := kit.Get(p.api + "/api")
	if took := time.Since(start); code != 503 || took < 50*time.Millisecond {
		t.Errorf("after a reload keeping the scenario: %d in %s, want the phase's 503 over the new base's 50ms", code, took)
	}

	write(doc("50ms", "25s")) // the scenario changes
	reload()
	if phase, left := status(); phase != "first" || left <= after+time.Second {
		t.Errorf("after a reload changing the scenario: phase %q with %s left, want first restarted with about 25s", phase, left)
	}
	kit.WaitUntil(t, 5*time.Second, "the log says the scenario restarted", func() (bool, string, error) {
		return strings.Contains(p.Logs(), "scenario changed: restarted from its first phase"), p.Tail(5), nil
	})
	if got := p.metrics(t).Sum("app_scenario_transitions_total", "scenario", "drill"); got != 3 {
		t.Errorf("app_scenario_transitions_total = %g, want 3 (first entered, the end of that course, first entered again)", got)
	}
	var cfg struct {
		Routes []struct {
			ErrorRate float64 `json:"error_rate"`
		} `json:"routes"`
	}
	if err := kit.GetJSON(ctx, p.admin+"/-/config", &cfg); err != nil || len(cfg.Routes) != 1 || cfg.Routes[0].ErrorRate != 1 {
		t.Errorf("GET /-/config: %+v (%v), want the route as the phase patches it", cfg, err)
	}
}
