package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/anyroute/anyroute/service"
)

// Lifecycle is what the admin port's mutations act on: the running config and its route rules.
// A mutation waits for its answer until ctx (the request's) ends.
type Lifecycle interface {
	// Reload reads the config file again and applies it whole, or returns why it did not;
	// ErrNoConfigFile when the process runs without one.
	Reload(ctx context.Context) error
	// Config returns the effective config, as it runs now.
	Config() any
	// PatchRoute applies a JSON merge patch (RFC 7396) to the named route and returns the route
	// as it runs now; ErrNoSuchRoute when there is none of that name, an error that Is
	// ErrInvalidPatch when the patched config does not check.
	PatchRoute(ctx context.Context, name string, patch []byte) (any, error)
}

// The errors of a Lifecycle that are answered with a status of their own (lifecycleStatus); any
// other error is the server's, 500.
var (
	// ErrNoSuchRoute is PatchRoute's error for a name no route has: 404.
	ErrNoSuchRoute = errors.New("no such route")
	// ErrInvalidPatch is PatchRoute's error for a patch the config refuses: the asker's to fix, 400.
	ErrInvalidPatch = errors.New("invalid patch")
	// ErrNoConfigFile is Reload's error when the process runs on its embedded defaults: nothing
	// can be read again, which conflicts with how the process was started: 409.
	ErrNoConfigFile = errors.New("no config file to reload: the process runs on the embedded defaults (start it with -config FILE)")
	// ErrNoScenario is a ScenarioControl's error when the config has no scenario: 404.
	ErrNoScenario = errors.New("the config has no scenario")
	// ErrNoSuchPhase is SkipScenario's error for a phase the scenario does not have: 404.
	ErrNoSuchPhase = errors.New("no such phase")
)

// ScenarioControl is what the scenario endpoints act on: the course of phases the config's
// scenario plays. Each returns the scenario's state after it acted (ScenarioStatus's answer).
type ScenarioControl interface {
	// StartScenario starts the course from its first phase, or starts it again if it runs.
	StartScenario(ctx context.Context) (any, error)
	// StopScenario stops the course; the base config runs again.
	StopScenario(ctx context.Context) (any, error)
	// SkipScenario moves to the named phase now, or to the next one for "" (the course's end
	// after its last); a stopped course starts at that phase.
	SkipScenario(ctx context.Context, phase string) (any, error)
	// ScenarioStatus is the course's state: the active phase, its time left, the ramp's progress.
	ScenarioStatus(ctx context.Context) (any, error)
}

// lifecycleStatus is the status that answers a mutation's error. A mutation that could not be
// handled because the process is stopping, or whose asker left, is 503.
func lifecycleStatus(err error) int {
	switch {
	case errors.Is(err, ErrNoSuchRoute), errors.Is(err, ErrNoScenario), errors.Is(err, ErrNoSuchPhase):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalidPatch):
		return http.StatusBadRequest
	case errors.Is(err, ErrNoConfigFile):
		return http.StatusConflict
	case errors.Is(err, service.ErrStopping), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// maxPatchBytes bounds a route patch: a route is a few hundred bytes.
const maxPatchBytes = 64 << 10

// probes are the forced answers of /readyz and /healthz, for probe demos: a pod that turns
// unready, or that its kubelet restarts.
type probes struct {
	unready   *atomic.Bool // shared: see AdminOptions.Unready
	unhealthy atomic.Bool
	log       toggleLog
}

// lifecycleRoutes adds the mutations, each answering 403 unless enabled. Every mutation that
// changes something is logged with what it changed.
func lifecycleRoutes(mux *http.ServeMux, lc Lifecycle, enabled bool, p *probes, logger log.Logger) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	warn := level.Warn(log.With(logger, "component", "admin"))
	guard := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !enabled || lc == nil {
				writeText(w, http.StatusForbidden, lifecycleOff)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /-/reload", guard(func(w http.ResponseWriter, r *http.Request) {
		if err := lc.Reload(r.Context()); err != nil {
			writeText(w, lifecycleStatus(err), "reload failed, the running config stays:\n"+err.Error()+"\n")
			return
		}
		writeText(w, http.StatusOK, "reloaded\n")
	}))
	mux.HandleFunc("GET /-/config", guard(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, lc.Config())
	}))
	mux.HandleFunc("PATCH /-/routes/{name}", guard(func(w http.ResponseWriter, r *http.Request) {
		patch, err := io.ReadAll(io.LimitReader(r.Body, maxPatchBytes+1))
		if err != nil || len(patch) > maxPatchBytes {
			writeText(w, http.StatusBadRequest, "the patch could not be read, or is larger than 64 KiB\n")
			return
		}
		route, err := lc.PatchRoute(r.Context(), r.PathValue("name"), patch)
		if err != nil {
			writeText(w, lifecycleStatus(err), "patch refused, the running config stays:\n"+err.Error()+"\n")
			return
		}
		writeJSON(w, http.StatusOK, route)
	}))
	for _, t := range []struct {
		path  string
		flag  *atomic.Bool
		value bool
	}{
		{"/-/readyz/disable", p.unready, true}, {"/-/readyz/enable", p.unready, false},
		{"/-/healthz/disable", &p.unhealthy, true}, {"/-/healthz/enable", &p.unhealthy, false},
	} {
		mux.HandleFunc("POST "+t.path, guard(func(w http.ResponseWriter, _ *http.Request) {
			if t.flag.Swap(t.value) != t.value {
				p.log.changed(warn, p, t.path)
			}
			writeText(w, http.StatusOK, "ok\n")
		}))
	}
}

