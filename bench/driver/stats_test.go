package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMedian(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if m := Median(xs); m != 3 {
		t.Errorf("median of %v = %v, want 3", xs, m)
	}
	if !slices.Equal(xs, []float64{5, 1, 4, 2, 3}) {
		t.Errorf("Median reordered its input: %v", xs)
	}
	if m := Median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of an even count = %v, want 2.5", m)
	}
	if m := Median(nil); !math.IsNaN(m) {
		t.Errorf("median of none = %v, want NaN", m)
	}
}

func TestBinomialCDF(t *testing.T) {
	for _, c := range []struct {
		k, n int
		want float64
	}{
		{-1, 10, 0}, {0, 1, 0.5}, {0, 5, 1.0 / 32}, {1, 9, 10.0 / 512}, {5, 20, 21700.0 / 1048576}, {20, 20, 1},
	} {
		if got := binomialCDF(c.k, c.n); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("P(B(%d, ½) ≤ %d) = %v, want %v", c.n, c.k, got, c.want)
		}
	}
	// Large n must not overflow: symmetric, so P(B ≤ n/2 − 1) + P(B ≤ n/2) = 1 for even n.
	if s := binomialCDF(199, 400) + binomialCDF(200, 400); math.Abs(s-1) > 1e-9 {
		t.Errorf("n=400: the two halves sum to %v", s)
	}
}

// ranks is 1..n shuffled, so that the k-th smallest is k.
func ranks(n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	return xs
}

// TestEstimatedOrderStatistics: the interval is the textbook one, the k-th smallest and largest
// with k the largest whose coverage stays at least 95%.
func TestEstimatedOrderStatistics(t *testing.T) {
	for _, c := range []struct {
		n      int
		lo, hi float64
		ok     bool
	}{
		{5, 1, 5, false}, // 1 − 2/32 = 0.9375: five pairs cannot give 95%
		{6, 1, 6, true},  // 1 − 2/64 = 0.969
		{9, 2, 8, true},  // 1 − 2·10/512 = 0.961
		{20, 6, 15, true},
		{40, 14, 27, true},
	} {
		e := Estimated(ranks(c.n))
		if e.Lo != c.lo || e.Hi != c.hi || e.OK() != c.ok {
			t.Errorf("n=%d: interval [%v, %v] ok=%v (coverage %.4f), want [%v, %v] ok=%v", c.n, e.Lo, e.Hi, e.OK(), e.Coverage, c.lo, c.hi, c.ok)
		}
		if e.Median != float64(c.n+1)/2 {
			t.Errorf("n=%d: median %v", c.n, e.Median)
		}
		// One rank further in must fall under 95%: k is the largest that keeps it.
		if k := int(c.lo); c.ok && 1-2*binomialCDF(k, c.n) >= Confidence {
			t.Errorf("n=%d: k=%d is not the largest with 95%% coverage", c.n, k)
		}
	}
	if e := Estimated(nil); e.OK() || e.Conclusive() {
		t.Errorf("no pairs gave a usable estimate: %+v", e)
	}
}

// TestEstimatedCovers: over many samples of a skewed distribution, the interval holds the true
// median at least about 95% of the time, as a distribution-free interval must.
func TestEstimatedCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	trueMedian := math.Ln2 // of the exponential distribution with rate 1
	const trials = 4000
	for _, n := range []int{8, 20, 31} {
		covered := 0
		for range trials {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = rng.ExpFloat64()
			}
			if e := Estimated(xs); e.Lo <= trueMedian && trueMedian <= e.Hi {
				covered++
			}
		}
		// The binomial interval is conservative; 0.93 leaves room for the trials' own spread
		// (about ±0.004 here) while a wrong k (e.g. one rank too far in) drops under it.
		if share := float64(covered) / trials; share < 0.93 {
			t.Errorf("n=%d: the interval held the median in %.3f of the trials, want ≥ 0.95", n, share)
		}
	}
}

func TestConclusive(t *testing.T) {
	tight := []float64{1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99, 1.00, 1.02, 0.98, 1.01}
	if e := Estimated(tight); !e.Conclusive() {
		t.Errorf("ratios within ±2%% judged inconclusive: %+v (half-width %.3f)", e, e.HalfWidth())
	}
	wide := []float64{1.00, 1.06, 0.94, 1.05, 0.95, 1.00, 1.07, 0.93, 1.00, 1.06, 0.94, 1.01}
	if e := Estimated(wide); e.Conclusive() {
		t.Errorf("ratios spread ±6%% judged conclusive: %+v (half-width %.3f)", e, e.HalfWidth())
	}
	// Too few pairs: however tight, no verdict.
	if e := Estimated([]float64{1, 1, 1, 1, 1}); e.Conclusive() {
		t.Errorf("five equal ratios judged conclusive: %+v", e)
	}
	// Lopsided: the interval counts on its wider side.
	lop := Estimate{N: 20, Median: 1, Lo: 0.99, Hi: 1.04, Coverage: 0.96}
	if lop.Conclusive() || math.Abs(lop.HalfWidth()-0.04) > 1e-9 {
		t.Errorf("interval 0.99–1.04 around 1: half-width %v, conclusive %v", lop.HalfWidth(), lop.Conclusive())
	}
}
