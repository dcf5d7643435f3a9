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
		out[i] = draw(r)
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
