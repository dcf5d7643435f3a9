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

// Request is what the service needs to know of an incoming request. The decoder allocates one per
// request and the endpoint copies it into its response, so it is kept to 128 bytes, a size class:
// Hops is an int32 and TraceSampled a bool that sit, with the two Body flags, in one word.
type Request struct {
	Method       string
	Path         string // decoded URL path
	Query        string // raw query string
	BodyBytes    int64  // bytes read from the body, up to the limit
	BodyTooLarge bool   // the body went past the limit and was not read further
	BodyBroken   bool   // the body could not be read to its end
	TraceSampled bool   // see TraceID
	Hops         int32  // how many anyroute services the request has come through
	RequestID    string // the caller's x-request-id; "" makes the service give one
	// OverrideStatus and OverrideDelay are the x-anyroute-status and x-anyroute-delay headers;
	// with the status and delay query parameters they override a rule that allows it.
	OverrideStatus, OverrideDelay string
	// TraceID and TraceSampled are the request's trace as the tracing decorator resolved it, once,
	// for the decorators below it (the counting one's exemplars, panic recovery's log line, the
	// delay span), which read it here rather than ask the tracing library again: the id ("" when
	// the request is not traced or tracing is off) and whether the trace is recorded and sent.
	// The service gives them no meaning.
	TraceID string
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
	// Fault, when not nil, is the fault the transport carries out instead of writing the answer
	// (slow_body writes it, slowly); it points into the rule, so a fault allocates nothing.
	Fault *Fault
	// CPU, Quantile and Distribution say why the request took as long as it did, for the tracing
	// decorators to tag its spans with (an exemplar on a slow bucket then leads to a span that
	// explains itself): the CPU time it burned (Rule.CPU), what Delay was drawn from, and where
	// the draw fell in it, in [0, 1], for a distribution whose draws differ (Distribution.Spread;
	// 0 otherwise). The quantile is the draw's before Latency.Max or 0 cut it, and it is a
	// float32 and the distribution a byte so that the three fill two words.
	CPU          time.Duration
	Quantile     float32
	Distribution Distribution
	// GRPCCode is the rule's explicit gRPC code for this answer (Rule.GRPCCode or the drawn
	// share's), 0 when the status's own mapping applies; HTTP answers ignore it. A byte beside
	// Distribution, so it costs the response no room.
	GRPCCode uint8
	// Phase names the scenario phase whose rules answered; nil outside a scenario. A pointer to
	// the table's name, so that the response stays in its size class and costs no allocation.
	Phase *string
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
	// CPU is the CPU time a request burns, by real computation on its goroutine, drawn like a
	// latency; the zero Latency burns none.
	CPU Latency
	// Memory is the bytes a request allocates, writes and holds until it is answered.
	Memory int64
	// Faults break the answers of their shares of requests (drawn with the error mix, before it);
	// the rates of both add up to at most 1.
	Faults []Fault
	// RateLimit is the rule's quota; zero is none.
	RateLimit RateLimit
	// GRPCCode is the gRPC code (1 to 16) a gRPC call gets when the rule answers Status; 0: the
	// code Status maps to. It is for the codes no HTTP status stands for (DATA_LOSS, ABORTED).
	GRPCCode uint8
}

// ErrorShare is one status of a rule's mix, answered to Rate of its requests.
type ErrorShare struct {
	Status   int
	Rate     float64
	GRPCCode uint8 // as Rule.GRPCCode, for this share's answers
}

// Options are what every rule of a table shares; each table has its own, so a reload can change
// them. The caller is not among them: it is the Router's for its whole life (New).
type Options struct {
	MaxHops int     // requests this many hops deep are answered 508 by rules with calls; 0: 10
	Random  *Random // source of every draw; nil: unseeded
	// Resident is a steady allocation the process holds, written so that it is resident, and Leak
	// a bounded per-request leak; Replace adjusts both to its options.
	Resident int64
	Leak     Leak
	// Burned is told of every request's burned CPU by its rule's ID, for the metrics; nil: no
	// one is.
	Burned func(routeID int, cpu time.Duration)
	// Phase names the scenario phase these rules belong to, for Response.Phase; "": none.
	Phase string
}

