package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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
	// TraceID and TraceSampled are the incoming request's (Request.TraceID and TraceSampled): the
	// call's span is in that trace, and the counting decorator leaves its id as the exemplar of
	// the call's bucket.
	TraceID      string
	TraceSampled bool
}

// CallResult is how one call went.
type CallResult struct {
	Name, URL string
	Status    int // 0 when no answer came
	Duration  time.Duration
	// Err is why no answer came: ErrCallTimeout, ErrNoAnswer, or the cause of the request's own
	// context ending (the client left, the server stopped).
	Err error
	// Answer is the upstream's body when it is JSON, valid UTF-8, of at most MaxAnswerBytes, to
	// nest in the echo.
	Answer []byte
	// AnswerOmitted says why an answer that came is not nested: not JSON, not valid UTF-8, or too
	// large. Nesting any of them raw would make the echo itself invalid JSON, or unbounded.
	AnswerOmitted string
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
	// ErrUnsafePath is a call not made because the incoming path, put in the URL's {path}, would
	// leave the configured URL's path: a dot segment, in any encoding. It is the client's doing,
	// so a route that fails on it answers 400.
	ErrUnsafePath = errors.New("path not allowed in a call: it has a dot segment")
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

// status is what a request whose call failed answers: 400 for a path the call refused, 503 for a
// call the process's limit refused, the upstream's status when it is a standard 5xx, else 502.
// An upstream's other statuses (520, 599, 999: anything an HTTP client reads as three digits)
// would each be a new code series of the route, without bound, and some are no status a client
// can take for one.
func (e *CallError) status() int {
	if errors.Is(e.Err, ErrUnsafePath) {
		return 400
	}
	if errors.Is(e.Err, ErrCallLimit) {
		return 503
	}
	if StandardServerError(e.Status) {
		return e.Status
	}
	return 502
}

// StandardServerError reports whether status is one of the 5xx codes HTTP defines (RFC 9110 and
// the IANA registry): the failed-call statuses a route passes on to its client.
func StandardServerError(status int) bool {
	return (status >= 500 && status <= 508) || status == 510 || status == 511
}

// makeCalls makes the rule's calls and returns their results in the rule's order, and the first
// failure, when the rule fails on one. Sequential calls stop at that failure.
func (s *table) makeCalls(ctx context.Context, r *rule, req Request, requestID string) ([]CallResult, *CallError) {
	results := make([]CallResult, len(r.Calls))
	if r.Parallel {
		s.callAll(ctx, r, req, requestID, results)
	} else {
		for i := range r.Calls {
			results[i] = s.call(ctx, r, &req, requestID, i)
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

// callAll makes the rule's calls at once, each result into its place in results. It is apart from
// makeCalls because the goroutines' closure moves what it captures to the heap: a sequential
// call, the common case, would pay those allocations too.
func (s *table) callAll(ctx context.Context, r *rule, req Request, requestID string, results []CallResult) {
	var wg sync.WaitGroup
	for i := range r.Calls {
		wg.Go(func() { results[i] = s.call(ctx, r, &req, requestID, i) })
	}
	wg.Wait()
}

// call makes the rule's i-th call for req.
func (s *table) call(ctx context.Context, r *rule, req *Request, requestID string, i int) CallResult {
	c := r.Calls[i]
	res := s.caller.Call(ctx, CallRequest{
		Call: c, Route: r.Name, Path: req.Path, RequestID: requestID, Hops: int(req.Hops) + 1,
		TraceID: req.TraceID, TraceSampled: req.TraceSampled,
	})
	res.Name = c.Name
	return res
}

// GRPCTarget splits the URL of a gRPC call, grpc://host:port/pkg.Service/Method, into the address
// to dial and the full method name (/pkg.Service/Method); ok is false for any other shape, {path}
// included: a gRPC method is named by the config, never by the incoming request.
func GRPCTarget(u string) (addr, method string, ok bool) {
	rest, ok := strings.CutPrefix(u, "grpc://")
	if !ok {
		return "", "", false
	}
	addr, method, ok = strings.Cut(rest, "/")
	if !ok || addr == "" || strings.ContainsAny(u, "{}?#") {
		return "", "", false
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return "", "", false
	}
	svc, name, ok := strings.Cut(method, "/")
	if !ok || svc == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return addr, "/" + method, true
}
