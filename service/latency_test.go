package service

import (
	"math"
	"slices"
	"testing"
	"time"
)

// quantile returns the q-quantile of sorted samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(math.Round(q*float64(len(sorted)-1)))]
}

func draws(t *testing.T, l Latency, n int) []time.Duration {
	t.Helper()
	draw, err := l.compile()
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(42)
	r := NewRandom(&seed)
	out := make([]time.Duration, n)
	for i := range out {
		out[i], _ = draw(r)
	}
	slices.Sort(out)
	return out
}

func within(got, want time.Duration, tolerance float64) bool {
	return math.Abs(float64(got-want)) <= tolerance*float64(want)
}

// atRank reports whether the share of sorted draws at or below v is q within 5 standard errors
// (sqrt(q(1-q)/n)): the configured q-quantile sits where it should in the draws. A tolerance on the
// value itself would depend on the density there (steep past p90).
func atRank(sorted []time.Duration, v time.Duration, q float64) bool {
	n := float64(len(sorted))
	below, _ := slices.BinarySearch(sorted, v+1)
	return math.Abs(float64(below)/n-q) <= 5*math.Sqrt(q*(1-q)/n)
}

// TestDistributionsMatchTheirParameters draws 10,000 seeded samples of each distribution: the
// share of draws at or below each configured quantile is that quantile's within 5 standard errors,
// the mean and standard deviation of the normal are within 3% and 5%, and the cap holds.
func TestDistributionsMatchTheirParameters(t *testing.T) {
	const n = 10000
	ms := time.Millisecond
	t.Run("fixed", func(t *testing.T) {
		s := draws(t, Latency{Distribution: "fixed", Delay: 20 * ms}, n)
		if s[0] != 20*ms || s[n-1] != 20*ms {
			t.Fatalf("range %v..%v", s[0], s[n-1])
		}
	})
	t.Run("uniform", func(t *testing.T) {
		s := draws(t, Latency{Distribution: "uniform", Delay: 20 * ms, Jitter: 5 * ms}, n)
		if s[0] < 15*ms || s[n-1] > 25*ms || !atRank(s, 20*ms, 0.5) || !atRank(s, 24*ms, 0.9) {
			t.Fatalf("range %v..%v, p50 %v, p90 %v", s[0], s[n-1], quantile(s, 0.5), quantile(s, 0.9))
		}
	})
	t.Run("normal", func(t *testing.T) {
		s := draws(t, Latency{Distribution: "normal", Mean: 100 * ms, StdDev: 10 * ms}, n)
		var sum, sq float64
		for _, d := range s {
			sum += float64(d)
		}
		mean := sum / n
		for _, d := range s {
			sq += (float64(d) - mean) * (float64(d) - mean)
		}
		sd := time.Duration(math.Sqrt(sq / n))
		// p90 of a normal is mean + 1.2816 stddev.
		if !within(time.Duration(mean), 100*ms, 0.03) || !within(sd, 10*ms, 0.05) || !atRank(s, 112816*time.Microsecond, 0.9) {
			t.Fatalf("mean %v, stddev %v, p90 %v", time.Duration(mean), sd, quantile(s, 0.9))
		}
	})
	t.Run("lognormal", func(t *testing.T) {
		s := draws(t, Latency{Distribution: "lognormal", Median: 50 * ms, P99: 400 * ms}, n)
		if !atRank(s, 50*ms, 0.5) || !atRank(s, 400*ms, 0.99) {
			t.Fatalf("p50 %v, p99 %v; want 50ms and 400ms", quantile(s, 0.5), quantile(s, 0.99))
		}
	})
	t.Run("percentiles", func(t *testing.T) {
		s := draws(t, Latency{Distribution: "percentiles", P50: 10 * ms, P90: 40 * ms, P99: 200 * ms}, n)
		if !atRank(s, 10*ms, 0.5) || !atRank(s, 40*ms, 0.9) || !atRank(s, 200*ms, 0.99) {
			t.Fatalf("p50 %v, p90 %v, p99 %v; want 10ms, 40ms, 200ms", quantile(s, 0.5), quantile(s, 0.9), quantile(s, 0.99))
		}
		if most, _ := (Latency{Distribution: "percentiles", P50: 10 * ms, P90: 40 * ms, P99: 200 * ms}).Bound(); s[n-1] > most {
			t.Fatalf("a draw of %v past the bound %v", s[n-1], most)
		}
	})
	t.Run("max caps the tail", func(t *testing.T) {
		s := draws(t, Latency{Distribution: "lognormal", Median: 50 * ms, P99: 400 * ms, Max: 100 * ms}, n)
		if s[n-1] != 100*ms || !atRank(s, 50*ms, 0.5) {
			t.Fatalf("max draw %v, p50 %v", s[n-1], quantile(s, 0.5))
		}
	})
	t.Run("normal never negative", func(t *testing.T) {
		if s := draws(t, Latency{Distribution: "normal", Mean: ms, StdDev: 10 * ms}, n); s[0] < 0 {
			t.Fatalf("a negative draw %v", s[0])
		}
	})
}