type rule struct {
	Rule
	match   Match
	latency sampler
	dist    Distribution // what latency draws from; DistNone when it is nil
	cpu     sampler
	// cost is whether the rule's requests cost anything (CPU, memory, the leak): a rule that
	// costs nothing pays one branch for the feature.
	cost    bool
	limiter *limiter // nil: no quota
}

// Router is anyroute's Service: it answers by a table of rules, and Replace swaps in another table
// while requests are answered. A request reads the table once, when it starts, so it runs under
// the rules it started with and never sees half of a new set.
type Router struct {
	caller Caller
	mem    *memory
	table  atomic.Pointer[table]
}

// table is one compiled set of rules with what they share.
type table struct {
	rules   []rule
	other   rule
	caller  Caller
	maxHops int
	random  *Random
	mem     *memory
	burned  func(int, time.Duration)
	leaks   bool   // every request keeps its share of the leak
	phase   string // the scenario phase of these rules
}

// New compiles the rules into a Router. Rules are tried in order; the first whose pattern and
// methods match answers. caller makes the calls of every table the Router will have; nil: no rule
// may have any.
func New(caller Caller, rules []Rule, o Options) (*Router, error) {
	r := &Router{caller: caller, mem: &memory{}}
	if err := r.Replace(rules, o); err != nil {
		return nil, err
	}
	return r, nil
}

// Replace compiles the rules and, when they all compile, makes them the ones every request from
// now on is answered by, their calls made by the Router's caller, and sizes the resident
// allocation and the leak to o (a leak whose settings change is given back). On an error the rules
// and the memory in use stay.
func (rt *Router) Replace(rules []Rule, o Options) error {
	t, err := compile(rules, o, rt.caller)
	if err != nil {
		return err
	}
	t.mem, t.burned, t.phase = rt.mem, o.Burned, o.Phase
	rt.mem.setResident(o.Resident)
	rt.mem.setLeak(o.Leak)
	rt.table.Store(t)
	return nil
}

// Memory returns the bytes the service holds now: per request, resident and leaked.
func (rt *Router) Memory() MemoryStats { return rt.mem.stats() }

// ReleaseLeak gives back what the leak kept, and returns how many bytes that was; the leak goes
// on with the requests that follow, up to its cap again.
func (rt *Router) ReleaseLeak() int64 { return rt.mem.releaseLeak() }

// Handle answers by the current table.
func (rt *Router) Handle(ctx context.Context, req Request) (Response, error) {
	t := rt.table.Load()
	resp, err := t.Handle(ctx, req)
	if t.phase != "" {
		resp.Phase = &t.phase
	}
	return resp, err
}

func compile(rules []Rule, o Options, caller Caller) (*table, error) {
	if o.MaxHops == 0 {
		o.MaxHops = 10
	}
	if o.Random == nil {
		o.Random = NewRandom(nil)
	}
	s := &table{other: rule{Rule: Rule{Name: OtherRoute, Status: 200}}, caller: caller, maxHops: o.MaxHops, random: o.Random,
		leaks: o.Leak.PerRequest > 0 && o.Leak.Max > 0}
	for i, r := range rules {
		m, err := ParseMatch(r.Match)
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		latency, err := r.Latency.compile()
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		if err := checkFaults(r.Faults); err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		lim, err := r.RateLimit.compile()
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): %w", i, r.Name, err)
		}
		cpu, err := r.CPU.compile()
		if err != nil {
			return nil, fmt.Errorf("route %d (%s): cpu: %w", i, r.Name, err)
		}
		if len(r.Calls) > 0 && caller == nil {
			return nil, fmt.Errorf("route %d (%s) makes calls, and the service has no caller", i, r.Name)
		}
		if r.Status == 0 {
			r.Status = 200
		}
		r.Faults = slices.Clone(r.Faults) // Response.Fault points into it: the caller's may change
		dist := DistNone
		if latency != nil {
			dist = distribution(r.Latency.Distribution)
		}
		s.rules = append(s.rules, rule{Rule: r, match: m, latency: latency, dist: dist, cpu: cpu, cost: cpu != nil || r.Memory > 0 || s.leaks, limiter: lim})
	}
	s.other.cost = s.leaks
	return s, nil
}

