// Package service is anyroute's business core: given a request, decide how to answer it from the
// configured route rules. It knows nothing of HTTP, metrics or tracing; those wrap it from outside.
package service

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// OtherRoute names the default rule, which answers every request no configured rule matches. It is
// also the route label of such requests, so a flood of random paths adds no metric series.
const OtherRoute = "other"

// StatusClientClosed is answered (and counted) when the client goes away before a delayed answer is
// ready; the code is nginx's, since HTTP has none for it.
const StatusClientClosed = 499

// Business errors ride inside Response.Err; the transport maps them to statuses with errors.Is.
var (
	// ErrInjected is the failure a rule's error mix injects.
	ErrInjected = errors.New("injected failure")
	// ErrBodyTooLarge means the request body went past the configured limit.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrBadBody means the request body could not be read: the client broke off or sent bad
	// chunking.
	ErrBadBody = errors.New("request body could not be read")
	// ErrStopping means the service stopped waiting because the server is shutting down and its
	// grace period ran out; the request's context carries it as its cause (context.Cause).
	ErrStopping = errors.New("server shutting down")
	// ErrLoop means the request came through more hops than max_hops: a call graph with a cycle.
	ErrLoop = errors.New("loop detected: too many hops")
)

// StatusLoopDetected is answered when a request has made more hops than the service allows.
const StatusLoopDetected = 508

// Request is what the service needs to know of an incoming request.
type Request struct {
	Method       string
	Path         string // decoded URL path
	Query        string // raw query string
	BodyBytes    int64  // bytes read from the body, up to the limit
	BodyTooLarge bool   // the body went past the limit and was not read further
	BodyBroken   bool   // the body could not be read to its end
	RequestID    string // the caller's x-request-id; "" makes the service give one
	Hops         int    // how many anyroute services the request has come through
	// OverrideStatus and OverrideDelay are the x-anyroute-status and x-anyroute-delay headers;
	// with the status and delay query parameters they override a rule that allows it.
	OverrideStatus, OverrideDelay string
}

// Response says how to answer a request, and what the service did to decide it, for the
// decorators outside: the counting decorator records RouteID, the tracing one draws Delay.
type Response struct {
	Status    int
	Route     string        // name of the matched rule, or OtherRoute
	RouteID   int           // ID of the matched rule; 0 for OtherRoute
	RequestID string        // the caller's, or one the service made
	Delay     time.Duration // the simulated work the service waited for (cut short if the client left)
	Calls     []CallResult  // the upstream calls made, in the rule's order
	Padding   int           // bytes of padding to add to the body
	Err       error         // business error, if any; Status already reflects it
}

// Service answers requests.
type Service interface {
	Handle(ctx context.Context, req Request) (Response, error)
}

// Rule is one route rule: what it matches and how it answers.
type Rule struct {
	// ID is passed through to Response.RouteID for the decorators, which resolve their per-route
	// state once instead of looking a name up per request (the counting decorator's metric slot);
	// the service gives it no meaning. 0 is the catch-all's, so give rules other values.
	ID      int
	Name    string
	Match   string
	Methods []string // empty: every method
	Status  int      // 0: 200
	Latency Latency
	// Errors is the status mix: each status answers its share of requests, instead of Status.
	Errors    []ErrorShare
	BodyBytes int
	Calls     []Call
	Parallel  bool // make the calls all at once, not one after the other
	// FailOnCallError answers a failed call's 5xx, or 502, instead of the rule's status.
	FailOnCallError bool
	// AllowOverrides lets a request choose its status and delay (up to MaxDelay).
	AllowOverrides bool
	MaxDelay       time.Duration
}

// ErrorShare is one status of a rule's mix, answered to Rate of its requests.
type ErrorShare struct {
	Status int
	Rate   float64
}

// Options are what every rule shares.
type Options struct {
	Caller  Caller  // makes the rules' upstream calls; nil: no rule may have any
	MaxHops int     // requests past this many hops are answered 508; 0: 10
	Random  *Random // source of every draw; nil: unseeded
}

type rule struct {
	Rule
	match   Match
	latency sampler
}

// Router is anyroute's Service: it answers by a table of rules, and Replace swaps in another table
// while requests are answered. A request reads the table once, when it starts, so it runs under
// the rules it started with and never sees half of a new set.
type Router struct {
	caller Caller
	table  atomic.Pointer[table]
}

// table is one compiled set of rules with what they share.
type table struct {
	rules   []rule
	other   rule
	caller  Caller
	maxHops int
	random  *Random
}

// New compiles the rules into a Router. Rules are tried in order; the first whose pattern and
// methods match answers. o.Caller makes the calls of every table the Router will have.
func New(rules []Rule, o Options) (*Router, error) {
	r := &Router{caller: o.Caller}
	if err := r.Replace(rules, o); err != nil {
		return nil, err
	}
	return r, nil
}

