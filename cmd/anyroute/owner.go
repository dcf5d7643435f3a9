package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/service"
	"github.com/anyroute/anyroute/transport"
)

// configOwner is the one owner of the running config: a run-group actor, as Prometheus runs every
// reload on one goroutine, that holds the running config and the JSON document it came from and
// makes every change to them in turn. The file watcher, SIGHUP, POST /-/reload and
// PATCH /-/routes/{name} only ask it and wait for its answer: no change is applied on a stale copy
// or lost to another made at the same moment (with a lock released between reading the running
// config and applying, two patches of different routes each applied their copy over the other's).
//
// A new config is checked as at start, and refused whole when it changes a key that only a
// restart applies (config.RestartOnly): it applies entirely or not at all. Route rules are swapped
// atomically (service.Router); the aggregator keeps every route's series, so counts never reset
// or go down. Every refusal, whatever refused it, sets app_config_last_reload_successful to 0.
type configOwner struct {
	requests chan ownerRequest
	done     chan struct{} // closed as Run returns: asking then answers service.ErrStopping
	// current is the running config, published for GET /-/config, which waits for nothing.
	current atomic.Pointer[config.Config]

	// Run's alone: set before it starts.
	// running is the base config: the file's, with the PATCHes made since; what runs is it with
	// the active scenario phase's patches on top (current).
	running config.Config
	source  configSource
	// replace makes a checked config's route rules the ones that answer, phase naming the
	// scenario phase they belong to; keepDraws keeps the seeded source where it stands (a
	// scenario's steps), where a change of the base starts it again from the seed.
	replace func(cfg config.Config, phase string, keepDraws bool) error
	hups    <-chan os.Signal // SIGHUP: a reload asked by a signal, with nobody to answer
	logger  log.Logger

	// The scenario, its clock run by the owner's own timer: every step of it is an apply made
	// here, so the scenario is no second writer of the running config. nil: the config has none.
	scen            *scenarioRun
	scenarioMetrics scenarioMetrics
	timer           *time.Timer
	now             func() time.Time

	lastOK     prometheus.Gauge
	lastOKTime prometheus.Gauge
}

// configSource is where the running config came from and how a new one is made.
type configSource struct {
	name  string                                               // names the file in a problem: its path
	doc   []byte                                               // the document the running config was parsed from
	read  func() ([]byte, error)                               // reads the config file again; nil: there is none
	parse func(name string, doc []byte) (config.Config, error) // checks a document as at start (flag overrides included)
}

// codeSource is the source of a config built in code (the tests'): its marshalled form is its
// document, and there is no file.
func codeSource(cfg config.Config) configSource {
	doc, err := json.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("a Config does not marshal: %v", err)) // every field is plain data
	}
	return configSource{name: "config", doc: doc, parse: config.Parse}
}

// ownerRequest is one thing asked of the owner. reply has room for the answer, so the owner never
// waits for an asker that has left.
type ownerRequest struct {
	source string // what asked, for the log: "POST /-/reload", "file change", "PATCH /-/routes/a"
	patch  []byte // a JSON merge patch of route; nil asks for a reload from the file
	route  string // the route patched; the phase a scenario skip names
	// scenario, when set, is an admin call on the scenario, in place of a reload or a patch.
	scenario scenarioOp
	reply    chan ownerAnswer
}

type ownerAnswer struct {
	route any // the patched route, as it runs now; the scenario's state
	err   error
}

