package transport

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Lifecycle is what the admin port's mutations act on: the running config and its route rules.
type Lifecycle interface {
	// Reload reads the config file again and applies it whole, or returns why it did not.
	Reload() error
	// Config returns the effective config, as it runs now.
	Config() any
	// PatchRoute applies a JSON merge patch (RFC 7396) to the named route and returns the route
	// as it runs now; ErrNoSuchRoute when there is none of that name.
	PatchRoute(name string, patch []byte) (any, error)
}

// ErrNoSuchRoute is PatchRoute's error for a name no route has.
var ErrNoSuchRoute = errors.New("no such route")

// maxPatchBytes bounds a route patch: a route is a few hundred bytes.
const maxPatchBytes = 64 << 10

// probes are the forced answers of /readyz and /healthz, for probe demos: a pod that turns
// unready, or that its kubelet restarts.
type probes struct {
	unready, unhealthy atomic.Bool
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
				writeText(w, http.StatusForbidden, "admin mutations are off: set admin.lifecycle to true to allow them\n")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /-/reload", guard(func(w http.ResponseWriter, _ *http.Request) {
		if err := lc.Reload(); err != nil {
			writeText(w, http.StatusInternalServerError, "reload failed, the running config stays:\n"+err.Error()+"\n")
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
		route, err := lc.PatchRoute(r.PathValue("name"), patch)
		switch {
		case errors.Is(err, ErrNoSuchRoute):
			writeText(w, http.StatusNotFound, err.Error()+"\n")
		case err != nil:
			writeText(w, http.StatusBadRequest, "patch refused, the running config stays:\n"+err.Error()+"\n")
		default:
			writeJSON(w, http.StatusOK, route)
		}
	}))
	for _, t := range []struct {
		path  string
		flag  *atomic.Bool
		value bool
	}{
		{"/-/readyz/disable", &p.unready, true}, {"/-/readyz/enable", &p.unready, false},
		{"/-/healthz/disable", &p.unhealthy, true}, {"/-/healthz/enable", &p.unhealthy, false},
	} {
		mux.HandleFunc("POST "+t.path, guard(func(w http.ResponseWriter, _ *http.Request) {
			if t.flag.Swap(t.value) != t.value {
				_ = warn.Log("msg", "probe answer forced", "toggle", t.path)
			}
			writeText(w, http.StatusOK, "ok\n")
		}))
	}
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
