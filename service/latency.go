package service

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Latency is how long a rule's simulated work takes, drawn per request from a distribution.
type Latency struct {
	// Distribution is one of:
	//   fixed        Delay, always
	//   uniform      Delay ± Jitter, uniformly
	//   normal       Mean and StdDev
	//   lognormal    Median and P99: the long tail of real services
	//   percentiles  P50, P90 and P99, interpolated linearly between them
	Distribution string
	Delay        time.Duration
	Jitter       time.Duration
	Mean, StdDev time.Duration
	Median       time.Duration
	P50, P90     time.Duration
	P99          time.Duration
	// Max caps every draw; 0 is no cap beyond what the distribution itself bounds.
	Max time.Duration
}

// Check reports what is wrong with the distribution's parameters, nil when nothing is.
func (l Latency) Check() error {
	_, err := l.compile()
	return err
}

// Bound returns the longest latency the distribution can draw, and false for one without a bound
// (normal or lognormal without Max).
func (l Latency) Bound() (time.Duration, bool) {
	var most time.Duration
	switch l.Distribution {
	case "", "fixed":
		most = l.Delay
	case "uniform":
		most = l.Delay + l.Jitter
		if most < l.Delay {
			most = math.MaxInt64 // overflowed: no duration holds it
		}
	case "percentiles":
		most = time.Duration(percentileKnots(l).v[4])
	default:
		if l.Max <= 0 {
			return 0, false
		}
		return l.Max, true
	}
	if l.Max > 0 {
		most = min(most, l.Max)
	}
	return most, true
}

// z99 is the standard normal quantile of 0.99: a lognormal's p99 is its median times e^(σ·z99).
const z99 = 2.3263478740408408

// sampler draws one latency; nil means the rule waits for nothing.
type sampler func(*Random) time.Duration

// compile checks the distribution's parameters and returns its sampler.
func (l Latency) compile() (sampler, error) {
	var draw func(*Random) float64 // nanoseconds, before the cap
	switch l.Distribution {
	case "", "fixed":
		if l.Delay == 0 {
			return nil, nil
		}
		d := float64(l.Delay)
		draw = func(*Random) float64 { return d }
	case "uniform":
		d, j := float64(l.Delay), float64(l.Jitter)
		draw = func(r *Random) float64 { return d + (2*r.Float64()-1)*j }
	case "normal":
		m, sd := float64(l.Mean), float64(l.StdDev)
		draw = func(r *Random) float64 { return m + sd*r.NormFloat64() }
	case "lognormal":
		if l.Median <= 0 || l.P99 < l.Median {
			return nil, fmt.Errorf("lognormal latency needs 0 < median <= p99, got median %s and p99 %s", l.Median, l.P99)
		}
		mu := math.Log(float64(l.Median))
		sigma := (math.Log(float64(l.P99)) - mu) / z99
		draw = func(r *Random) float64 { return math.Exp(mu + sigma*r.NormFloat64()) }
	case "percentiles":
		if l.P50 < 0 || l.P50 > l.P90 || l.P90 > l.P99 {
			return nil, fmt.Errorf("percentiles need p50 <= p90 <= p99, got %s, %s, %s", l.P50, l.P90, l.P99)
		}
		q := percentileKnots(l)
		draw = func(r *Random) float64 { return q.at(r.Float64()) }
	default:
		return nil, fmt.Errorf("unknown latency distribution %q", l.Distribution)
	}
	most := math.MaxInt64 / 2.0 // far past any timeout, and no overflow converting back
	if l.Max > 0 {
		most = float64(l.Max)
	}
	return func(r *Random) time.Duration {
		return time.Duration(min(max(draw(r), 0), most))
	}, nil
}

// knots is an inverse distribution function as straight lines between (quantile, value) points.
type knots struct{ q, v [5]float64 }

// percentileKnots puts the configured percentiles at 0.5, 0.9 and 0.99, and the ends at 0 and 1
// as far below p50 as p90 is above it, and as far above p99 as p99 is above p90, so that the
// draws' own percentiles are the configured ones.
func percentileKnots(l Latency) knots {
	p50, p90, p99 := float64(l.P50), float64(l.P90), float64(l.P99)
	return knots{
		q: [5]float64{0, 0.5, 0.9, 0.99, 1},
		v: [5]float64{max(2*p50-p90, 0), p50, p90, p99, p99 + (p99 - p90)},
	}
}

func (k knots) at(u float64) float64 {
	for i := 1; i < len(k.q); i++ {
		if u <= k.q[i] {
			f := (u - k.q[i-1]) / (k.q[i] - k.q[i-1])
			return k.v[i-1] + f*(k.v[i]-k.v[i-1])
		}
	}
	return k.v[len(k.v)-1]
}

// Random is the source of every draw the service makes (latency, status mixes). Unseeded it is
// math/rand/v2's global source, which needs no lock; seeded, its draws follow from the seed in the
// order requests make them, so a run with one client in sequence repeats exactly.
type Random struct {
	mu sync.Mutex
	r  *rand.Rand // nil: the global source
}

// NewRandom returns a source seeded with seed, or the unseeded one when seed is nil.
func NewRandom(seed *uint64) *Random {
	if seed == nil {
		return &Random{}
	}
	return &Random{r: rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))}
}

// Float64 returns a number in [0, 1).
func (g *Random) Float64() float64 {
	if g.r == nil {
		return rand.Float64()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Float64()
}

// NormFloat64 returns a standard normal number.
func (g *Random) NormFloat64() float64 {
	if g.r == nil {
		return rand.NormFloat64()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.NormFloat64()
}