func TestSeedRepeatsTheDraws(t *testing.T) {
	l := Latency{Distribution: "lognormal", Median: 50 * time.Millisecond, P99: 400 * time.Millisecond}
	a, b := draws(t, l, 100), draws(t, l, 100)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed drew different latencies")
	}
}

func TestBadDistributionsAreRefused(t *testing.T) {
	for _, l := range []Latency{
		{Distribution: "lognormal", Median: 0, P99: time.Second},
		{Distribution: "lognormal", Median: time.Second, P99: time.Millisecond},
		{Distribution: "percentiles", P50: time.Second, P90: time.Millisecond, P99: time.Second},
		{Distribution: "pareto"},
	} {
		if err := l.Check(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

// TestDrawsTellTheirQuantile: the quantile a draw reports is where the draw lies in its
// distribution: the distribution's inverse at that quantile gives back the draw (up to float
// rounding), and over many draws the quantiles are uniform (a tenth below 0.1, a tenth above 0.9),
// with no extra random number drawn (the seeded sequence is the one the durations alone draw).
func TestDrawsTellTheirQuantile(t *testing.T) {
	const n = 10000
	ms := float64(time.Millisecond)
	probit := func(q float64) float64 { return math.Sqrt2 * math.Erfinv(2*q-1) }
	mu, sigma := math.Log(20*ms), (math.Log(80*ms)-math.Log(20*ms))/z99
	pk := percentileKnots(Latency{P50: 10 * time.Millisecond, P90: 30 * time.Millisecond, P99: 90 * time.Millisecond})
	for _, tt := range []struct {
		l       Latency
		inverse func(q float64) float64 // nanoseconds
	}{
		{Latency{Distribution: "uniform", Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond},
			func(q float64) float64 { return 20*ms + (2*q-1)*10*ms }},
		{Latency{Distribution: "normal", Mean: 50 * time.Millisecond, StdDev: 10 * time.Millisecond},
			func(q float64) float64 { return 50*ms + 10*ms*probit(q) }},
		{Latency{Distribution: "lognormal", Median: 20 * time.Millisecond, P99: 80 * time.Millisecond},
			func(q float64) float64 { return math.Exp(mu + sigma*probit(q)) }},
		{Latency{Distribution: "percentiles", P50: 10 * time.Millisecond, P90: 30 * time.Millisecond, P99: 90 * time.Millisecond},
			pk.at},
	} {
		t.Run(tt.l.Distribution, func(t *testing.T) {
			draw, err := tt.l.compile()
			if err != nil {
				t.Fatal(err)
			}
			seed := uint64(7)
			r, again := NewRandom(&seed), NewRandom(&seed)
			low, high := 0, 0
			for range n {
				d, q := draw(r)
				if want := tt.inverse(q); math.Abs(float64(d)-want) > 1e-6*want+1 {
					t.Fatalf("drew %v at quantile %v; the distribution has %v there", d, q, time.Duration(want))
				}
				if q < 0.1 {
					low++
				} else if q > 0.9 {
					high++
				}
				// The same sequence, one variate a draw: the two stay in step only if draw took one.
				if tt.l.Distribution == "uniform" || tt.l.Distribution == "percentiles" {
					again.Float64()
				} else {
					again.NormFloat64()
				}
			}
			if next, want := r.Float64(), again.Float64(); next != want {
				t.Fatalf("the draws took more random numbers than one each: next %v, want %v", next, want)
			}
			// A tenth each within 5 standard errors (sqrt(0.1*0.9/n) = 0.003).
			for name, got := range map[string]int{"below 0.1": low, "above 0.9": high} {
				if share := float64(got) / n; math.Abs(share-0.1) > 0.015 {
					t.Errorf("%.3f of the quantiles %s, want 0.1", share, name)
				}
			}
		})
	}
}

// Quantile, Average and Above describe the distribution the sampler draws from: the share of
// 100,000 seeded draws above a bound is Above's within 5 standard errors, and their mean is
// Average's within 1 %, for every distribution.
func TestQuantileDescribesTheDraws(t *testing.T) {
	ms := time.Millisecond
	cases := []Latency{
		{Distribution: "fixed", Delay: 5 * ms},
		{Distribution: "uniform", Delay: 20 * ms, Jitter: 10 * ms},
		{Distribution: "normal", Mean: 100 * ms, StdDev: 30 * ms},
		{Distribution: "lognormal", Median: 400 * ms, P99: 2 * time.Second, Max: 9 * time.Second},
		{Distribution: "percentiles", P50: 50 * ms, P90: 200 * ms, P99: 800 * ms},
	}
	seed := uint64(3)
	for _, l := range cases {
		draw, err := l.compile()
		if err != nil {
			t.Fatal(err)
		}
		r := NewRandom(&seed)
		const n = 100000
		bound := l.Quantile(0.8)
		above, sum := 0, 0.0
		for range n {
			d, _ := draw(r)
			sum += float64(d)
			if d > bound {
				above++
			}
		}
		p := l.Above(bound)
		se := math.Sqrt(max(p*(1-p), 1e-6) / n)
		if got := float64(above) / n; math.Abs(got-p) > 5*se {
			t.Errorf("%s: %.4f of the draws above %s, Above says %.4f", l.Distribution, got, bound, p)
		}
		if mean, avg := sum/n, float64(l.Average()); math.Abs(mean-avg) > 0.01*avg {
			t.Errorf("%s: the draws average %s, Average says %s", l.Distribution, time.Duration(mean), time.Duration(avg))
		}
	}
	// Worked by hand: a lognormal's median is its 0.5 quantile and its p99 the 0.99; half of a
	// uniform 20 ± 10 ms lies above 20 ms, a quarter above 25; a fixed delay is never above itself.
	l := Latency{Distribution: "lognormal", Median: 400 * ms, P99: 2 * time.Second}
	if q := l.Quantile(0.5); q < 399*ms || q > 401*ms {
		t.Errorf("lognormal median: %s", q)
	}
	if p := l.Above(2 * time.Second); math.Abs(p-0.01) > 1e-6 {
		t.Errorf("lognormal above its p99: %v", p)
	}
	u := Latency{Distribution: "uniform", Delay: 20 * ms, Jitter: 10 * ms}
	if p := u.Above(25 * ms); math.Abs(p-0.25) > 1e-6 {
		t.Errorf("uniform above 25 ms: %v", p)
	}
	if p := (Latency{Distribution: "fixed", Delay: 5 * ms}).Above(5 * ms); p != 0 {
		t.Errorf("fixed above itself: %v", p)
	}
}
