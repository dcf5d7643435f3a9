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
		most = AddSaturating(l.Delay, l.Jitter)
	case "percentiles":
		most = saturate(percentileKnots(l).v[4])
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

// sampler draws one latency, with its quantile: where the draw lies in its distribution (see
// Response.Quantile); nil means the rule waits for nothing.
type sampler func(*Random) (time.Duration, float64)

// Distribution is what a request's delay was drawn from, for the decorators outside: the tracing
// one tags its spans with it, so that a slow request's trace says whether its rule's tail or the
// request itself chose the delay. A byte, since it rides in every Response.
type Distribution uint8

// The distributions of Latency, and the override's.
const (
	DistNone        Distribution = iota // the request waited for nothing
	DistFixed                           // Latency's "fixed" (or "")
	DistUniform                         // "uniform"
	DistNormal                          // "normal"
	DistLognormal                       // "lognormal"
	DistPercentiles                     // "percentiles"
	DistOverride                        // the request chose its delay (x-anyroute-delay, ?delay=)
)

var distributionNames = [...]string{"", "fixed", "uniform", "normal", "lognormal", "percentiles", "override"}

// String returns the distribution's name as the config spells it, "override" for a delay the
// request chose, and "" for DistNone.
func (d Distribution) String() string {
	if int(d) < len(distributionNames) {
		return distributionNames[d]
	}
	return ""
}

// Spread reports whether the distribution's draws differ, so that a draw has a quantile worth
// telling: not for a fixed delay, nor for one the request chose.
func (d Distribution) Spread() bool { return d >= DistUniform && d <= DistPercentiles }

// distribution returns the Distribution of the config's name (unknown names are compile's to refuse).
func distribution(name string) Distribution {
	for i, n := range distributionNames[1:DistOverride] {
		if n == name {
			return Distribution(i + 1)
		}
	}
	return DistFixed // "" is fixed
}

// normalCDF is the standard normal distribution function: the quantile of a normal variate.
func normalCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// compile checks the distribution's parameters and returns its sampler.
func (l Latency) compile() (sampler, error) {
	for _, d := range []time.Duration{l.Delay, l.Jitter, l.Mean, l.StdDev, l.Median, l.P50, l.P90, l.P99, l.Max} {
		if d < 0 {
			return nil, fmt.Errorf("latency durations must not be negative, got %s", d)
		}
	}
	// draw returns nanoseconds, before the cap, and the quantile of the draw, from the variate it
	// was made of (the uniform one, or Φ of the normal one): no draw costs another random number.
	// The quantile is the uncapped draw's: a draw the cap or 0 cut still says how far out it fell.
	var draw func(*Random) (float64, float64)
	switch l.Distribution {
	case "", "fixed":
		if l.Delay == 0 {
			return nil, nil
		}
		d := float64(l.Delay)
		draw = func(*Random) (float64, float64) { return d, 0 }
	case "uniform":
		d, j := float64(l.Delay), float64(l.Jitter)
		draw = func(r *Random) (float64, float64) { u := r.Float64(); return d + (2*u-1)*j, u }
	case "normal":
		m, sd := float64(l.Mean), float64(l.StdDev)
		draw = func(r *Random) (float64, float64) { z := r.NormFloat64(); return m + sd*z, normalCDF(z) }
	case "lognormal":
		if l.Median <= 0 || l.P99 < l.Median {
			return nil, fmt.Errorf("lognormal latency needs 0 < median <= p99, got median %s and p99 %s", l.Median, l.P99)
		}
		mu := math.Log(float64(l.Median))
		sigma := (math.Log(float64(l.P99)) - mu) / z99
		draw = func(r *Random) (float64, float64) { z := r.NormFloat64(); return math.Exp(mu + sigma*z), normalCDF(z) }
	case "percentiles":
		if l.P50 < 0 || l.P50 > l.P90 || l.P90 > l.P99 {
			return nil, fmt.Errorf("percentiles need p50 <= p90 <= p99, got %s, %s, %s", l.P50, l.P90, l.P99)
		}
		q := percentileKnots(l)
		draw = func(r *Random) (float64, float64) { u := r.Float64(); return q.at(u), u }
	default:
		return nil, fmt.Errorf("unknown latency distribution %q", l.Distribution)
	}
	// Every draw is capped at the bound, so that no rounding of the floats a draw is made of can
	// take it past what Bound promises and the config checks against http.write_timeout. The cap
	// is applied in integers: float64(most) may round above most, and a float of 2^63 or more
	// does not convert to a duration at all.
	most, bounded := l.Bound()
	if !bounded {
		most = math.MaxInt64
	}
	top := float64(most)
	return func(r *Random) (time.Duration, float64) {
		switch v, q := draw(r); {
		case !(v > 0): // NaN too
			return 0, q
		case v >= top:
			return most, q
		default:
			return min(time.Duration(v), most), q
		}
	}, nil
}

