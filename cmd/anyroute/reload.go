package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport"
)

// reloader changes a running app's config: from its file (SIGHUP, POST /-/reload, a change the
// watcher sees) or by a patch of one route (PATCH /-/routes/{name}). A new config is checked as at
// start, and refused whole when it changes a key that only a restart applies (config.RestartOnly):
// it applies entirely or not at all. Route rules are swapped atomically (service.Router); the
// aggregator keeps every route's series, so counts never reset or go down.
type reloader struct {
	app    *app
	load   func() (config.Config, error) // nil: no config file, nothing to reload from
	logger log.Logger

	mu      sync.Mutex // one change at a time
	running config.Config

	lastOK     prometheus.Gauge
	lastOKTime prometheus.Gauge
}

func newReloader(a *app, cfg config.Config, reg prometheus.Registerer, logger log.Logger) *reloader {
	r := &reloader{
		app:     a,
		logger:  log.With(logger, "component", "reload"),
		running: cfg,
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: cfg.Metrics.Namespace,
			Name: "config_last_reload_successful", Help: "1 when the last reload of the config applied, 0 when it was refused."}),
		lastOKTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: cfg.Metrics.Namespace,
			Name: "config_last_reload_success_timestamp_seconds", Help: "When the config in use was applied (at start, or by the last reload that succeeded), in Unix seconds."}),
	}
	reg.MustRegister(r.lastOK, r.lastOKTime)
	r.lastOK.Set(1)
	r.lastOKTime.SetToCurrentTime()
	return r
}

// Reload reads the config file again and applies it (transport.Lifecycle).
func (r *reloader) Reload() error { return r.reload("POST /-/reload") }

// reload reads the config file again and applies it; source says what asked, for the log.
func (r *reloader) reload(source string) error {
	if r.load == nil {
		_ = level.Info(r.logger).Log("msg", "nothing to reload: running on the embedded defaults, no config file", "source", source)
		return nil
	}
	next, err := r.load()
	if err != nil {
		r.refused(source, err)
		return err
	}
	return r.apply(next, source)
}

// Config returns the effective config (transport.Lifecycle).
func (r *reloader) Config() any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// PatchRoute applies a JSON merge patch to one route (transport.Lifecycle): the patched config is
// checked as a file would be. The file is not written: the next reload from it undoes the patch.
func (r *reloader) PatchRoute(name string, patch []byte) (any, error) {
	r.mu.Lock()
	next := r.running
	next.Routes = slices.Clone(r.running.Routes)
	r.mu.Unlock()
	i := slices.IndexFunc(next.Routes, func(rt config.Route) bool { return rt.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("%w: %q (the routes are %s)", transport.ErrNoSuchRoute, name, routeNamesOf(next.Routes))
	}
	source := "PATCH /-/routes/" + name
	orig, err := json.Marshal(next.Routes[i])
	if err != nil {
		return nil, err
	}
	patched, err := jsonpatch.MergePatch(orig, patch)
	if err != nil {
		err = &config.Error{File: source, Problems: []config.Problem{{Reason: "not a JSON merge patch: " + err.Error()}}}
		r.refused(source, err)
		return nil, err
	}
	var route any
	if err := json.Unmarshal(patched, &route); err != nil {
		return nil, err
	}
	// Checked as a whole file: the schema, with the route's pointer in every problem, then the
	// semantic checks.
	doc, err := json.Marshal(next)
	if err != nil {
		return nil, err
	}
	var whole map[string]any
	if err := json.Unmarshal(doc, &whole); err != nil {
		return nil, err
	}
	whole["routes"].([]any)[i] = route
	if doc, err = json.Marshal(whole); err != nil {
		return nil, err
	}
	checked, err := config.Parse(source, doc)
	if err != nil {
		r.refused(source, err)
		return nil, err
	}
	if err := r.apply(checked, source); err != nil {
		return nil, err
	}
	return checked.Routes[i], nil
}

// apply makes next the running config, or refuses it whole.
func (r *reloader) apply(next config.Config, source string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ps := config.RestartOnly(r.running, next); len(ps) > 0 {
		err := &config.Error{File: source, Problems: ps}
		r.refused(source, err)
		return err
	}
	if err := r.app.replaceRules(next); err != nil {
		r.refused(source, err)
		return err
	}
	added, removed, changed := routeChanges(r.running.Routes, next.Routes)
	r.running = next
	r.lastOK.Set(1)
	r.lastOKTime.SetToCurrentTime()
	_ = level.Info(r.logger).Log("msg", "config applied", "source", source, "routes", len(next.Routes),
		"added", fmt.Sprint(added), "removed", fmt.Sprint(removed), "changed", fmt.Sprint(changed))
	return nil
}

// refused logs every problem of a refused config, one line each, and sets the gauge to 0.
func (r *reloader) refused(source string, err error) {
	r.lastOK.Set(0)
	var ce *config.Error
	if !errors.As(err, &ce) {
		_ = level.Error(r.logger).Log("msg", "config refused, the running one stays", "source", source, "err", err)
		return
	}
	for _, p := range ce.Problems {
		_ = level.Error(r.logger).Log("msg", "config refused, the running one stays", "source", source, "file", ce.File, "problem", p.String())
	}
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

// watchDebounce is how long the watcher waits after a change before it reloads: an editor's save
// or Kubernetes' swap of a mounted ConfigMap is several events in a row.
const watchDebounce = 200 * time.Millisecond
