package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestScenarioChecks: a scenario is checked beyond the schema, each problem at its pointer; the
// routes as each phase patches them are checked as a file's are.
func TestScenarioChecks(t *testing.T) {
	doc := func(phases string) string {
		return `{"routes": [{"name": "a", "match": "/a", "delay": "10ms"}, {"name": "b", "match": "/b"}],
 "scenario": {"name": "drill", "phases": [` + phases + `]}}`
	}
	many := make([]string, MaxPhases+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"name": "p%d", "duration": "1s"}`, i)
	}
	for _, tt := range []struct {
		name, doc string
		pointers  []string // nil: valid
	}{
		{"phases", doc(`{"name": "base", "duration": "1s"}, {"name": "slow", "duration": "2s", "ramp": "1s", "routes": {"a": {"delay": "200ms"}}}`), nil},
		{"repeat true", strings.Replace(doc(`{"name": "p", "duration": "1s"}`), `"name": "drill"`, `"name": "drill", "repeat": true, "start": "on_demand"`, 1), nil},
		{"repeat count", strings.Replace(doc(`{"name": "p", "duration": "1s"}`), `"name": "drill"`, `"name": "drill", "repeat": 3`, 1), nil},
		{"repeat zero", strings.Replace(doc(`{"name": "p", "duration": "1s"}`), `"name": "drill"`, `"name": "drill", "repeat": 0`, 1), []string{"/scenario/repeat"}},
		{"unknown start", strings.Replace(doc(`{"name": "p", "duration": "1s"}`), `"name": "drill"`, `"name": "drill", "start": "later"`, 1), []string{"/scenario/start"}},
		{"no phases", doc(``), []string{"/scenario/phases"}},
		{"too many phases", doc(strings.Join(many, ",")), []string{"/scenario/phases"}},
		{"duplicate phase", doc(`{"name": "p", "duration": "1s"}, {"name": "p", "duration": "1s"}`), []string{"/scenario/phases/1/name"}},
		{"zero duration", doc(`{"name": "p", "duration": "0s"}`), []string{"/scenario/phases/0/duration"}},
		{"ramp past the phase", doc(`{"name": "p", "duration": "1s", "ramp": "2s"}`), []string{"/scenario/phases/0/ramp"}},
		{"unknown route", doc(`{"name": "p", "duration": "1s", "routes": {"c": {"delay": "1s"}}}`), []string{"/scenario/phases/0/routes/c"}},
		{"patch the schema refuses", doc(`{"name": "p", "duration": "1s", "routes": {"a": {"error_rate": 2}}}`), []string{"/scenario/phases/0/routes"}},
		{"patch the checks refuse", doc(`{"name": "p", "duration": "1s"}, {"name": "q", "duration": "1s", "routes": {"b": {"latency": {"distribution": "fixed", "delay": "1s"}, "delay": "1s"}}}`), []string{"/scenario/phases/1/routes"}},
	} {
		t.Run(tt.name, func(t *testing.T) { assertRefusedAt(t, tt.doc, tt.pointers) })
	}
}

// TestPhaseConfigs: each phase runs the base's routes with its patches merged in, as a PATCH
// would merge them; the routes it does not name, and the rest of the config, as in the base.
func TestPhaseConfigs(t *testing.T) {
	doc := []byte(`{"seed": 7, "routes": [{"name": "a", "match": "/a", "delay": "10ms", "status": 201}, {"name": "b", "match": "/b", "error_rate": 0.1}],
 "scenario": {"name": "drill", "phases": [{"name": "base", "duration": "1s"},
  {"name": "bad", "duration": "1s", "routes": {"a": {"delay": "300ms", "status": null}, "b": {"error_rate": 0.5, "error_status": 503}}}]}}`)
	cfg, err := Parse("doc", doc)
	if err != nil {
		t.Fatal(err)
	}
	phases, err := PhaseConfigs(doc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(phases) != 2 {
		t.Fatalf("%d phase configs, want 2", len(phases))
	}
	if a := phases[0].Routes[0]; a.Delay.D() != 10*time.Millisecond || a.Status != 201 {
		t.Errorf("the first phase patches nothing, yet route a is %+v", a)
	}
	a, b := phases[1].Routes[0], phases[1].Routes[1]
	if a.Delay.D() != 300*time.Millisecond || a.Status != 0 || a.Match != "/a" {
		t.Errorf("route a in the second phase: %+v, want delay 300ms, status removed, match kept", a)
	}
	if b.ErrorRate != 0.5 || b.ErrorStatus != 503 {
		t.Errorf("route b in the second phase: %+v", b)
	}
	if phases[1].Scenario != nil || phases[1].Seed == nil || *phases[1].Seed != 7 {
		t.Errorf("a phase's config keeps the base's keys and leaves the scenario out: seed %v, scenario %v", phases[1].Seed, phases[1].Scenario)
	}
}

// TestBetween: a ramp moves every number of a route linearly, and nothing else: statuses, kinds
// and distributions take the target's value at once, and so does an object that changes kind.
func TestBetween(t *testing.T) {
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	from := Config{Routes: []Route{
		{Name: "a", Match: "/a", Delay: ms(10), ErrorRate: 0, ErrorStatus: 500,
			Faults: []Fault{{Kind: "reset", Rate: 0.1}}, Errors: nil, Memory: 1000},
		{Name: "b", Match: "/b", Latency: &Latency{Distribution: "lognormal", Median: ms(20), P99: ms(100)}},
		{Name: "c", Match: "/c", Status: 200, Delay: ms(10)},
		{Name: "d", Match: "/d", Latency: &Latency{Distribution: "fixed", Delay: ms(10)}},
		{Name: "e", Match: "/e", Errors: []ErrorShare{{Status: 500, Rate: 0.1}}},
		{Name: "f", Match: "/f", Delay: ms(10)},
	}}
	to := Config{Routes: []Route{
		{Name: "a", Match: "/a", Delay: ms(210), ErrorRate: 0.4, ErrorStatus: 503,
			Faults: []Fault{{Kind: "reset", Rate: 0.3}}, Memory: 3000, CPU: &CPU{Latency{Distribution: "fixed", Delay: ms(8)}}},
		{Name: "b", Match: "/b", Latency: &Latency{Distribution: "lognormal", Median: ms(220), P99: ms(2100)}},
		{Name: "c", Match: "/c", Status: 503, Delay: ms(110)},
		{Name: "f", Match: "/f2", Delay: ms(110)},
		{Name: "d", Match: "/d", Latency: &Latency{Distribution: "uniform", Delay: ms(110), Jitter: ms(10)}},
		{Name: "e", Match: "/e", Errors: []ErrorShare{{Status: 503, Rate: 0.5}}},
		{Name: "new", Match: "/new", Delay: ms(50)},
	}}
	mid := Between(from, to, 0.5)
	a := mid.Routes[0]
	if a.Delay != ms(110) || a.ErrorRate != 0.2 || a.Memory != 2000 || a.Faults[0].Rate != 0.2 {
		t.Errorf("route a halfway: delay %s, error_rate %g, memory %d, reset rate %g; want 110ms, 0.2, 2000, 0.2",
			a.Delay.D(), a.ErrorRate, a.Memory, a.Faults[0].Rate)
	}
	if a.ErrorStatus != 503 {
		t.Errorf("error_status averaged to %d: a status is never a middle value", a.ErrorStatus)
	}
	if a.CPU == nil || a.CPU.Delay != ms(4) || a.CPU.Distribution != "fixed" {
		t.Errorf("cpu from none to 8ms halfway: %+v, want fixed 4ms", a.CPU)
	}
	if b := mid.Routes[1].Latency; b.Median != ms(120) || b.P99 != ms(1100) {
		t.Errorf("lognormal halfway: median %s p99 %s, want 120ms and 1.1s", b.Median.D(), b.P99.D())
	}
	if c := mid.Routes[2]; c.Status != 503 || c.Delay != ms(60) {
		t.Errorf("a route whose status changes: %+v, want the new status at once and its delay halfway (60ms)", c)
	}
	if f := mid.Routes[3]; f.Match != "/f2" || f.Delay != ms(110) {
		t.Errorf("a route whose match changes takes the target at once: %+v", f)
	}
	if d := mid.Routes[4].Latency; d.Distribution != "uniform" || d.Delay != ms(110) {
		t.Errorf("a latency whose distribution changes takes the target at once: %+v", d)
	}
	if e := mid.Routes[5].Errors[0]; e.Status != 503 || e.Rate != 0.5 {
		t.Errorf("an error share of another status takes the target at once: %+v", e)
	}
	if n := mid.Routes[6]; n.Delay != ms(50) {
		t.Errorf("a route the start has not runs as the target: %+v", n)
	}
	if to.Routes[0].Faults[0].Rate != 0.3 || to.Routes[1].Latency.Median != ms(220) || to.Routes[0].CPU.Delay != ms(8) {
		t.Error("Between changed the target it was given")
	}
	for _, f := range []float64{0, 0.25, 0.75} {
		got := Between(from, to, f).Routes[0].Delay.D()
		want := time.Duration(10+200*f) * time.Millisecond
		if got != want {
			t.Errorf("delay at %g: %s, want %s", f, got, want)
		}
	}
	end, _ := json.Marshal(Between(from, to, 1))
	target, _ := json.Marshal(to)
	if string(end) != string(target) {
		t.Errorf("the ramp's end is not the target:\n%s\n%s", end, target)
	}
}

// TestRepeatJSON: repeat reads and writes back as written.
func TestRepeatJSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		runs int
	}{{"false", 1}, {"true", 0}, {"1", 1}, {"3", 3}} {
		var r Repeat
		if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
			t.Fatal(err)
		}
		if r.Runs() != tt.runs {
			t.Errorf("repeat %s: %d runs, want %d", tt.in, r.Runs(), tt.runs)
		}
		if out, _ := json.Marshal(r); string(out) != tt.in {
			t.Errorf("repeat %s marshals as %s", tt.in, out)
		}
	}
}

// TestSameScenario: a reload that keeps the scenario as written keeps its clock; any change of it
// (a phase's duration, a patch) is a new scenario.
func TestSameScenario(t *testing.T) {
	parse := func(doc string) Config {
		t.Helper()
		c, err := Parse("doc", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const base = `{"routes": [{"name": "a", "match": "/a"}], "scenario": {"name": "s", "phases": [{"name": "p", "duration": "1s", "routes": {"a": {"delay": "1ms"}}}]}}`
	if !SameScenario(parse(base), parse(strings.Replace(base, `"match": "/a"`, `"match": "/a", "delay": "5ms"`, 1))) {
		t.Error("a change of the routes alone changed the scenario")
	}
	if SameScenario(parse(base), parse(strings.Replace(base, `"1s"`, `"2s"`, 1))) {
		t.Error("a phase's new duration left the scenario the same")
	}
	if SameScenario(parse(base), parse(strings.Replace(base, `"1ms"`, `"2ms"`, 1))) {
		t.Error("a phase's new patch left the scenario the same")
	}
}
