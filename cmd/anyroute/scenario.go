package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport"
)

// rampStep is how often a ramp moves the routes' numbers: each step is one apply by the owner
// (the rules compiled again, nothing read), ten a second.
const rampStep = 100 * time.Millisecond

// phaseClock is where a scenario stands on its timeline: which phase, since when, in which run.
// It reads no clock of its own: every method is given the time, so tests drive it with any.
type phaseClock struct {
	phases  []config.Phase
	runs    int // how many runs in all; 0: for ever
	running bool
	phase   int       // the active phase, while running
	began   time.Time // when the active phase began
	run     int       // runs completed
}

func newPhaseClock(s config.Scenario) phaseClock {
	return phaseClock{phases: s.Phases, runs: s.Repeat.Runs()}
}

// start starts the course at phase i.
func (c *phaseClock) start(now time.Time, i int) {
	c.running, c.phase, c.began, c.run = true, i, now, 0
}

func (c *phaseClock) stop() { c.running = false }

// advance moves the clock to the phase now falls in, and returns how many changes of the active
// phase that took: each phase entered, and the end of the course. A phase begins exactly where
// the one before it ended, however late advance is called, so the course keeps its time.
func (c *phaseClock) advance(now time.Time) (changes int) {
	for c.running {
		end := c.began.Add(c.phases[c.phase].Duration.D())
		if now.Before(end) {
			return changes
		}
		c.began = end
		changes++
		c.phase++
		if c.phase == len(c.phases) {
			c.run++
			c.phase = 0
			if c.runs != 0 && c.run >= c.runs {
				c.running = false
			}
		}
	}
	return changes
}

// skip ends the active phase now, so that the next begins (the course ends after its last,
// unless it repeats).
func (c *phaseClock) skip(now time.Time) int {
	c.began = now.Add(-c.phases[c.phase].Duration.D())
	return c.advance(now)
}

// ramp is the active phase's ramp progress at now, from 0 to 1; 1 when it has no ramp.
func (c *phaseClock) ramp(now time.Time) float64 {
	r := c.phases[c.phase].Ramp.D()
	if r <= 0 {
		return 1
	}
	return min(1, float64(now.Sub(c.began))/float64(r))
}

// left is the time left in the active phase.
func (c *phaseClock) left(now time.Time) time.Duration {
	return max(0, c.began.Add(c.phases[c.phase].Duration.D()).Sub(now))
}

// wake is when the owner must act next: the next ramp step, or the active phase's end; false
// when the course is not running.
func (c *phaseClock) wake(now time.Time) (time.Time, bool) {
	if !c.running {
		return time.Time{}, false
	}
	at := c.began.Add(c.phases[c.phase].Duration.D())
	if c.ramp(now) < 1 {
		for _, t := range []time.Time{now.Add(rampStep), c.began.Add(c.phases[c.phase].Ramp.D())} {
			if t.Before(at) {
				at = t
			}
		}
	}
	return at, true
}

// scenarioRun is the owner's scenario: the config of each phase over the current base, the clock,
// and where the active phase's ramp starts from.
type scenarioRun struct {
	sc     config.Scenario
	phases []config.Config // phase i's routes over the current base
	clock  phaseClock
	from   config.Config // what ran as the active phase began: its ramp's start
}

// scenarioMetrics are the scenario's series: the active phase as a gauge, 1 for it and 0 for the
// scenario's other phases, and the changes of the active phase counted.
type scenarioMetrics struct {
	phase       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
}

func newScenarioMetrics(ns string, reg prometheus.Registerer) scenarioMetrics {
	m := scenarioMetrics{
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "scenario_phase",
			Help: "1 for the scenario's active phase, 0 for its other phases (all 0 while it is stopped or has ended)."}, []string{"scenario", "phase"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "scenario_transitions_total",
			Help: "Changes of the scenario's active phase: each phase entered, and the course's end or stop."}, []string{"scenario"}),
	}
	reg.MustRegister(m.phase, m.transitions)
	return m
}

// show sets the gauge of s: active (-1 for none) at 1, its other phases at 0.
func (m scenarioMetrics) show(s *scenarioRun) {
	for i, p := range s.sc.Phases {
		v := 0.0
		if s.clock.running && i == s.clock.phase {
			v = 1
		}
		m.phase.WithLabelValues(s.sc.Name, p.Name).Set(v)
	}
}

