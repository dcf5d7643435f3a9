package service

import (
	"context"
	"errors"
	"sync"
)

// ErrCallLimit is a call not made because the process already has as many calls in flight as it
// allows, in all or for the request's call tree. It is the calling process's overload, not the
// upstream's failure, so a route that fails on it answers 503.
var ErrCallLimit = errors.New("too many calls in flight")

// MaxCallsPerRequest bounds the calls one request tree (the requests that share an x-request-id,
// which every hop forwards) has in flight in one process: four routes' worth of calls. A tree
// that loops back through the process thus takes at most this many of its slots, so one request
// cannot starve the others.
const MaxCallsPerRequest = 64

// DefaultMaxCallsInFlight is the process's bound on upstream calls in flight when none is given.
const DefaultMaxCallsInFlight = 1024

// LimitCalls returns a decorator of a Caller that makes at most maxInFlight calls at once in the
// process (0: DefaultMaxCallsInFlight), and at most perRequest at once for one request id (0:
// MaxCallsPerRequest), and refuses any other call at once with ErrCallLimit. It never waits for
// a slot: the calls holding the slots may be the caller's own ancestors in a tree that loops back
// through the process, which would wait on it in turn until their timeouts, so waiting could only
// turn an overload into a stall. A call without a request id counts only against maxInFlight.
func LimitCalls(maxInFlight, perRequest int) func(Caller) Caller {
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxCallsInFlight
	}
	if perRequest <= 0 {
		perRequest = MaxCallsPerRequest
	}
	return func(next Caller) Caller {
		return &callLimit{next: next, max: maxInFlight, perRequest: perRequest, byRequest: map[string]int{}}
	}
}

type callLimit struct {
	next            Caller
	max, perRequest int

	mu        sync.Mutex
	inFlight  int
	byRequest map[string]int // in flight by request id; an id leaves the map with its last call
}

func (l *callLimit) Call(ctx context.Context, req CallRequest) CallResult {
	if !l.acquire(req.RequestID) {
		return CallResult{Name: req.Name, URL: req.URL, Err: ErrCallLimit}
	}
	defer l.release(req.RequestID)
	return l.next.Call(ctx, req)
}

func (l *callLimit) acquire(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight >= l.max || (id != "" && l.byRequest[id] >= l.perRequest) {
		return false
	}
	l.inFlight++
	if id != "" {
		l.byRequest[id]++
	}
	return true
}

func (l *callLimit) release(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if id == "" {
		return
	}
	if n := l.byRequest[id] - 1; n > 0 {
		l.byRequest[id] = n
	} else {
		delete(l.byRequest, id)
	}
}
