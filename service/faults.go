package service

import (
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// FaultKind is how an injected fault breaks an answer. The service only decides that a request
// gets one (Response.Fault); the transport, which holds the connection, carries it out.
type FaultKind uint8

// The faults a rule can inject, as real networks and crashing servers fail.
const (
	FaultNone      FaultKind = iota
	FaultReset               // the connection reset (TCP RST) instead of an answer
	FaultClose               // the connection closed (FIN) without an answer
	FaultHang                // no answer until the client leaves or the write timeout passes
	FaultSlowBody            // the answer, its body dribbled at BytesPerSecond
	FaultTruncate            // fewer body bytes than Content-Length, then the connection closed
	FaultMalformed           // bytes that are not an HTTP response, then the connection closed
)

// faultNames are the kinds as the config and the metrics' code label name them.
var faultNames = [...]string{"", "reset", "close", "hang", "slow_body", "truncate", "malformed"}

// FaultKinds are the kinds a rule can inject, in the order of their values.
var FaultKinds = [...]FaultKind{FaultReset, FaultClose, FaultHang, FaultSlowBody, FaultTruncate, FaultMalformed}

func (k FaultKind) String() string {
	if int(k) < len(faultNames) {
		return faultNames[k]
	}
	return fmt.Sprintf("fault(%d)", uint8(k))
}

// Fails reports whether a fault of kind k fails its request as the client sees it: no answer, or
// one it cannot use. Every kind does but slow_body, whose client gets the whole answer, only late.
// The tracing decorator marks these spans as errors; the dashboards and alerts count them as errors
// (instrumenting.ErrorCodes).
func (k FaultKind) Fails() bool { return k != FaultNone && k != FaultSlowBody }

// ParseFaultKind returns the kind a config names, and false for a name that is none.
func ParseFaultKind(name string) (FaultKind, bool) {
	for _, k := range FaultKinds {
		if faultNames[k] == name {
			return k, true
		}
	}
	return FaultNone, false
}

// Fault is one fault of a rule, injected into Rate of its requests.
type Fault struct {
	Kind FaultKind
	Rate float64
	// BytesPerSecond is how fast a slow_body fault writes the body.
	BytesPerSecond int
}

// RateLimit is a rule's quota: RPS requests a second on average, Burst at once after a pause.
// Requests past it are answered 429 at once, with no calls and no latency.
type RateLimit struct {
	RPS   float64
	Burst int
}

// ErrRateLimited is the business error of a request refused by its rule's quota.
var ErrRateLimited = errors.New("rate limit exceeded")

// RateLimitError is ErrRateLimited with when to try again: the transport answers it as a
// Retry-After header. It is made once per rule, so a refusal allocates nothing.
type RateLimitError struct {
	RetryAfter time.Duration // whole seconds, at least 1
}

func (e *RateLimitError) Error() string { return ErrRateLimited.Error() }

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// StatusTooManyRequests is the status of a request refused by its rule's quota.
const StatusTooManyRequests = 429

// limiter is a compiled RateLimit: the token bucket and the refusal every refused request shares.
type limiter struct {
	bucket  *rate.Limiter
	refusal *RateLimitError
}

// compile checks the quota; a zero RateLimit is none (nil).
func (l RateLimit) compile() (*limiter, error) {
	switch {
	case l.RPS == 0 && l.Burst == 0:
		return nil, nil
	case !(l.RPS > 0) || math.IsInf(l.RPS, 0):
		return nil, fmt.Errorf("rate_limit: rps %g: want a positive number", l.RPS)
	case l.Burst < 1:
		return nil, fmt.Errorf("rate_limit: burst %d: want at least 1", l.Burst)
	}
	// Retry-After is in whole seconds: the longest wait for the next token, rounded up, so a
	// client that waits that long finds one unless others took it first.
	wait := time.Duration(math.Ceil(1/l.RPS)) * time.Second
	return &limiter{bucket: rate.NewLimiter(rate.Limit(l.RPS), l.Burst), refusal: &RateLimitError{RetryAfter: max(wait, time.Second)}}, nil
}

// checkFaults reports what is wrong with a rule's faults.
func checkFaults(faults []Fault) error {
	for i, f := range faults {
		switch {
		case f.Kind == FaultNone || int(f.Kind) >= len(faultNames):
			return fmt.Errorf("fault %d: unknown kind %d", i, f.Kind)
		case !(f.Rate >= 0 && f.Rate <= 1):
			return fmt.Errorf("fault %d (%s): rate %g: want a share from 0 to 1", i, f.Kind, f.Rate)
		case f.Kind == FaultSlowBody && f.BytesPerSecond < 1:
			return fmt.Errorf("fault %d (slow_body): bytes_per_second %d: want at least 1", i, f.BytesPerSecond)
		}
	}
	return nil
}

// drawAnswer draws, once, which of the rule's faults or error statuses a request gets: the faults
// take the first shares of [0, 1) in the rule's order, the error mix the shares after them, and
// the rest of the draws answer the rule's status. A rule with neither draws nothing, so adding
// faults to one rule leaves the seeded draws of the others as they were, and a rule with errors
// and no faults draws exactly as before faults existed.
func (s *table) drawAnswer(r *rule) (*Fault, *ErrorShare) {
	if len(r.Errors) == 0 && len(r.Faults) == 0 {
		return nil, nil
	}
	u, sum := s.random.Float64(), 0.0
	for i := range r.Faults {
		if sum += r.Faults[i].Rate; u < sum {
			return &r.Faults[i], nil
		}
	}
	for i := range r.Errors {
		if sum += r.Errors[i].Rate; u < sum {
			return nil, &r.Errors[i]
		}
	}
	return nil, nil
}