// probeLogEvery is how often at most a change of the forced probe answers is logged.
var probeLogEvery = 10 * time.Second

// toggleLog logs the changes of the forced probe answers at most once per probeLogEvery, so that a
// client toggling them in a loop cannot flood the log. The first change of a quiet spell is logged
// at once; the changes that follow within the interval are summed into one line at its end, with
// the probes' state then, so the log always ends on the state the probes answer with.
type toggleLog struct {
	every      time.Duration // probeLogEvery when the handler was made
	mu         sync.Mutex
	quietUntil time.Time
	unlogged   int
	flushing   bool
}

func (l *toggleLog) changed(logger log.Logger, p *probes, toggle string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.After(l.quietUntil) {
		l.quietUntil = now.Add(l.every)
		_ = logger.Log("msg", "probe answer forced", "toggle", toggle)
		return
	}
	l.unlogged++
	if !l.flushing {
		l.flushing = true
		time.AfterFunc(l.quietUntil.Sub(now), func() { l.flush(logger, p) })
	}
}

func (l *toggleLog) flush(logger log.Logger, p *probes) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushing = false
	if l.unlogged == 0 {
		return
	}
	_ = logger.Log("msg", "probe answers forced, changed again", "changes", l.unlogged,
		"readyz_forced_unready", p.unready.Load(), "healthz_forced_unhealthy", p.unhealthy.Load())
	l.unlogged = 0
	l.quietUntil = time.Now().Add(l.every)
}

// lifecycleOff is the answer of every mutation while they are off.
const lifecycleOff = "admin mutations are off: set admin.lifecycle to true to allow them\n"

// leakRoute adds POST /-/leak/release, a mutation: it gives back what the leak kept, logs it, and
// answers how many bytes that was.
func leakRoute(mux *http.ServeMux, release func() int64, enabled bool, logger log.Logger) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	info := level.Info(log.With(logger, "component", "admin"))
	mux.HandleFunc("POST /-/leak/release", func(w http.ResponseWriter, _ *http.Request) {
		if !enabled {
			writeText(w, http.StatusForbidden, lifecycleOff)
			return
		}
		n := release()
		_ = info.Log("msg", "leak released", "bytes", n)
		writeText(w, http.StatusOK, fmt.Sprintf("released %d bytes\n", n))
	})
}

// scenarioRoutes adds the scenario's endpoints, each answering 403 unless enabled: POST
// /-/scenario/start, /-/scenario/stop, /-/scenario/skip?phase=NAME (the next one without it) and
// GET /-/scenario, each answering the scenario's state as JSON.
func scenarioRoutes(mux *http.ServeMux, sc ScenarioControl, enabled bool, logger log.Logger) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	info := level.Info(log.With(logger, "component", "admin"))
	handle := func(pattern string, act func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !enabled || sc == nil {
				writeText(w, http.StatusForbidden, lifecycleOff)
				return
			}
			state, err := act(r)
			if err != nil {
				writeText(w, lifecycleStatus(err), err.Error()+"\n")
				return
			}
			if r.Method == http.MethodPost {
				_ = info.Log("msg", "scenario changed", "call", r.URL.Path, "phase", r.URL.Query().Get("phase"))
			}
			writeJSON(w, http.StatusOK, state)
		})
	}
	handle("POST /-/scenario/start", func(r *http.Request) (any, error) { return sc.StartScenario(r.Context()) })
	handle("POST /-/scenario/stop", func(r *http.Request) (any, error) { return sc.StopScenario(r.Context()) })
	handle("POST /-/scenario/skip", func(r *http.Request) (any, error) {
		return sc.SkipScenario(r.Context(), r.URL.Query().Get("phase"))
	})
	handle("GET /-/scenario", func(r *http.Request) (any, error) { return sc.ScenarioStatus(r.Context()) })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeText(w, http.StatusInternalServerError, "cannot encode: "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
