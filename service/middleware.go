package service

import (
	"context"
	"errors"
	"runtime/debug"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Middleware decorates a Service.
type Middleware func(Service) Service

// ErrPanic is the error of a request whose handling panicked. Clients see only the status text.
var ErrPanic = errors.New("request handling panicked")

// Counter is what Recover counts panics in; a prometheus.Counter is one.
type Counter interface{ Inc() }

// Recover returns a service middleware that turns a panic into a 500 answer for that request alone:
// logged at level error with its trace id (Request.TraceID) and stack, counted in panics, and still
// counted as a request by the counting decorator around it, under the catch-all route (RouteID 0),
// since the rule it matched is unknown. net/http would recover too, but by dropping the connection,
// without an answer or a count.
func Recover(logger log.Logger, panics Counter) Middleware {
	logger = level.Error(logger)
	return func(next Service) Service {
		return &recovering{next: next, logger: logger, panics: panics}
	}
}

type recovering struct {
	next   Service
	logger log.Logger
	panics Counter
}

func (r *recovering) Handle(ctx context.Context, req Request) (resp Response, err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		r.panics.Inc()
		_ = r.logger.Log("msg", "panic while handling a request", "panic", p,
			"method", req.Method, "path", req.Path, "trace_id", req.TraceID, "stack", string(debug.Stack()))
		resp = Response{Status: 500, Route: OtherRoute, Err: ErrPanic}
		err = nil
	}()
	return r.next.Handle(ctx, req)
}
