package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Call is one upstream call a rule makes, in order (sequential) or all at once (parallel).
type Call struct {
	// ID is passed through to CallRequest for the decorators, like Rule.ID.
	ID   int
	Name string
	// URL may hold {path}: the incoming request's path without its leading slash, escaped, so
	// that a chain of services passes a path along.
	URL     string
	Method  string
	Timeout time.Duration
}

// CallRequest is one call to make.
type CallRequest struct {
	Call
	Route     string // the rule making the call
	Path      string // the incoming request's path, for Call.URL's {path}
	RequestID string // forwarded as x-request-id
	Hops      int    // hops made so far, this one included: the called service's Request.Hops
}

// CallResult is how one call went.
type CallResult struct {
	Name, URL string
	Status    int // 0 when no answer came
	Duration  time.Duration
	// Err is why no answer came: ErrCallTimeout, ErrNoAnswer, or the cause of the request's own
	// context ending (the client left, the server stopped).
	Err error
	// Answer is the upstream's body when it is JSON of at most MaxAnswerBytes, to nest in the echo.
	Answer []byte
}

// Failed reports whether the call counts as failed: no answer, or a 5xx.
func (r CallResult) Failed() bool { return r.Err != nil || r.Status >= 500 }

// MaxAnswerBytes bounds the upstream answer a call keeps for the echo, so that a deep call tree
// cannot grow a response without limit.
const MaxAnswerBytes = 16 << 10

// Caller makes upstream calls; the transport's HTTP client is one.
type Caller interface {
	Call(ctx context.Context, req CallRequest) CallResult
}

// Call errors, as a Caller reports them.
var (
	// ErrCallTimeout is a call that took longer than its timeout.
	ErrCallTimeout = errors.New("timed out")
	// ErrNoAnswer is a call that got no answer: refused, reset, unresolvable, or not HTTP.
	ErrNoAnswer = errors.New("no answer")
)

// CallError is the business error of a request whose call failed under on_call_error "fail".
type CallError struct {
	Name   string
	Status int   // the upstream's, 0 when none came
	Err    error // why none came
}

func (e *CallError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("upstream call %s failed: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("upstream call %s failed: %d", e.Name, e.Status)
}

// Unwrap gives errors.Is the cause.
func (e *CallError) Unwrap() error { return e.Err }

// status is what a request whose call failed answers: the upstream's 5xx, else 502.
func (e *CallError) status() int {
	if e.Status >= 500 {
		return e.Status
	}
	return 502
}

// makeCalls makes the rule's calls and returns their results in the rule's order, and the first
// failure, when the rule fails on one. Sequential calls stop at that failure.
func (s *table) makeCalls(ctx context.Context, r *rule, req Request, requestID string) ([]CallResult, *CallError) {
	results := make([]CallResult, len(r.Calls))
	make1 := func(i int) {
		c := r.Calls[i]
		results[i] = s.caller.Call(ctx, CallRequest{
			Call: c, Route: r.Name, Path: req.Path, RequestID: requestID, Hops: req.Hops + 1,
		})
		results[i].Name = c.Name
	}
	if r.Parallel {
		var wg sync.WaitGroup
		for i := range r.Calls {
			wg.Go(func() { make1(i) })
		}
		wg.Wait()
	} else {
		for i := range r.Calls {
			make1(i)
			if r.FailOnCallError && results[i].Failed() {
				results = results[:i+1]
				break
			}
		}
	}
	if r.FailOnCallError {
		for _, res := range results {
			if res.Failed() {
				return results, &CallError{Name: res.Name, Status: res.Status, Err: res.Err}
			}
		}
	}
	return results, nil
}
