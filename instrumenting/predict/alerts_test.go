package predict

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/config"
)

// drill is a config whose route api answers well for 10 minutes, then as patch says for 10, then
// well again.
func drill(t *testing.T, patch string) Course {
	t.Helper()
	doc := []byte(`{"routes": [{"name": "api", "match": "/api/*", "delay": "10ms"}],
	  "scenario": {"name": "d", "phases": [
	    {"name": "ok", "duration": "10m"},
	    {"name": "bad", "duration": "10m", "routes": {"api": ` + patch + `}},
	    {"name": "after", "duration": "40m"}]}}`)
	cfg, err := config.Parse("drill", doc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCourse(doc, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var chartObjectives = Objectives{Availability: 0.999, Bound: 500 * time.Millisecond, Latency: 0.99}

func predictDrill(t *testing.T, patch string) map[string]AlertPrediction {
	t.Helper()
	tr := &Traffic{Load: loadOf(st{0, 100}, st{time.Hour, 100}), Course: drill(t, patch), Bound: chartObjectives.Bound}
	series, err := Synthesize(tr, 55*time.Minute, 15*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]AlertPrediction{}
	for _, a := range PredictAlerts(series, 15*time.Second, time.Minute, 55*time.Minute, chartObjectives) {
		out[a.Rule.Name] = a
	}
	return out
}

// between fails unless d lies within [lo, hi].
func between(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s at %s, want within %s to %s", what, d, lo, hi)
	}
}

// 10 % of 503s from 10 to 20 minutes, worked by hand. The fast alert (threshold 1.44 %) needs its
// 1h window too, which holds the series' whole life: 10 % over (t - 10m) of t is above 1.44 % from
// 11m41s, so it is pending at the 12m evaluation and fires 2 minutes later; it resolves once its
// 5m window holds less than 43 s of the burst (24m17s), at the next evaluation. The slow one
// (0.6 %) has both windows longer than the series' life at first, so 10 % over (t - 10m) of t is
// above 0.6 % from 10m38s: pending at 11m (the 503 series has its two samples by then), firing
// 15 minutes later, and resolves once the 30m window holds less than
// 1.8 minutes of it (48m12s). Nothing is slow: no latency alert.
func TestAlertsOfAnErrorBurst(t *testing.T) {
	got := predictDrill(t, `{"errors": [{"status": 503, "rate": 0.1}]}`)
	fast := got["AnyrouteErrorBudgetBurnFast"].Episodes
	if len(fast) != 1 {
		t.Fatalf("fast error burn: %d episodes, want 1: %+v", len(fast), fast)
	}
	between(t, "fast burn pending", fast[0].Pending, 11*time.Minute+41*time.Second, 12*time.Minute)
	if fast[0].Firing != fast[0].Pending+2*time.Minute {
		t.Errorf("fast burn firing at %s, want pending (%s) plus its 2m", fast[0].Firing, fast[0].Pending)
	}
	between(t, "fast burn resolved", fast[0].Resolved, 24*time.Minute, 25*time.Minute)
	slow := got["AnyrouteErrorBudgetBurnSlow"].Episodes
	if len(slow) != 1 {
		t.Fatalf("slow error burn: %d episodes, want 1: %+v", len(slow), slow)
	}
	between(t, "slow burn pending", slow[0].Pending, 10*time.Minute+38*time.Second, 11*time.Minute)
	if slow[0].Firing != slow[0].Pending+15*time.Minute {
		t.Errorf("slow burn firing at %s, want pending (%s) plus its 15m", slow[0].Firing, slow[0].Pending)
	}
	between(t, "slow burn resolved", slow[0].Resolved, 48*time.Minute, 49*time.Minute)
	for _, name := range []string{"AnyrouteLatencyBudgetBurnFast", "AnyrouteLatencyBudgetBurnSlow"} {
		if e := got[name].Episodes; len(e) != 0 {
			t.Errorf("%s: %+v, want never pending (no answer is slow)", name, e)
		}
	}
}

// A fault its client saw fail is an error as a 503 is (instrumenting.ErrorCodes): a burst of any
// such kind sets off the error alerts exactly when the same burst of 503s does. slow_body, the
// answer whole but late, sets off nothing (the service's time up to the fault is fast); answers
// slower than the bound set off the latency alerts and no error alert.
func TestEachKindOfBadAnswerSetsOffItsOwnAlerts(t *testing.T) {
	want := predictDrill(t, `{"errors": [{"status": 503, "rate": 0.1}]}`)
	for _, kind := range []string{"reset", "close", "hang", "truncate", "malformed"} {
		got := predictDrill(t, `{"faults": [{"kind": "`+kind+`", "rate": 0.1}]}`)
		for name, w := range want {
			if !reflect.DeepEqual(got[name].Episodes, w.Episodes) {
				t.Errorf("%s: %s %+v, want as for 503s: %+v", kind, name, got[name].Episodes, w.Episodes)
			}
		}
	}
	got := predictDrill(t, `{"faults": [{"kind": "slow_body", "rate": 0.1, "bytes_per_second": 512}]}`)
	for name, a := range got {
		if len(a.Episodes) != 0 {
			t.Errorf("slow_body: %s %+v, want nothing", name, a.Episodes)
		}
	}
	got = predictDrill(t, `{"delay": "600ms"}`)
	for name, a := range got {
		latency := strings.Contains(name, "Latency")
		if fired := len(a.Episodes) > 0 && a.Episodes[0].Firing >= 0; fired != latency {
			t.Errorf("answers of 600 ms: %s fired %v, want %v", name, fired, latency)
		}
	}
}

// A ramp moves the route's numbers in 100 ms steps from what ran before; the course returns to
// the base after its last phase, or repeats.
func TestCourseRampsAndRepeats(t *testing.T) {
	doc := []byte(`{"routes": [{"name": "api", "match": "/api/*", "errors": [{"status": 503, "rate": 0}]}],
	  "scenario": {"name": "d", "repeat": 2, "phases": [
	    {"name": "a", "duration": "1m"},
	    {"name": "b", "duration": "1m", "ramp": "10s", "routes": {"api": {"errors": [{"status": 503, "rate": 0.5}]}}}]}}`)
	cfg, err := config.Parse("d", doc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCourse(doc, cfg, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rate := func(at time.Duration) float64 {
		cfg, _ := c.At(at)
		return cfg.Routes[0].Errors[0].Rate
	}
	for _, x := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 0}, {90 * time.Second, 0}, // before the start, and phase a
		{95*time.Second + 50*time.Millisecond, 0.25}, // halfway up the ramp (its 50th step of 100)
		{2 * time.Minute, 0.5},                       // past the ramp
		{3*time.Minute + 5*time.Second, 0},           // the second run's phase a
		{4*time.Minute + 20*time.Second, 0.5},        // its b
		{5 * time.Minute, 0},                         // two runs done: the base
	} {
		if got := rate(x.at); got != x.want {
			t.Errorf("at %s: error rate %v, want %v", x.at, got, x.want)
		}
	}
	spans := c.Spans(10 * time.Minute)
	if len(spans) != 4 || spans[3].Name != "b" || spans[3].Start != 3*time.Minute+30*time.Second {
		t.Errorf("spans %+v, want a, b, a, b from 30 s", spans)
	}
}

// promtool's notation: `_` for missing samples, `a+bxn` for n steps of b after a.
func TestSeriesValues(t *testing.T) {
	nan := nans(1)[0]
	got := seriesValues([]float64{nan, nan, nan, 5, 7, 9, nan, 9, 10, 12, 12, 12})
	if want := "_x3 5+2x2 _ 9 10 12+0x2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
