package transport

import (
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminOptions configure the admin handler.
type AdminOptions struct {
	// Metrics serves /metrics; without it, promhttp serves Gatherer.
	Metrics  http.Handler
	Gatherer prometheus.Gatherer
	Ready    *atomic.Bool // /readyz answers 200 while true; shutdown sets it false before draining
	// Unready is the flag POST /-/readyz/disable sets, shared with whatever else reports readiness
	// (the gRPC health service); nil: the handler keeps its own.
	Unready *atomic.Bool
	PProf   bool
	// Lifecycle is what the mutations act on; they answer 403 unless LifecycleOn.
	Lifecycle   Lifecycle
	LifecycleOn bool
	// ReleaseLeak gives back what the leak kept and returns the bytes (POST /-/leak/release, a
	// mutation); nil: the call answers 404.
	ReleaseLeak func() int64
	// Scenario is what the scenario endpoints act on (mutations, 403 unless LifecycleOn); nil:
	// they answer 404.
	Scenario ScenarioControl
	Logger   log.Logger
}

// NewAdminHandler returns the handler of the admin listener: /metrics, /healthz, /readyz and, only
// when enabled, /debug/pprof/. It is kept off the API port so that the catch-all can answer
// /metrics like any other path and profiling is never exposed by accident.
func NewAdminHandler(o AdminOptions) http.Handler {
	mux := http.NewServeMux()
	metrics := o.Metrics
	if metrics == nil {
		metrics = promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
			ErrorHandling:       promhttp.ContinueOnError,
			MaxRequestsInFlight: 4, // a scrape storm must not eat the API's CPU
		})
	}
	mux.Handle("GET /metrics", metrics)
	p := &probes{unready: o.Unready, log: toggleLog{every: probeLogEvery}}
	if p.unready == nil {
		p.unready = new(atomic.Bool)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if p.unhealthy.Load() {
			writeText(w, http.StatusInternalServerError, "unhealthy (forced: POST /-/healthz/enable)\n")
			return
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case p.unready.Load():
			writeText(w, http.StatusServiceUnavailable, "not ready (forced: POST /-/readyz/enable)\n")
		case o.Ready != nil && o.Ready.Load():
			writeText(w, http.StatusOK, "ready\n")
		default:
			writeText(w, http.StatusServiceUnavailable, "not ready\n")
		}
	})
	lifecycleRoutes(mux, o.Lifecycle, o.LifecycleOn, p, o.Logger)
	if o.ReleaseLeak != nil {
		leakRoute(mux, o.ReleaseLeak, o.LifecycleOn, o.Logger)
	}
	if o.Scenario != nil {
		scenarioRoutes(mux, o.Scenario, o.LifecycleOn, o.Logger)
	}
	if o.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", noWriteDeadline(pprof.Profile))
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", noWriteDeadline(pprof.Trace))
	}
	return mux
}

// noWriteDeadline lifts the admin server's write deadline for a handler that takes as long as the
// client asks (a 60 s CPU profile): everything else on the admin port answers within it.
func noWriteDeadline(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		h(w, r)
	}
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
