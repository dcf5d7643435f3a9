// Package service is anyroute's business core: given a request, decide how to answer it from the
// configured route rules. It knows nothing of HTTP, metrics or tracing; those wrap it from outside.
package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
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
	// ErrInjected is the failure a rule's error_rate injects.
	ErrInjected = errors.New("injected failure")
	// ErrBodyTooLarge means the request body went past the configured limit.
	ErrBodyTooLarge = errors.New("request body too large")
	// ErrBadBody means the request body could not be read: the client broke off or sent bad
	// chunking.
	ErrBadBody = errors.New("request body could not be read")
	// ErrStopping means the service stopped waiting because the server is shutting down and its
	// grace period ran out; the request's context carries it as its cause (context.Cause).
	ErrStopping = errors.New("server shutting down")
)

// Request is what the service needs to know of an incoming request.
type Request struct {
	Method       string
	Path         string // decoded URL path
	Query        string // raw query string
	BodyBytes    int64  // bytes read from the body, up to the limit
	BodyTooLarge bool   // the body went past the limit and was not read further
	BodyBroken   bool   // the body could not be read to its end
}

// Response says how to answer a request, and what the service did to decide it, for the
// decorators outside: the counting decorator records RouteID, the tracing one draws Delay.
type Response struct {
	Status  int
	Route   string        // name of the matched rule, or OtherRoute
	RouteID int           // ID of the matched rule; 0 for OtherRoute
	Delay   time.Duration // the simulated work the service waited for (cut short if the client left)
	Padding int           // bytes of padding to add to the body
	Err     error         // business error, if any; Status already reflects it
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
	ID          int
	Name        string
	Match       string
	Methods     []string // empty: every method
	Status      int      // 0: 200
	Delay       time.Duration
	Jitter      time.Duration // the delay varies uniformly within ±Jitter
	ErrorRate   float64       // share of requests answered with ErrorStatus
	ErrorStatus int           // 0: 500
	BodyBytes   int
}

type rule struct {
	Rule
	match Match
}

type service struct {
	rules []rule
	other rule
}

// New compiles the rules into a Service. Rules are tried in order; the first whose pattern and
// methods match answers.
func New(rules []Rule) (Service, error) {
	s := &service{other: rule{Rule: Rule{Name: OtherRoute, Status: 200}}}
	for i, r := range rules {
		m, err := ParseMatch(r.Match)
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		if r.Status == 0 {
			r.Status = 200
		}
		if r.ErrorStatus == 0 {
			r.ErrorStatus = 500
		}
		// Past these the jitter's draw would overflow; the config check keeps far below them.
		r.Delay, r.Jitter = min(r.Delay, math.MaxInt64/2), min(r.Jitter, math.MaxInt64/4)
		s.rules = append(s.rules, rule{Rule: r, match: m})
	}
	return s, nil
}

// Handle decides the answer: the matched rule's status, after its delay, unless an injected error
// or an oversized or broken body overrides it. A request whose context ends during the delay is
// answered 499 (the client left), or 503 when the cause is ErrStopping (the server cut it).
func (s *service) Handle(ctx context.Context, req Request) (Response, error) {
	r := s.find(req.Method, req.Path)
	resp := Response{Status: r.Status, Route: r.Name, RouteID: r.ID, Padding: r.BodyBytes}
	switch {
	case req.BodyTooLarge:
		resp.Status, resp.Err, resp.Padding = 413, ErrBodyTooLarge, 0
		return resp, nil
	case req.BodyBroken:
		resp.Status, resp.Err, resp.Padding = 400, ErrBadBody, 0
		return resp, nil
	}
	if d := r.delay(); d > 0 {
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
	if r.ErrorRate > 0 && rand.Float64() < r.ErrorRate {
		resp.Status, resp.Err, resp.Padding = r.ErrorStatus, ErrInjected, 0
	}
	return resp, nil
}

func (s *service) find(method, path string) *rule {
	for i := range s.rules {
		r := &s.rules[i]
		if (len(r.Methods) == 0 || slices.Contains(r.Methods, method)) && r.match.Matches(path) {
			return r
		}
	}
	return &s.other
}

func (r *rule) delay() time.Duration {
	d := r.Delay
	if r.Jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*r.Jitter)+1)) - r.Jitter
	}
	return max(d, 0)
}
