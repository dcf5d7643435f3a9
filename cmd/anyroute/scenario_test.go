package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport"
)

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// TestPhaseClock: the clock moves through the phases at their durations, however late it is
// asked: each phase begins where the one before it ended; it counts a change for each phase
// entered and for the course's end, repeats as asked, and reports the ramp's progress, the time
// left and when to wake next.
func TestPhaseClock(t *testing.T) {
	phases := []config.Phase{
		{Name: "base", Duration: config.Duration(sec(1))},
		{Name: "slow", Duration: config.Duration(sec(2)), Ramp: config.Duration(sec(1))},
		{Name: "errors", Duration: config.Duration(sec(1))},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(sec(s)) }

	c := newPhaseClock(config.Scenario{Phases: phases, Repeat: 2})
	if _, ok := c.wake(t0); ok {
		t.Fatal("a clock not started asks to wake")
	}
	c.start(t0, 0)
	for _, step := range []struct {
		now     float64
		changes int
		running bool
		phase   int
		ramp    float64
		left    time.Duration
		wake    float64
	}{
		{0.5, 0, true, 0, 1, sec(0.5), 1},
		{1.25, 1, true, 1, 0.25, sec(1.75), 1.35}, // ramping: a step every rampStep
		{1.95, 0, true, 1, 0.95, sec(1.05), 2},    // the ramp's end comes before the next step
		{2.5, 0, true, 1, 1, sec(0.5), 3},
		{5.5, 3, true, 1, 0.5, sec(1.5), 5.6}, // late: errors, the first run's end, base; the second run's slow began at 5
		{9, 2, false, 0, 0, 0, 0},             // the second run's errors, then the end
	} {
		now := at(step.now)
		if got := c.advance(now); got != step.changes {
			t.Errorf("at %gs: %d changes, want %d", step.now, got, step.changes)
		}
		if c.running != step.running {
			t.Fatalf("at %gs: running %v, want %v", step.now, c.running, step.running)
		}
		if !c.running {
			if _, ok := c.wake(now); ok {
				t.Errorf("at %gs: an ended clock asks to wake", step.now)
			}
			continue
		}
		if c.phase != step.phase {
			t.Errorf("at %gs: phase %d, want %d", step.now, c.phase, step.phase)
		}
		if got := c.ramp(now); got < step.ramp-1e-9 || got > step.ramp+1e-9 {
			t.Errorf("at %gs: ramp %g, want %g", step.now, got, step.ramp)
		}
		if got := c.left(now); got != step.left {
			t.Errorf("at %gs: %s left, want %s", step.now, got, step.left)
		}
		if got, _ := c.wake(now); !got.Equal(at(step.wake)) {
			t.Errorf("at %gs: wakes at %s, want %gs", step.now, got.Sub(t0), step.wake)
		}
	}
	if c.run != 2 {
		t.Errorf("%d runs done, want 2", c.run)
	}

	forever := newPhaseClock(config.Scenario{Phases: phases, Repeat: config.RepeatForever})
	forever.start(t0, 0)
	if forever.advance(at(4*100+0.5)) != 300 || !forever.running || forever.phase != 0 {
		t.Errorf("repeat true: after 100 runs, running %v in phase %d", forever.running, forever.phase)
	}

	skipped := newPhaseClock(config.Scenario{Phases: phases})
	skipped.start(t0, 0)
	if n := skipped.skip(at(0.2)); n != 1 || skipped.phase != 1 || !skipped.began.Equal(at(0.2)) {
		t.Errorf("skip: %d changes, phase %d began at %s; want 1, 1, 0.2s", n, skipped.phase, skipped.began.Sub(t0))
	}
	skipped.skip(at(0.3))
	if n := skipped.skip(at(0.4)); n != 1 || skipped.running {
		t.Errorf("skip past the last phase of a course played once: %d changes, running %v", n, skipped.running)
	}
}

// scenarioDoc is a three-phase scenario over one route: a baseline, a latency regression ramping
// in over its first second, an error burst.
const scenarioDoc = `{"seed": 1, "routes": [{"name": "a", "match": "/a", "delay": "10ms"}],
 "scenario": {"name": "drill", "phases": [
  {"name": "base", "duration": "1s"},
  {"name": "slow", "duration": "2s", "ramp": "1s", "routes": {"a": {"delay": "210ms"}}},
  {"name": "burst", "duration": "1s", "routes": {"a": {"error_rate": 0.5}}}]}}`

// applied is one call of the owner's replace.
type applied struct {
	delay     time.Duration
	errorRate float64
	phase     string
	keepDraws bool
}