// newConfigOwner registers the reload gauges and returns the owner of cfg; replace is what applies
// a checked config's rules. Its source is cfg's own until setSource.
func newConfigOwner(cfg config.Config, replace func(config.Config, string, bool) error, reg prometheus.Registerer, logger log.Logger) *configOwner {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	o := &configOwner{
		timer:    timer,
		now:      time.Now,
		requests: make(chan ownerRequest),
		done:     make(chan struct{}),
		running:  cfg,
		source:   codeSource(cfg),
		replace:  replace,
		logger:   log.With(logger, "component", "reload"),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: cfg.Metrics.Namespace,
			Name: "config_last_reload_successful", Help: "1 when the last reload of the config applied, 0 when it was refused."}),
		lastOKTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: cfg.Metrics.Namespace,
			Name: "config_last_reload_success_timestamp_seconds", Help: "When the config in use was applied (at start, or by the last reload that succeeded), in Unix seconds."}),
	}
	o.current.Store(&cfg)
	o.scenarioMetrics = newScenarioMetrics(cfg.Metrics.Namespace, reg)
	if cfg.Scenario != nil {
		scen, err := newScenarioRun(cfg, o.source.doc)
		if err != nil {
			panic(fmt.Sprintf("a checked config's scenario does not apply: %v", err)) // Parse checked every phase
		}
		o.scen = scen
		o.scenarioMetrics.show(scen)
		o.scenarioMetrics.transitions.WithLabelValues(scen.sc.Name)
	}
	reg.MustRegister(o.lastOK, o.lastOKTime)
	o.lastOK.Set(1)
	o.lastOKTime.SetToCurrentTime()
	return o
}

// setSource names the document the running config came from and how to read and check a new one,
// and the signals that ask for a reload; before Run only.
func (o *configOwner) setSource(src configSource, hups <-chan os.Signal) {
	o.source, o.hups = src, hups
	if o.scen != nil { // the phases over the document as written, not as marshalled
		if scen, err := newScenarioRun(o.running, src.doc); err == nil {
			o.scen.phases = scen.phases
		}
	}
}

// Run handles one request at a time until ctx ends. A request is handled to its end before the
// next is taken or ctx is looked at; reading the file never blocks (config.ReadFile), so an end
// asked during a reload comes within that reload's time.
//
// A scenario that starts at_start starts as Run does; its timer wakes Run for each ramp step and
// phase end.
func (o *configOwner) Run(ctx context.Context) error {
	defer close(o.done)
	defer o.timer.Stop()
	if o.scen != nil && startMode(o.scen.sc) == config.StartAtStart {
		o.startScenario(o.now(), "start")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.hups:
			_ = o.reload("SIGHUP")
		case <-o.timer.C:
			o.tick(o.now())
		case req := <-o.requests:
			var a ownerAnswer
			switch {
			case req.scenario != noScenarioOp:
				a.route, a.err = o.scenarioRequest(req)
			case req.patch == nil:
				a.err = o.reload(req.source)
			default:
				a.route, a.err = o.patchRoute(req.route, req.patch)
			}
			req.reply <- a
		}
	}
}

