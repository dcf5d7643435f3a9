package tracing

import (
	"fmt"
	"math/rand/v2"

	"golang.org/x/time/rate"

	"github.com/anyroute/anyroute/config"
)

// Sampler is the head decision for a request that starts a trace: whether it is traced at all. It
// is made before any span exists, so a request it turns down costs a random draw (or a token
// bucket's check) and nothing of the tracing library; a request that continues a caller's trace
// follows the caller's decision instead, which the backend reads from the trace context. It must
// be safe for concurrent use.
type Sampler func() bool

// Always samples every trace: const 1.
func Always() bool { return true }

// Never samples none: const 0.
func Never() bool { return false }

// NewSampler returns the sampler of the config: const (param ≥ 1 samples all, anything else none),
// probabilistic (each trace with probability param) or ratelimiting (param traces a second, in
// bursts of at most param).
func NewSampler(s config.Sampler) (Sampler, error) {
	switch s.Type {
	case "const":
		if s.Param >= 1 {
			return Always, nil
		}
		return Never, nil
	case "probabilistic":
		switch p := s.Param; {
		case p >= 1:
			return Always, nil
		case p <= 0:
			return Never, nil
		default:
			// math/rand/v2's top-level functions draw from a per-thread generator: no lock.
			return func() bool { return rand.Float64() < p }, nil
		}
	case "ratelimiting":
		l := rate.NewLimiter(rate.Limit(s.Param), max(int(s.Param), 1))
		return l.Allow, nil
	}
	return nil, fmt.Errorf("unknown sampler type %q", s.Type)
}

// nonZero returns a random id for a trace or span that is not sampled: zero is invalid in every
// format.
func nonZero() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}