// Handle decides the answer. In order: a body too large (413) or unreadable (400) is refused at
// once, and so is a request past max_hops to a rule that makes calls (508: a route without calls
// ends any chain, so the hop header, which any client can send, cannot force an error there), one
// past the rule's quota (429) or with overrides the rule refuses (400); the rule's calls are made,
// then its latency waited for; the status is the override's, else a failed call's, else one draw
// picks a fault of the rule's, or a status of its error mix, or the rule's status. A request whose
// context ends during its calls or its delay is answered 499 (the client left), or 503 when the
// cause is ErrStopping (the server cut it).
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
	case int(req.Hops) >= s.maxHops && len(r.Calls) > 0: // only a route that calls can be part of a loop
		return refuse(StatusLoopDetected, ErrLoop)
	case r.limiter != nil && !r.limiter.bucket.Allow():
		return refuse(StatusTooManyRequests, r.limiter.refusal)
	}
	var o override
	if r.AllowOverrides {
		var err error
		if o, err = parseOverride(req, r.MaxDelay); err != nil {
			return refuse(400, err)
		}
	}

	if r.cost {
		held, used := s.spend(r)
		resp.CPU = used
		defer s.mem.drop(held)
	}
	var callErr *CallError
	if len(r.Calls) > 0 {
		resp.Calls, callErr = s.makeCalls(ctx, r, req, resp.RequestID)
		if ctx.Err() != nil { // the calls were cut by the request's end, not failed by the upstream
			return ended(ctx, resp)
		}
	}
	d, q, dist := s.delay(r, o)
	resp.Quantile, resp.Distribution = float32(q), dist
	if d > 0 {
		t := time.NewTimer(d)
		begin := time.Now()
		select {
		case <-t.C:
			resp.Delay = d
		case <-ctx.Done():
			t.Stop()
			resp.Delay = time.Since(begin)
			return ended(ctx, resp)
		}
	}
	switch {
	case o.status != 0:
		resp.Status = o.status
	case callErr != nil:
		resp.Status, resp.Err, resp.Padding = callErr.status(), callErr, 0
	default:
		fault, share := s.drawAnswer(r)
		switch {
		case fault != nil:
			resp.Fault = fault
		case share != nil:
			resp.Status, resp.Err, resp.Padding, resp.GRPCCode = share.Status, ErrInjected, 0, share.GRPCCode
		default:
			resp.GRPCCode = r.GRPCCode
		}
	}
	return resp, nil
}

// ended answers a request whose context ended while it waited, for its calls or its delay: 499
// when the client left, 503 when the server cut it (the cause ErrStopping), so that what is
// counted is what happened to the request, whatever it was waiting for.
func ended(ctx context.Context, resp Response) (Response, error) {
	resp.Status, resp.Padding = StatusClientClosed, 0
	if cause := context.Cause(ctx); errors.Is(cause, ErrStopping) {
		resp.Status, resp.Err = 503, ErrStopping
		return resp, cause
	}
	return resp, ctx.Err()
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

// spend pays a request's cost: keeps the leak's share, allocates the rule's memory (returned, for
// the caller to drop when the request is answered) and burns its CPU (the time burned returned).
func (s *table) spend(r *rule) ([]byte, time.Duration) {
	if s.leaks {
		s.mem.leakOne()
	}
	var held []byte
	if r.Memory > 0 {
		held = s.mem.hold(r.Memory)
	}
	var used time.Duration
	if r.cpu != nil {
		d, _ := r.cpu(s.random)
		used = burn(d)
		if s.burned != nil {
			s.burned(r.ID, used)
		}
	}
	return held, used
}

// delay is the override's, else a draw from the rule's latency, with the draw's quantile and what
// it was drawn from.
func (s *table) delay(r *rule, o override) (time.Duration, float64, Distribution) {
	switch {
	case o.hasDelay:
		return o.delay, 0, DistOverride
	case r.latency != nil:
		d, q := r.latency(s.random)
		if !r.dist.Spread() {
			q = 0
		}
		return d, q, r.dist
	}
	return 0, 0, DistNone
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