// clockedOwner is the owner of doc on a clock the test sets, driven on the test's goroutine
// (Run is not running): what each apply made run is recorded.
func clockedOwner(t *testing.T, doc string) (*configOwner, *time.Time, *[]applied, *prometheus.Registry) {
	t.Helper()
	cfg, err := config.Parse("test", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var applies []applied
	reg := prometheus.NewRegistry()
	o := newConfigOwner(cfg, func(c config.Config, phase string, keep bool) error {
		applies = append(applies, applied{c.Routes[0].Delay.D(), c.Routes[0].ErrorRate, phase, keep})
		return nil
	}, reg, log.NewNopLogger())
	o.setSource(configSource{name: "test", doc: []byte(doc), parse: config.Parse}, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o.now = func() time.Time { return now }
	t.Cleanup(func() { o.timer.Stop() })
	return o, &now, &applies, reg
}

func running(o *configOwner) config.Route { return o.Config().(config.Config).Routes[0] }

// TestOwnerPlaysTheScenario: the owner applies each phase over the base as its clock moves,
// ramps the regression in from the baseline, keeps the seeded draws going through its steps,
// shows the active phase on the gauge and counts the changes; at the end the base runs again.
func TestOwnerPlaysTheScenario(t *testing.T) {
	o, now, applies, reg := clockedOwner(t, scenarioDoc)
	t0 := *now
	gauge := func(phase string) float64 {
		return testutil.ToFloat64(o.scenarioMetrics.phase.WithLabelValues("drill", phase))
	}
	transitions := func() float64 { return testutil.ToFloat64(o.scenarioMetrics.transitions.WithLabelValues("drill")) }
	if gauge("base") != 0 || gauge("slow") != 0 || gauge("burst") != 0 {
		t.Fatal("a scenario not started shows a phase")
	}
	o.startScenario(t0, "start")
	for _, step := range []struct {
		at        float64
		delay     time.Duration
		errorRate float64
		phase     string
		changes   float64
	}{
		{0, 10 * time.Millisecond, 0, "base", 1},
		{0.9, 10 * time.Millisecond, 0, "base", 1},
		{1.5, 110 * time.Millisecond, 0, "slow", 2}, // halfway up its ramp
		{2.5, 210 * time.Millisecond, 0, "slow", 2},
		{3.5, 10 * time.Millisecond, 0.5, "burst", 3}, // the burst's patch is over the base, not over slow
		{4.5, 10 * time.Millisecond, 0, "", 4},
	} {
		*now = t0.Add(sec(step.at))
		o.tick(*now)
		if r := running(o); r.Delay.D() != step.delay || r.ErrorRate != step.errorRate {
			t.Errorf("at %gs: runs delay %s error_rate %g, want %s %g", step.at, r.Delay.D(), r.ErrorRate, step.delay, step.errorRate)
		}
		last := (*applies)[len(*applies)-1]
		if last.phase != step.phase || last.delay != step.delay || !last.keepDraws {
			t.Errorf("at %gs: the last apply was %+v, want phase %q, delay %s, the draws kept", step.at, last, step.phase, step.delay)
		}
		for _, p := range []string{"base", "slow", "burst"} {
			want := 0.0
			if p == step.phase {
				want = 1
			}
			if gauge(p) != want {
				t.Errorf("at %gs: app_scenario_phase{phase=%q} = %g, want %g", step.at, p, gauge(p), want)
			}
		}
		if transitions() != step.changes {
			t.Errorf("at %gs: %g transitions, want %g", step.at, transitions(), step.changes)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "app_scenario_phase"); err != nil || n != 3 {
		t.Errorf("%d phase series (%v), want 3: one per phase", n, err)
	}
}

// TestOwnerReloadDuringScenario: a reload that leaves the scenario as it was keeps its clock, the
// phase now laid over the new base; a PATCH is a change of the base too; a reload that changes
// the scenario restarts it, and one that removes it leaves the base running.
func TestOwnerReloadDuringScenario(t *testing.T) {
	o, now, _, _ := clockedOwner(t, scenarioDoc)
	t0 := *now
	o.startScenario(t0, "start")
	*now = t0.Add(sec(2.5))
	o.tick(*now)
	reload := func(doc string) {
		t.Helper()
		next, err := config.Parse("test", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := o.apply(next, []byte(doc), "test reload"); err != nil {
			t.Fatal(err)
		}
	}

	// The base's route gains an error rate; the scenario is the same: still slow, its clock kept.
	reload(strings.Replace(scenarioDoc, `"delay": "10ms"`, `"delay": "10ms", "error_rate": 0.1`, 1))
	if r := running(o); r.Delay.D() != 210*time.Millisecond || r.ErrorRate != 0.1 {
		t.Errorf("after a reload keeping the scenario: delay %s error_rate %g, want slow's 210ms over the new base's 0.1", r.Delay.D(), r.ErrorRate)
	}
	if st := o.scen.status(*now); st.Phase != "slow" || st.TimeLeft != "500ms" {
		t.Errorf("after a reload keeping the scenario: %+v, want slow with 500ms left", st)
	}

	// A PATCH changes the base the same way.
	if _, err := o.patchRoute("a", []byte(`{"error_rate": 0.2}`)); err != nil {
		t.Fatal(err)
	}
	if r := running(o); r.Delay.D() != 210*time.Millisecond || r.ErrorRate != 0.2 {
		t.Errorf("after a PATCH: delay %s error_rate %g, want slow's 210ms over the patched 0.2", r.Delay.D(), r.ErrorRate)
	}
	if base := o.running.Routes[0]; base.Delay.D() != 10*time.Millisecond {
		t.Errorf("the base took the phase's patch: %+v", base)
	}
	// A PATCH after which a phase's routes would not check is refused: slow's delay beside a
	// latency is both forms at once.
	if _, err := o.patchRoute("a", []byte(`{"delay": null, "latency": {"distribution": "fixed", "delay": "5ms"}}`)); !errors.Is(err, transport.ErrInvalidPatch) ||
		!strings.Contains(err.Error(), "/scenario/phases/1/routes") {
		t.Errorf("a PATCH that breaks a phase: %v, want it refused naming the phase", err)
	}
	if r := running(o); r.Delay.D() != 210*time.Millisecond || r.Latency != nil {
		t.Errorf("after a refused PATCH: %+v, want slow as it ran", r)
	}

	// A changed scenario starts again from its first phase.
	before := testutil.ToFloat64(o.scenarioMetrics.transitions.WithLabelValues("drill"))
	reload(strings.Replace(scenarioDoc, `"duration": "1s"`, `"duration": "3s"`, 1))
	if st := o.scen.status(*now); st.Phase != "base" || st.TimeLeft != "3s" {
		t.Errorf("after a reload changing the scenario: %+v, want it restarted in base with 3s left", st)
	}
	if got := testutil.ToFloat64(o.scenarioMetrics.transitions.WithLabelValues("drill")) - before; got != 2 {
		t.Errorf("a restart counted %g transitions, want 2 (the old course's end, base entered)", got)
	}

	// A scenario removed: the base runs, no phase series stay.
	reload(`{"seed": 1, "routes": [{"name": "a", "match": "/a", "delay": "30ms"}]}`)
	if r := running(o); r.Delay.D() != 30*time.Millisecond || o.scen != nil {
		t.Errorf("after the scenario's removal: delay %s, scenario %v", r.Delay.D(), o.scen)
	}
	if n := testutil.CollectAndCount(o.scenarioMetrics.phase); n != 0 {
		t.Errorf("%d phase series stay after the scenario's removal", n)
	}
}

// TestScenarioCalls: the admin calls through a running owner: an on_demand scenario waits for its
// start; skip moves to a named phase or the next; stop brings the base back; the errors name what
// is wrong, and an owner without a scenario answers ErrNoScenario.
func TestScenarioCalls(t *testing.T) {
	ctx := context.Background()
	o, _ := runOwner(t, strings.Replace(scenarioDoc, `"name": "drill"`, `"name": "drill", "start": "on_demand"`, 1), "", nil)
	state := func(v any, err error) scenarioStatus {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v.(scenarioStatus)
	}
	if st := state(o.ScenarioStatus(ctx)); st.Running || st.Phase != "" {
		t.Errorf("an on_demand scenario runs before its start: %+v", st)
	}
	if st := state(o.StartScenario(ctx)); !st.Running || st.Phase != "base" {
		t.Errorf("after start: %+v", st)
	}
	if st := state(o.SkipScenario(ctx, "burst")); st.Phase != "burst" || running(o).ErrorRate != 0.5 {
		t.Errorf("after skip to burst: %+v, error_rate %g", st, running(o).ErrorRate)
	}
	if st := state(o.SkipScenario(ctx, "")); st.Running {
		t.Errorf("skip past the last phase: %+v, want the course ended", st)
	}
	state(o.SkipScenario(ctx, "slow"))
	if st := state(o.StopScenario(ctx)); st.Running || running(o).Delay.D() != 10*time.Millisecond {
		t.Errorf("after stop: %+v, delay %s", st, running(o).Delay.D())
	}
	if _, err := o.SkipScenario(ctx, "nope"); !errors.Is(err, transport.ErrNoSuchPhase) {
		t.Errorf("skip to an unknown phase: %v", err)
	}
	plain, _ := runOwner(t, `{"routes": [{"name": "a", "match": "/a"}]}`, "", nil)
	if _, err := plain.StartScenario(ctx); !errors.Is(err, transport.ErrNoScenario) {
		t.Errorf("start without a scenario: %v", err)
	}
}