// AddSaturating returns a+b, or the longest duration when the sum does not fit: a bound that
// wraps negative would pass every comparison with a timeout.
func AddSaturating(a, b time.Duration) time.Duration {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}

// saturate converts nanoseconds to a duration, the longest one for a value past it: Go's
// conversion of such a float is undefined (on amd64 it is the most negative duration).
func saturate(ns float64) time.Duration {
	if ns >= math.MaxInt64 { // float64(MaxInt64) is 2^63, itself past the largest duration
		return math.MaxInt64
	}
	return time.Duration(max(ns, 0))
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

// Quantile is the latency at quantile u (0 to 1) of the distribution, capped as draws are: the
// inverse of its distribution function, from the same parameters the sampler draws with. It lets a
// model (anyroute predict) reason about a rule's latency and CPU cost without drawing.
func (l Latency) Quantile(u float64) time.Duration {
	u = min(max(u, 0), 1)
	var v float64
	switch l.Distribution {
	case "", "fixed":
		v = float64(l.Delay)
	case "uniform":
		v = float64(l.Delay) + (2*u-1)*float64(l.Jitter)
	case "normal":
		v = float64(l.Mean) + float64(l.StdDev)*normalQuantile(u)
	case "lognormal":
		if l.Median <= 0 {
			return 0
		}
		mu := math.Log(float64(l.Median))
		sigma := (math.Log(float64(max(l.P99, l.Median))) - mu) / z99
		v = math.Exp(mu + sigma*normalQuantile(u))
	case "percentiles":
		v = percentileKnots(l).at(u)
	}
	most, bounded := l.Bound()
	if !bounded {
		most = math.MaxInt64
	}
	switch {
	case !(v > 0):
		return 0
	case v >= float64(most):
		return most
	}
	return min(time.Duration(v), most)
}

// normalQuantile is the standard normal quantile of u; ±Inf at 0 and 1.
func normalQuantile(u float64) float64 { return math.Sqrt2 * math.Erfinv(2*u-1) }

// quantileSteps is how finely Average integrates the quantile function.
const quantileSteps = 20000

// Average is the distribution's mean, capped draws included, integrated over its quantiles.
func (l Latency) Average() time.Duration {
	sum := 0.0
	for i := range quantileSteps {
		sum += float64(l.Quantile((float64(i) + 0.5) / quantileSteps))
	}
	return time.Duration(sum / quantileSteps)
}

// Above is the share of draws longer than d.
func (l Latency) Above(d time.Duration) float64 {
	if l.Quantile(1) <= d {
		return 0
	}
	if l.Quantile(0) > d {
		return 1
	}
	lo, hi := 0.0, 1.0 // Quantile(lo) <= d < Quantile(hi)
	for range 60 {
		mid := (lo + hi) / 2
		if l.Quantile(mid) <= d {
			lo = mid
		} else {
			hi = mid
		}
	}
	return 1 - lo
}
