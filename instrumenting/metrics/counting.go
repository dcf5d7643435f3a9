package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/anyroute/anyroute/instrumenting"
	"github.com/anyroute/anyroute/service"
)

// Counting returns a service middleware that records every answer in agg: route, method, status
// (or, for an answer a fault replaces, the fault's code: instrumenting.FaultCode) and how long the
// service took, up to the fault for a faulted one. It costs a few atomic adds and no allocation, so it can stay on
// for every request. A request whose trace is sampled (Request.TraceSampled, with its TraceID, as
// the tracing decorator outside resolved them) also leaves its trace id as the exemplar of its
// bucket.
func Counting(agg *Aggregator) service.Middleware {
	return func(next service.Service) service.Service {
		return &counting{next: next, agg: agg}
	}
}

type counting struct {
	next service.Service
	agg  *Aggregator
}

func (c *counting) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	token := c.agg.Begin()
	begin := monotonic()
	resp, err := c.next.Handle(ctx, req)
	end := monotonic()
	code := resp.Status
	if resp.Fault != nil { // what the client gets is the fault, not the status
		code = instrumenting.FaultCode(resp.Fault.Kind)
	}
	if req.TraceSampled && req.TraceID != "" {
		c.agg.EndSampled(token, resp.RouteID, req.Method, code, end-begin, end, req.TraceID)
		return resp, err
	}
	c.agg.End(token, resp.RouteID, req.Method, code, end-begin)
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
	CodeRefused  = -4 // not made: the incoming path would leave the URL's path (service.ErrUnsafePath)
	// CodeNonStandard is an answer whose status HTTP does not define (520, 599, 999): counted
	// under one code, so that an upstream answering arbitrary numbers adds one series, not one
	// a number.
	CodeNonStandard = -5
	CodeLimited     = -6 // not made: the process had as many calls in flight as it allows (service.ErrCallLimit)
)

// CountingCaller returns the decorator of an upstream Caller that records every call in calls, by
// the call's ID from CallCounter.Register: its status, or the code of why none came, and how long
// it took. A call of a request whose trace is sampled (CallRequest.TraceSampled and TraceID)
// leaves the trace id as the exemplar of its bucket, as Counting does for requests: a slow
// upstream bucket then leads to a trace holding the call's span.
func CountingCaller(calls *CallCounter) func(service.Caller) service.Caller {
	return func(next service.Caller) service.Caller { return &countingCaller{next: next, calls: calls} }
}

type countingCaller struct {
	next  service.Caller
	calls *CallCounter
}

func (c *countingCaller) Call(ctx context.Context, req service.CallRequest) service.CallResult {
	token := c.calls.begin()
	res := c.next.Call(ctx, req)
	if req.TraceSampled && req.TraceID != "" {
		c.calls.endSampled(token, req.ID, callCode(res), res.Duration, monotonic(), req.TraceID)
		return res
	}
	c.calls.end(token, req.ID, callCode(res), res.Duration)
	return res
}

// callCode is the code label of a call: its status, or why none came, or CodeNonStandard.
func callCode(res service.CallResult) int {
	switch {
	case errors.Is(res.Err, service.ErrCallTimeout):
		return CodeTimeout
	case errors.Is(res.Err, service.ErrNoAnswer):
		return CodeError
	case errors.Is(res.Err, service.ErrUnsafePath):
		return CodeRefused
	case errors.Is(res.Err, service.ErrCallLimit):
		return CodeLimited
	case res.Err != nil:
		return CodeCanceled
	case http.StatusText(res.Status) == "":
		return CodeNonStandard
	}
	return res.Status
}
