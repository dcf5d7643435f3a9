package main

import (
	"math"
	"slices"
)

// Confidence is the coverage the intervals of the tables aim for.
const Confidence = 0.95

// MaxHalfWidth is the widest an interval may be, as a share of its median on either side, for
// a verdict: issue 29's ±3%. A wider one says the run could not tell the figure from its
// neighbours, whatever the median.
const MaxHalfWidth = 0.03

// Estimate is the median of a sample of pairwise ratios with a distribution-free interval for
// it, from order statistics: with n ratios sorted, the k-th smallest and the k-th largest bound
// the true median with probability 1 − 2·P(B ≤ k−1), B ~ Binomial(n, ½), whatever the ratios'
// distribution, so a noisy machine widens the interval instead of biasing it. k is the largest
// that keeps that coverage at least Confidence.
type Estimate struct {
	N        int
	Median   float64
	Lo, Hi   float64 // the interval; the whole range when too few pairs reach Confidence
	Coverage float64 // the interval's actual coverage (≥ Confidence when OK)
}

// OK reports whether the interval reaches Confidence: it takes at least 6 ratios.
func (e Estimate) OK() bool { return e.N > 0 && e.Coverage >= Confidence }

// HalfWidth is the interval's larger distance from the median, as a share of the median.
func (e Estimate) HalfWidth() float64 {
	if e.N == 0 || e.Median == 0 {
		return math.Inf(1)
	}
	return max(e.Median-e.Lo, e.Hi-e.Median) / math.Abs(e.Median)
}

// Conclusive reports whether the estimate may carry a verdict: an interval of the stated
// confidence within ±MaxHalfWidth of the median.
func (e Estimate) Conclusive() bool { return e.OK() && e.HalfWidth() <= MaxHalfWidth }

// Estimated is the median of xs and its interval; xs is not modified.
func Estimated(xs []float64) Estimate {
	n := len(xs)
	if n == 0 {
		return Estimate{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	e := Estimate{N: n, Median: median(s), Lo: s[0], Hi: s[n-1], Coverage: 1 - 2*binomialCDF(0, n)}
	for k := 1; k <= n/2; k++ {
		c := 1 - 2*binomialCDF(k-1, n)
		if c < Confidence {
			break
		}
		e.Lo, e.Hi, e.Coverage = s[k-1], s[n-k], c
	}
	return e
}

// Median is the median of xs (NaN for none); xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return median(s)
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// binomialCDF is P(B ≤ k) for B ~ Binomial(n, ½).
func binomialCDF(k, n int) float64 {
	if k < 0 {
		return 0
	}
	// Summed in logs: n may be a few hundred pairs, where 2^n overflows nothing but C(n, i) does.
	p := 0.0
	for i := 0; i <= min(k, n); i++ {
		lg := lgamma(n+1) - lgamma(i+1) - lgamma(n-i+1) - float64(n)*math.Ln2
		p += math.Exp(lg)
	}
	return min(p, 1)
}

func lgamma(x int) float64 {
	v, _ := math.Lgamma(float64(x))
	return v
}
