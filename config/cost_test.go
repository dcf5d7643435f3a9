package config

import (
	"encoding/json"
	"testing"
	"time"
)

// TestCostChecks: cpu, memory, resident and leak are checked beyond the schema, each problem at
// its pointer; cpu counts toward the route's time budget with its latency and calls.
func TestCostChecks(t *testing.T) {
	route := func(extra string) string {
		return `{"http": {"write_timeout": "10s"}, "routes": [{"name": "a", "match": "/a"` + extra + `}]}`
	}
	for _, tt := range []struct {
		name, doc string
		pointers  []string // nil: valid
	}{
		{"fixed cpu", route(`, "cpu": "5ms"`), nil},
		{"cpu distribution with a cap", route(`, "cpu": {"distribution": "lognormal", "median": "2ms", "p99": "20ms", "max": "50ms"}`), nil},
		{"cpu percentiles, bounded by themselves", route(`, "cpu": {"distribution": "percentiles", "p50": "1ms", "p90": "2ms", "p99": "5ms"}`), nil},
		{"cpu without a cap", route(`, "cpu": {"distribution": "normal", "mean": "5ms", "stddev": "1ms"}`), []string{"/routes/0/cpu/max"}},
		{"cpu missing a key", route(`, "cpu": {"distribution": "lognormal", "median": "2ms", "max": "5ms"}`), []string{"/routes/0/cpu/p99"}},
		{"cpu key of another distribution", route(`, "cpu": {"distribution": "fixed", "delay": "2ms", "mean": "1ms"}`), []string{"/routes/0/cpu/mean"}},
		{"cpu p99 below its median", route(`, "cpu": {"distribution": "lognormal", "median": "2ms", "p99": "1ms", "max": "5ms"}`), []string{"/routes/0/cpu"}},
		{"cpu neither duration nor object", route(`, "cpu": 5`), []string{"/routes/0/cpu"}},
		{"cpu not a duration", route(`, "cpu": "soon"`), []string{"/routes/0/cpu"}},
		{"cpu overflowing", route(`, "cpu": "2562048h"`), []string{"/routes/0/cpu"}},
		{"cpu at write_timeout", route(`, "cpu": "10s"`), []string{"/routes/0/cpu"}},
		{"cpu and calls at write_timeout", route(`, "cpu": "5s", "calls": [{"name": "c", "url": "http://c/", "timeout": "5s"}]`), []string{"/routes/0/cpu"}},
		{"cpu and delay past write_timeout", route(`, "cpu": "5s", "delay": "5s"`), []string{"/routes/0/delay"}},
		{"cpu and latency past write_timeout", route(`, "cpu": {"distribution": "uniform", "delay": "3s", "jitter": "1s"}, "latency": {"distribution": "fixed", "delay": "6s"}`), []string{"/routes/0/latency"}},
		{"cpu and latency within it", route(`, "cpu": "4s", "delay": "5s"`), nil},
		{"cpu and max_delay past write_timeout", route(`, "cpu": "5s", "allow_overrides": true, "max_delay": "5s"`), []string{"/routes/0/max_delay"}},
		{"memory", route(`, "memory": 1048576`), nil},
		{"negative memory", route(`, "memory": -1`), []string{"/routes/0/memory"}},
		{"memory past 1 GiB", route(`, "memory": 1073741825`), []string{"/routes/0/memory"}},
		{"resident", `{"resident": 268435456}`, nil},
		{"negative resident", `{"resident": -1}`, []string{"/resident"}},
		{"leak", `{"leak": {"per_request": 65536, "max": 536870912}}`, nil},
		{"leak without a cap", `{"leak": {"per_request": 65536}}`, []string{"/leak/max"}},
		{"leak share past its cap", `{"leak": {"per_request": 65536, "max": 4096}}`, []string{"/leak/per_request"}},
		{"leak unknown key", `{"leak": {"bytes": 1}}`, []string{"/leak/bytes"}},
	} {
		t.Run(tt.name, func(t *testing.T) { assertProblems(t, tt.doc, tt.pointers) })
	}
}

// TestCostRule: the cost keys reach the service's rule; a cpu string is a fixed cost, and the
// implicit cap of an unbounded latency leaves room for the longest cpu.
func TestCostRule(t *testing.T) {
	cfg, err := Parse("doc", []byte(`{"http": {"write_timeout": "10s"}, "resident": 4096, "leak": {"per_request": 10, "max": 100},
 "routes": [
  {"name": "a", "match": "/a", "cpu": "5ms", "memory": 2048},
  {"name": "b", "match": "/b", "cpu": {"distribution": "uniform", "delay": "1s", "jitter": "1s"},
   "latency": {"distribution": "lognormal", "median": "20ms", "p99": "200ms"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Routes[0].Rule(cfg.HTTP), cfg.Routes[1].Rule(cfg.HTTP)
	if a.CPU.Distribution != "fixed" || a.CPU.Delay != 5*time.Millisecond || a.Memory != 2048 {
		t.Errorf("route a: cpu %+v, memory %d", a.CPU, a.Memory)
	}
	if b.CPU.Distribution != "uniform" || b.CPU.Delay != time.Second || b.CPU.Jitter != time.Second {
		t.Errorf("route b: cpu %+v", b.CPU)
	}
	if want := (10*time.Second - 2*time.Second) * 9 / 10; b.Latency.Max != want {
		t.Errorf("implicit latency cap %s, want %s (what 2s of cpu leaves)", b.Latency.Max, want)
	}
	if cfg.Resident != 4096 || cfg.Leak != (Leak{PerRequest: 10, Max: 100}) {
		t.Errorf("resident %d, leak %+v", cfg.Resident, cfg.Leak)
	}
	// Marshalled as written, so GET /-/config and route patches round-trip.
	out, err := json.Marshal(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("again", []byte(`{"http": {"write_timeout": "10s"}, "routes": `+string(out)+`}`))
	if err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got, _ := json.Marshal(back.Routes); string(got) != string(out) {
		t.Errorf("round trip:\n %s\n %s", out, got)
	}
	var routes []map[string]any
	_ = json.Unmarshal(out, &routes)
	if routes[0]["cpu"] != "5ms" {
		t.Errorf("a fixed cpu marshals as %v, want \"5ms\"", routes[0]["cpu"])
	}
}

// TestCostIsReloadable: a reload may change resident and leak without a restart.
func TestCostIsReloadable(t *testing.T) {
	running, next := Default(), Default()
	next.Resident, next.Leak = 1<<20, Leak{PerRequest: 1, Max: 2}
	if ps := RestartOnly(running, next); len(ps) != 0 {
		t.Errorf("changing resident and leak asks a restart: %v", ps)
	}
}