// forget removes the series of a scenario a reload replaced or removed; its transitions stay
// counted when the new one has the same name.
func (m scenarioMetrics) forget(old, next *config.Scenario) {
	if old == nil {
		return
	}
	for _, p := range old.Phases {
		if next == nil || next.Name != old.Name || !slices.ContainsFunc(next.Phases, func(q config.Phase) bool { return q.Name == p.Name }) {
			m.phase.DeleteLabelValues(old.Name, p.Name)
		}
	}
	if next == nil || next.Name != old.Name {
		m.transitions.DeleteLabelValues(old.Name)
	}
}

// scenarioStatus is GET /-/scenario's answer.
type scenarioStatus struct {
	Scenario     string   `json:"scenario"`
	Start        string   `json:"start"`
	Running      bool     `json:"running"`
	Phase        string   `json:"phase,omitempty"`
	PhaseIndex   int      `json:"phase_index"`
	Run          int      `json:"run,omitempty"` // the run in progress, from 1; 0 when not running
	RunsDone     int      `json:"runs_done"`     // the runs completed
	Runs         int      `json:"runs"`          // how many runs in all; 0: for ever
	TimeLeft     string   `json:"time_left,omitempty"`
	RampProgress float64  `json:"ramp_progress"`
	Phases       []string `json:"phases"`
}

func (s *scenarioRun) status(now time.Time) scenarioStatus {
	st := scenarioStatus{Scenario: s.sc.Name, Start: startMode(s.sc), Running: s.clock.running,
		PhaseIndex: -1, RunsDone: s.clock.run, Runs: s.clock.runs}
	for _, p := range s.sc.Phases {
		st.Phases = append(st.Phases, p.Name)
	}
	if s.clock.running {
		st.Phase, st.PhaseIndex, st.Run = s.sc.Phases[s.clock.phase].Name, s.clock.phase, s.clock.run+1
		st.TimeLeft = s.clock.left(now).Round(time.Millisecond).String()
		st.RampProgress = s.clock.ramp(now)
	}
	return st
}

func startMode(s config.Scenario) string {
	if s.Start == "" {
		return config.StartAtStart
	}
	return s.Start
}

// newScenarioRun is the scenario of cfg, parsed from doc, its clock stopped; nil when cfg has none.
func newScenarioRun(cfg config.Config, doc []byte) (*scenarioRun, error) {
	if cfg.Scenario == nil {
		return nil, nil
	}
	parsed, err := config.PhaseConfigs(doc, cfg)
	if err != nil {
		return nil, err
	}
	// A phase changes the routes alone: the rest is the base's as it runs (the flags' listener
	// addresses included, which the document does not hold).
	phases := make([]config.Config, len(parsed))
	for i, p := range parsed {
		phases[i] = cfg
		phases[i].Routes = p.Routes
	}
	return &scenarioRun{sc: *cfg.Scenario, phases: phases, clock: newPhaseClock(*cfg.Scenario)}, nil
}

// The owner's scenario operations, as its requests name them.
type scenarioOp int

const (
	noScenarioOp scenarioOp = iota
	scenarioStart
	scenarioStop
	scenarioSkip
	scenarioRead
)

// StartScenario starts the course from its first phase (transport.ScenarioControl).
func (o *configOwner) StartScenario(ctx context.Context) (any, error) {
	return o.ask(ctx, ownerRequest{source: "POST /-/scenario/start", scenario: scenarioStart})
}

// StopScenario stops the course (transport.ScenarioControl).
func (o *configOwner) StopScenario(ctx context.Context) (any, error) {
	return o.ask(ctx, ownerRequest{source: "POST /-/scenario/stop", scenario: scenarioStop})
}

// SkipScenario moves to a phase now (transport.ScenarioControl).
func (o *configOwner) SkipScenario(ctx context.Context, phase string) (any, error) {
	return o.ask(ctx, ownerRequest{source: "POST /-/scenario/skip", scenario: scenarioSkip, route: phase})
}

// ScenarioStatus reads the course's state (transport.ScenarioControl).
func (o *configOwner) ScenarioStatus(ctx context.Context) (any, error) {
	return o.ask(ctx, ownerRequest{source: "GET /-/scenario", scenario: scenarioRead})
}

