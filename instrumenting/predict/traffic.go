package predict

import (
	"fmt"
	"strconv"
	"time"

	"github.com/anyroute/anyroute/config"
)

// This file turns the load and the scenario into what the request metrics count: per route and
// code, the requests a second, and the share of them slower than the latency bound the alerts
// read.

// codeRate is one (route, code) series' part of the traffic at an instant.
type codeRate struct {
	Route, Code string
	Rate        float64 // requests per second
	Slow        float64 // the share of them slower than the bound
}

// Course is the configs the pods run over time: the base, then the scenario's phases (ramps in
// steps of 100 ms, as the config owner applies them) from Start, repeated as the scenario says.
type Course struct {
	Base   config.Config
	Phases []config.Config
	Spec   *config.Scenario
	Start  time.Duration
}

// NewCourse reads the scenario of cfg (parsed from doc), if any.
func NewCourse(doc []byte, cfg config.Config, start time.Duration) (Course, error) {
	c := Course{Base: cfg, Spec: cfg.Scenario, Start: start}
	if cfg.Scenario == nil {
		return c, nil
	}
	var err error
	if c.Phases, err = config.PhaseConfigs(doc, cfg); err != nil {
		return c, err
	}
	return c, nil
}

// rampStep is the config owner's step of a ramp.
const rampStep = 100 * time.Millisecond

// At is the config that runs at t, and a key that changes whenever it does.
func (c Course) At(t time.Duration) (config.Config, string) {
	if c.Spec == nil || t < c.Start || len(c.Phases) == 0 {
		return c.Base, "base"
	}
	var run time.Duration
	for _, p := range c.Spec.Phases {
		run += p.Duration.D()
	}
	if run <= 0 {
		return c.Base, "base"
	}
	into := t - c.Start
	n := int(into / run)
	if runs := c.Spec.Repeat.Runs(); runs > 0 && n >= runs {
		return c.Base, "base"
	}
	into -= time.Duration(n) * run
	for i, p := range c.Spec.Phases {
		d := p.Duration.D()
		if into >= d {
			into -= d
			continue
		}
		ramp := p.Ramp.D()
		if ramp <= 0 || into >= ramp {
			return c.Phases[i], strconv.Itoa(i)
		}
		from := c.Base
		switch {
		case i > 0:
			from = c.Phases[i-1]
		case n > 0:
			from = c.Phases[len(c.Phases)-1]
		}
		step := into / rampStep
		f := float64(step*rampStep) / float64(ramp)
		return config.Between(from, c.Phases[i], f), fmt.Sprintf("%d/%d/%d", i, min(n, 1), step)
	}
	return c.Base, "base"
}

// Traffic is the load over the course: what each route answers, at each instant.
type Traffic struct {
	Load   Load
	Course Course
	Bound  time.Duration // the latency bound of the alerts
	cache  map[string][]codeRate
	cpu    map[string]float64
}

// CPUAt is the CPU time a request costs at t, averaged over the routes as the config running
// then has them (0 where they cannot be read: Check refused such a config before).
func (tr *Traffic) CPUAt(t time.Duration) float64 {
	cfg, key := tr.Course.At(t)
	if c, ok := tr.cpu[key]; ok {
		return c
	}
	ss, err := shares(cfg, tr.Load)
	if err != nil {
		return 0
	}
	if tr.cpu == nil {
		tr.cpu = map[string]float64{}
	}
	tr.cpu[key] = cpuOf(ss)
	return tr.cpu[key]
}

// perRequest is the split of one request of the load over (route, code), with slow shares.
func (tr *Traffic) perRequest(cfg config.Config, key string) ([]codeRate, error) {
	if got, ok := tr.cache[key]; ok {
		return got, nil
	}
	ss, err := shares(cfg, tr.Load)
	if err != nil {
		return nil, err
	}
	var out []codeRate
	for _, s := range ss {
		r := s.Rule
		cpu := r.CPU.Average()
		slow := 1.0
		if tr.Bound > cpu {
			slow = r.Latency.Above(tr.Bound - cpu)
		}
		rest := s.Weight
		for _, f := range r.Faults {
			out = append(out, codeRate{Route: s.Name, Code: f.Kind.String(), Rate: s.Weight * f.Rate, Slow: slow})
			rest -= s.Weight * f.Rate
		}
		for _, e := range r.Errors {
			out = append(out, codeRate{Route: s.Name, Code: strconv.Itoa(e.Status), Rate: s.Weight * e.Rate, Slow: slow})
			rest -= s.Weight * e.Rate
		}
		status := r.Status
		if status == 0 {
			status = 200
		}
		out = append(out, codeRate{Route: s.Name, Code: strconv.Itoa(status), Rate: max(rest, 0), Slow: slow})
	}
	if tr.cache == nil {
		tr.cache = map[string][]codeRate{}
	}
	tr.cache[key] = out
	return out, nil
}

// At is the traffic at t: the load's rate split as the config running then answers it. A route's
// rate limit refuses, as 429s that take no time, what is past its rate.
func (tr *Traffic) At(t time.Duration) ([]codeRate, error) {
	cfg, key := tr.Course.At(t)
	per, err := tr.perRequest(cfg, key)
	if err != nil {
		return nil, err
	}
	rate := tr.Load.RateAt(t)
	limits := map[string]float64{}
	for _, r := range cfg.Routes {
		if r.RateLimit != nil {
			limits[r.Name] = r.RateLimit.RPS
		}
	}
	routeRate := map[string]float64{}
	for _, c := range per {
		routeRate[c.Route] += c.Rate * rate
	}
	out := make([]codeRate, 0, len(per)+1)
	refused := map[string]float64{}
	for _, c := range per {
		c.Rate *= rate
		if rps, ok := limits[c.Route]; ok && routeRate[c.Route] > rps {
			keep := rps / routeRate[c.Route]
			refused[c.Route] += c.Rate * (1 - keep)
			c.Rate *= keep
		}
		out = append(out, c)
	}
	for _, name := range sortedNames(refused) {
		out = append(out, codeRate{Route: name, Code: "429", Rate: refused[name]})
	}
	return out, nil
}

// PhaseSpan is one phase of the scenario as it plays, from the start of the load.
type PhaseSpan struct {
	Name       string
	Start, End time.Duration
}

// Spans lists the phases that start before end.
func (c Course) Spans(end time.Duration) []PhaseSpan {
	if c.Spec == nil {
		return nil
	}
	var out []PhaseSpan
	t := c.Start
	runs := c.Spec.Repeat.Runs()
	for run := 0; runs == 0 || run < runs; run++ {
		moved := false
		for _, p := range c.Spec.Phases {
			if t >= end {
				return out
			}
			d := p.Duration.D()
			out = append(out, PhaseSpan{Name: p.Name, Start: t, End: t + d})
			t += d
			moved = moved || d > 0
		}
		if !moved {
			break
		}
	}
	return out
}
