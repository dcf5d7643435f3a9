package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/anyroute/anyroute/service"
)

// TraceIDFunc returns the trace id of the request in ctx when its trace is sampled, and false
// otherwise; tracing.Tracing's SampledTraceID is one. It must not allocate when it answers false.
type TraceIDFunc func(ctx context.Context) (traceID string, sampled bool)

// Counting returns a service middleware that records every answer in agg: route, method, status
// and how long the service took. It costs a few atomic adds and no allocation, so it can stay on
// for every request. With traceID (nil: none), a request whose trace is sampled also leaves its
// trace id as the exemplar of its bucket.
func Counting(agg *Aggregator, traceID TraceIDFunc) service.Middleware {
	return func(next service.Service) service.Service {
		return &counting{next: next, agg: agg, traceID: traceID}
	}
}

type counting struct {
	next    service.Service
	agg     *Aggregator
	traceID TraceIDFunc
}

func (c *counting) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	token := c.agg.Begin()
	begin := monotonic()
	resp, err := c.next.Handle(ctx, req)
	end := monotonic()
	if c.traceID != nil {
		if id, ok := c.traceID(ctx); ok {
			c.agg.EndSampled(token, resp.RouteID, req.Method, resp.Status, end-begin, end, id)
			return resp, err
		}
	}
	c.agg.End(token, resp.RouteID, req.Method, resp.Status, end-begin)
	return resp, err
}

// epoch anchors monotonic.
var epoch = time.Now()

// monotonic reads only the monotonic clock: time.Since of a time that carries a monotonic reading
// skips the wall clock, which time.Now also reads and which costs as much again on some virtual
// machines. A duration needs nothing more; an exemplar's wall time is epoch plus this reading.
func monotonic() time.Duration { return time.Since(epoch) }

// Codes of calls that got no answer, in the upstream metrics' code label.
const (
	CodeTimeout  = -1 // the call took longer than its timeout
	CodeError    = -2 // no answer: refused, reset, unresolvable, not HTTP
	CodeCanceled = -3 // the request itself ended (the client left, the server stopped)
)

// CallSlot is the name an upstream call is registered under in the calls' aggregator: its route's
// and its own, which config names keep free of "/".
func CallSlot(route, call string) string { return route + "/" + call }

// CountingCaller returns the decorator of an upstream Caller that records every call in agg (the
// calls' aggregator, by the call's ID from CallSlot): its status, or the code of why none came,
// and how long it took.
func CountingCaller(agg *Aggregator) func(service.Caller) service.Caller {
	return func(next service.Caller) service.Caller { return &countingCaller{next: next, agg: agg} }
}

type countingCaller struct {
	next service.Caller
	agg  *Aggregator
}

func (c *countingCaller) Call(ctx context.Context, req service.CallRequest) service.CallResult {
	token := c.agg.Begin()
	res := c.next.Call(ctx, req)
	code := res.Status
	switch {
	case errors.Is(res.Err, service.ErrCallTimeout):
		code = CodeTimeout
	case errors.Is(res.Err, service.ErrNoAnswer):
		code = CodeError
	case res.Err != nil:
		code = CodeCanceled
	}
	c.agg.End(token, req.ID, "", code, res.Duration)
	return res
}