// ask hands a request to the owner and waits for its answer, until ctx ends or the owner stops.
func (o *configOwner) ask(ctx context.Context, req ownerRequest) (any, error) {
	req.reply = make(chan ownerAnswer, 1)
	select {
	case o.requests <- req:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-o.done:
		return nil, service.ErrStopping
	}
	select {
	case a := <-req.reply:
		return a.route, a.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Reload reads the config file again and applies it (transport.Lifecycle).
func (o *configOwner) Reload(ctx context.Context) error {
	_, err := o.ask(ctx, ownerRequest{source: "POST /-/reload"})
	return err
}

// reloadFrom is Reload for the other askers, source naming them in the log.
func (o *configOwner) reloadFrom(ctx context.Context, source string) error {
	_, err := o.ask(ctx, ownerRequest{source: source})
	return err
}

// Config returns the effective config (transport.Lifecycle).
func (o *configOwner) Config() any { return *o.current.Load() }

// PatchRoute applies a JSON merge patch to one route (transport.Lifecycle). The file is not
// written: the next reload from it undoes the patch.
func (o *configOwner) PatchRoute(ctx context.Context, name string, patch []byte) (any, error) {
	if patch == nil {
		patch = []byte{} // not JSON: refused as a patch, never taken for a reload
	}
	return o.ask(ctx, ownerRequest{source: "PATCH /-/routes/" + name, route: name, patch: patch})
}

// reload reads the config file again and applies it; source says what asked, for the log.
func (o *configOwner) reload(source string) error {
	if o.source.read == nil {
		return o.refused(source, transport.ErrNoConfigFile)
	}
	doc, err := o.source.read()
	if err != nil {
		return o.refused(source, err)
	}
	next, err := o.source.parse(o.source.name, doc)
	if err != nil {
		return o.refused(source, err)
	}
	return o.apply(next, doc, source)
}

// patchRoute merges patch into the named route's object of the running document and checks the
// whole document as a file would be, once: the schema, with the route's pointer in every problem,
// then the semantic checks.
func (o *configOwner) patchRoute(name string, patch []byte) (any, error) {
	source := "PATCH /-/routes/" + name
	i := slices.IndexFunc(o.running.Routes, func(rt config.Route) bool { return rt.Name == name })
	if i < 0 {
		return nil, o.refused(source, fmt.Errorf("%w: %q (the routes are %s)", transport.ErrNoSuchRoute, name, routeNamesOf(o.running.Routes)))
	}
	doc, err := mergeRoute(o.source.doc, i, patch)
	var ce *config.Error
	if err != nil && errors.As(err, &ce) {
		ce.File = source
		err = invalidPatch{err}
	}
	if err != nil {
		return nil, o.refused(source, err)
	}
	next, err := o.source.parse(source, doc)
	if err != nil {
		return nil, o.refused(source, invalidPatch{err})
	}
	if err := o.apply(next, doc, source); err != nil {
		return nil, err
	}
	return next.Routes[i], nil // the base's route: the active phase's patches, if any, lie over it (GET /-/config)
}

// invalidPatch marks a patch the config refuses: the asker's to fix (400), not the server's.
type invalidPatch struct{ error }

func (e invalidPatch) Unwrap() error        { return e.error }
func (e invalidPatch) Is(target error) bool { return target == transport.ErrInvalidPatch }

// mergeRoute returns doc with the JSON merge patch applied to its i-th route object. The rest of
// the document stays as written (json.RawMessage: no number goes through a float64).
func mergeRoute(doc []byte, i int, patch []byte) ([]byte, error) {
	var whole map[string]json.RawMessage
	if err := json.Unmarshal(doc, &whole); err != nil {
		return nil, fmt.Errorf("the running document: %w", err)
	}
	var routes []json.RawMessage
	if err := json.Unmarshal(whole["routes"], &routes); err != nil {
		return nil, fmt.Errorf("the running document's routes: %w", err)
	}
	if i >= len(routes) {
		return nil, fmt.Errorf("the running document has no route %d", i)
	}
	merged, err := jsonpatch.MergePatch(routes[i], patch)
	if err != nil {
		return nil, &config.Error{Problems: []config.Problem{{Reason: "not a JSON merge patch: " + err.Error()}}}
	}
	routes[i] = merged
	if whole["routes"], err = json.Marshal(routes); err != nil {
		return nil, err
	}
	return json.Marshal(whole)
}

// apply makes next, parsed from doc, the running config (the new base), or refuses it whole. A
// scenario the change leaves as it was keeps its clock, its phases now laid over the new base; a
// scenario it changes, adds or removes starts again (at_start), or waits for its start
// (on_demand), and the log says so.
func (o *configOwner) apply(next config.Config, doc []byte, source string) error {
	if ps := config.RestartOnly(o.running, next); len(ps) > 0 {
		return o.refused(source, &config.Error{File: source, Problems: ps})
	}
	scen, err := newScenarioRun(next, doc)
	if err != nil {
		return o.refused(source, err)
	}
	kept := o.scen != nil && scen != nil && config.SameScenario(o.running, next)
	if kept {
		o.scen.phases = scen.phases
		scen = o.scen
	}
	// What runs from now on: the base, or the active phase over it (its ramp where it stands).
	runs, phase := next, ""
	if kept && scen.clock.running {
		runs, phase = scen.phases[scen.clock.phase], scen.sc.Phases[scen.clock.phase].Name
		runs.Scenario = next.Scenario
	}
	if err := o.replace(runs, phase, false); err != nil {
		return o.refused(source, err)
	}
	added, removed, changed := routeChanges(o.running.Routes, next.Routes)
	prev := o.running.Scenario
	o.running, o.source.doc = next, doc
	o.current.Store(&runs)
	if !kept {
		o.replaceScenario(prev, scen, source)
	} else if scen.clock.running {
		o.applyScenario(o.now()) // the ramp in progress, over the new base
	}
	o.lastOK.Set(1)
	o.lastOKTime.SetToCurrentTime()
	_ = level.Info(o.logger).Log("msg", "config applied", "source", source, "routes", len(next.Routes),
		"added", fmt.Sprint(added), "removed", fmt.Sprint(removed), "changed", fmt.Sprint(changed))
	return nil
}

// refused sets the gauge to 0, logs every problem of a refused change, one line each, and returns
// err.
func (o *configOwner) refused(source string, err error) error {
	o.lastOK.Set(0)
	var ce *config.Error
	if !errors.As(err, &ce) {
		_ = level.Error(o.logger).Log("msg", "config refused, the running one stays", "source", source, "err", err)
		return err
	}
	for _, p := range ce.Problems {
		_ = level.Error(o.logger).Log("msg", "config refused, the running one stays", "source", source, "file", ce.File, "problem", p.String())
	}
	return err
}

// routeChanges names the routes a new config adds, removes and changes.
func routeChanges(before, after []config.Route) (added, removed, changed []string) {
	old := map[string]string{}
	for _, r := range before {
		b, _ := json.Marshal(r)
		old[r.Name] = string(b)
	}
	for _, r := range after {
		b, _ := json.Marshal(r)
		prev, ok := old[r.Name]
		switch {
		case !ok:
			added = append(added, r.Name)
		case prev != string(b):
			changed = append(changed, r.Name)
		}
		delete(old, r.Name)
	}
	for name := range old {
		removed = append(removed, name)
	}
	slices.Sort(removed)
	return added, removed, changed
}

func routeNamesOf(routes []config.Route) string {
	names := make([]string, len(routes))
	for i, r := range routes {
		names[i] = r.Name
	}
	return fmt.Sprint(names)
}

// replaceScenario puts scen (nil: none) in place of the scenario of the config before a change,
// whose scenario was prev: its series go, the new one's are made, and it starts at once when it
// starts at_start.
func (o *configOwner) replaceScenario(prev *config.Scenario, scen *scenarioRun, source string) {
	if prev == nil && scen == nil {
		return
	}
	o.scenarioMetrics.forget(prev, scenarioOf(scen))
	wasRunning := o.scen != nil && o.scen.clock.running
	if wasRunning {
		o.scenarioMetrics.transitions.WithLabelValues(o.scen.sc.Name).Inc() // its course ends here
	}
	o.scen = scen
	switch {
	case scen == nil:
		o.timer.Stop()
		_ = level.Info(o.logger).Log("msg", "scenario removed by the change: the base config runs", "source", source)
		return
	case startMode(scen.sc) == config.StartAtStart:
		_ = level.Info(o.logger).Log("msg", "scenario changed: restarted from its first phase", "scenario", scen.sc.Name, "source", source)
		o.scenarioMetrics.transitions.WithLabelValues(scen.sc.Name)
		o.startScenario(o.now(), source)
	default:
		_ = level.Info(o.logger).Log("msg", "scenario changed: stopped until POST /-/scenario/start", "scenario", scen.sc.Name, "source", source)
		o.scenarioMetrics.transitions.WithLabelValues(scen.sc.Name)
		o.scenarioMetrics.show(scen)
		o.timer.Stop()
	}
}

func scenarioOf(s *scenarioRun) *config.Scenario {
	if s == nil {
		return nil
	}
	return &s.sc
}

// startScenario starts the scenario from its first phase at now.
func (o *configOwner) startScenario(now time.Time, source string) {
	s := o.scen
	o.enter(now, source, func() int { s.clock.start(now, 0); return 1 })
}
