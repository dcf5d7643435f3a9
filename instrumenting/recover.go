package instrumenting

import (
	"context"
	"errors"
	"runtime/debug"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/service"
)

// ErrPanic is the error of a request whose handling panicked. Clients see only the status text.
var ErrPanic = errors.New("request handling panicked")

// Recover returns a service middleware that turns a panic into a 500 answer for that request alone:
// logged with its trace id and stack, counted in panics, and still counted as a request by the
// counting decorator around it (under route other, since the rule it matched is unknown).
// net/http would recover too, but by dropping the connection, without an answer or a count.
func Recover(logger log.Logger, traceID func(context.Context) string, panics prometheus.Counter) service.Middleware {
	return func(next service.Service) service.Service {
		return &recovering{next: next, logger: logger, traceID: traceID, panics: panics}
	}
}

type recovering struct {
	next    service.Service
	logger  log.Logger
	traceID func(context.Context) string
	panics  prometheus.Counter
}

func (r *recovering) Handle(ctx context.Context, req service.Request) (resp service.Response, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		r.panics.Inc()
		_ = r.logger.Log("level", "error", "msg", "panic while handling a request", "panic", p,
			"method", req.Method, "path", req.Path, "trace_id", r.traceID(ctx), "stack", string(debug.Stack()))
		resp = service.Response{Status: 500, Route: service.OtherRoute, RouteID: -1, Err: ErrPanic}
		err = nil
	}()
	return r.next.Handle(ctx, req)
}

// NewPanicCounter registers the counter Recover increments.
func NewPanicCounter(reg prometheus.Registerer, namespace string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "panics_total",
		Help:      "Requests whose handling panicked and were answered 500.",
	})
	reg.MustRegister(c)
	return c
}