// Replace compiles the rules and, when they all compile, makes them the ones every request from
// now on is answered by; o.Caller is ignored (the Router keeps its own). On an error the rules in
// use stay.
func (rt *Router) Replace(rules []Rule, o Options) error {
	t, err := compile(rules, o, rt.caller)
	if err != nil {
		return err
	}
	rt.table.Store(t)
	return nil
}

// Handle answers by the current table.
func (rt *Router) Handle(ctx context.Context, req Request) (Response, error) {
	return rt.table.Load().Handle(ctx, req)
}

func compile(rules []Rule, o Options, caller Caller) (*table, error) {
	if o.MaxHops == 0 {
		o.MaxHops = 10
	}
	if o.Random == nil {
		o.Random = NewRandom(nil)
	}
	s := &table{other: rule{Rule: Rule{Name: OtherRoute, Status: 200}}, caller: caller, maxHops: o.MaxHops, random: o.Random}
	for i, r := range rules {
		m, err := ParseMatch(r.Match)
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		latency, err := r.Latency.compile()
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		if len(r.Calls) > 0 && caller == nil {
			return nil, fmt.Errorf("route %d (%s) makes calls, and the service has no caller", i, r.Name)
		}
		if r.Status == 0 {
			r.Status = 200
		}
		s.rules = append(s.rules, rule{Rule: r, match: m, latency: latency})
	}
	return s, nil
}

// Handle decides the answer. In order: a body too large (413) or unreadable (400) is refused at
// once, and so is a request past max_hops (508) or with overrides the rule refuses (400); the
// rule's calls are made, then its latency waited for; the status is the override's, else a failed
// call's, else the error mix's, else the rule's. A request whose context ends during the wait is
// answered 499 (the client left), or 503 when the cause is ErrStopping (the server cut it).
func (s *table) Handle(ctx context.Context, req Request) (Response, error) {
	r := s.find(req.Method, req.Path)
	resp := Response{Status: r.Status, Route: r.Name, RouteID: r.ID, Padding: r.BodyBytes, RequestID: req.RequestID}
	if resp.RequestID == "" {
		resp.RequestID = newRequestID()
	}
	refuse := func(status int, err error) (Response, error) {
		resp.Status, resp.Err, resp.Padding = status, err, 0
		return resp, nil
	}
	switch {
	case req.BodyTooLarge:
		return refuse(413, ErrBodyTooLarge)
	case req.BodyBroken:
		return refuse(400, ErrBadBody)
	case req.Hops >= s.maxHops:
		return refuse(StatusLoopDetected, ErrLoop)
	}
	var o override
	if r.AllowOverrides {
		var err error
		if o, err = parseOverride(req, r.MaxDelay); err != nil {
			return refuse(400, err)
		}
	}

	var callErr *CallError
	if len(r.Calls) > 0 {
		resp.Calls, callErr = s.makeCalls(ctx, r, req, resp.RequestID)
	}
	if d := s.delay(r, o); d > 0 {
		t := time.NewTimer(d)
		begin := time.Now()
		select {
		case <-t.C:
			resp.Delay = d
		case <-ctx.Done():
			t.Stop()
			resp.Delay = time.Since(begin)
			resp.Status, resp.Padding = StatusClientClosed, 0
			if cause := context.Cause(ctx); errors.Is(cause, ErrStopping) {
				resp.Status, resp.Err = 503, ErrStopping
				return resp, cause
			}
			return resp, ctx.Err()
		}
	}
	switch {
	case o.status != 0:
		resp.Status = o.status
	case callErr != nil:
		resp.Status, resp.Err, resp.Padding = callErr.status(), callErr, 0
	default:
		if status := s.injected(r); status != 0 {
			resp.Status, resp.Err, resp.Padding = status, ErrInjected, 0
		}
	}
	return resp, nil
}

func (s *table) find(method, path string) *rule {
	for i := range s.rules {
		r := &s.rules[i]
		if (len(r.Methods) == 0 || slices.Contains(r.Methods, method)) && r.match.Matches(path) {
			return r
		}
	}
	return &s.other
}

// delay is the override's, else a draw from the rule's latency.
func (s *table) delay(r *rule, o override) time.Duration {
	switch {
	case o.hasDelay:
		return o.delay
	case r.latency != nil:
		return r.latency(s.random)
	}
	return 0
}

// injected returns the status of the mix's share one draw falls in, 0 for none.
func (s *table) injected(r *rule) int {
	if len(r.Errors) == 0 {
		return 0
	}
	u, sum := s.random.Float64(), 0.0
	for _, e := range r.Errors {
		if sum += e.Rate; u < sum {
			return e.Status
		}
	}
	return 0
}

// newRequestID makes a request id of 32 hex digits, as x-request-id usually holds.
func newRequestID() string {
	const digits = "0123456789abcdef"
	var b [32]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 15; i >= 0; i-- {
		b[i], b[i+16] = digits[hi&0xf], digits[lo&0xf]
		hi, lo = hi>>4, lo>>4
	}
	return string(b[:])
}