// scenarioRequest carries out an admin call on the scenario, in the owner.
func (o *configOwner) scenarioRequest(req ownerRequest) (any, error) {
	s := o.scen
	if s == nil {
		return nil, transport.ErrNoScenario
	}
	now := o.now()
	o.tick(now) // the clock where it stands, before the call moves it
	switch req.scenario {
	case scenarioStart:
		o.enter(now, req.source, func() int { s.clock.start(now, 0); return 1 })
	case scenarioStop:
		o.enter(now, req.source, func() int {
			if !s.clock.running {
				return 0
			}
			s.clock.stop()
			return 1
		})
	case scenarioSkip:
		if req.route == "" {
			o.enter(now, req.source, func() int {
				if !s.clock.running {
					s.clock.start(now, 0)
					return 1
				}
				return s.clock.skip(now)
			})
			break
		}
		i := slices.IndexFunc(s.sc.Phases, func(p config.Phase) bool { return p.Name == req.route })
		if i < 0 {
			return nil, fmt.Errorf("%w: %q (the phases are %v)", transport.ErrNoSuchPhase, req.route, s.status(now).Phases)
		}
		o.enter(now, req.source, func() int {
			run := s.clock.run
			s.clock.start(now, i)
			s.clock.run = run
			return 1
		})
	}
	return s.status(now), nil
}

// tick advances the scenario's clock to now, and applies what it then asks for: the phase now
// active, at its ramp's progress.
func (o *configOwner) tick(now time.Time) {
	if o.scen == nil {
		return
	}
	o.enter(now, "scenario clock", func() int { return o.scen.clock.advance(now) })
}

// enter moves the clock by move, which returns how many changes of the active phase it made,
// counts and logs them, and applies the routes the clock then asks for.
func (o *configOwner) enter(now time.Time, source string, move func() int) {
	s := o.scen
	before := s.status(now)
	if n := move(); n > 0 {
		s.from = *o.current.Load() // the ramp of the phase now active starts from what runs
		o.scenarioMetrics.transitions.WithLabelValues(s.sc.Name).Add(float64(n))
		o.scenarioMetrics.show(s)
		after := s.status(now)
		_ = level.Info(o.logger).Log("msg", "scenario phase", "scenario", s.sc.Name, "source", source,
			"from", cmpOr(before.Phase, "(none)"), "to", cmpOr(after.Phase, "(none: the base config runs)"), "runs_done", after.RunsDone)
	}
	o.applyScenario(now)
}

func cmpOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}

// applyScenario makes the routes run what the scenario asks for at now: the active phase's, at
// its ramp's progress, or the base's when the course is not running; then sets the timer for
// the next step. A ramp step whose in-between values do not check or compile runs the phase's
// own values instead.
func (o *configOwner) applyScenario(now time.Time) {
	s := o.scen
	eff, phase := o.running, ""
	if s.clock.running {
		target := s.phases[s.clock.phase]
		phase = s.sc.Phases[s.clock.phase].Name
		eff = target
		if f := s.clock.ramp(now); f < 1 {
			eff = config.Between(s.from, target, f)
			if len(eff.Check()) > 0 {
				eff = target
			}
		}
	}
	eff.Scenario = o.running.Scenario
	if err := o.replace(eff, phase, true); err != nil {
		if !s.clock.running {
			_ = level.Error(o.logger).Log("msg", "the base config not applied", "scenario", s.sc.Name, "err", err)
			return
		}
		eff = s.phases[s.clock.phase]
		eff.Scenario = o.running.Scenario
		if err := o.replace(eff, phase, true); err != nil {
			_ = level.Error(o.logger).Log("msg", "scenario phase not applied", "scenario", s.sc.Name, "phase", phase, "err", err)
			return
		}
	}
	o.current.Store(&eff)
	o.rearm(now)
}

// rearm sets the owner's timer to the scenario's next step, or stops it.
func (o *configOwner) rearm(now time.Time) {
	at, ok := time.Time{}, false
	if o.scen != nil {
		at, ok = o.scen.clock.wake(now)
	}
	if !ok {
		o.timer.Stop()
		return
	}
	o.timer.Reset(max(at.Sub(now), time.Millisecond))
}
