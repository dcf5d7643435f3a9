package load

import (
	"math"
	"sync/atomic"
	"time"
)

// logHist counts durations in buckets 2% wide from 1µs to 10 minutes, lock-free, for the
// summary's percentiles: a percentile is read as its bucket's upper bound, so it is at most 2%
// above the true value. The exact maximum is kept beside.
type logHist struct {
	counts [histBuckets]atomic.Int64
	max    atomic.Int64
	n      atomic.Int64
}

const (
	histGrowth  = 1.02
	histMin     = float64(time.Microsecond)
	histBuckets = 1025 // 1µs × 1.02^1024 > 10 min; the last bucket takes everything above
)

var histLogGrowth = math.Log(histGrowth)

func (h *logHist) observe(d time.Duration) {
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	i := 0
	if float64(d) > histMin {
		i = int(math.Ceil(math.Log(float64(d)/histMin) / histLogGrowth))
	}
	h.counts[min(i, histBuckets-1)].Add(1)
}

// quantile is the upper bound of the bucket holding the q-th observation; 0 when there is none.
func (h *logHist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= max(rank, 1) {
			return min(time.Duration(histMin*math.Pow(histGrowth, float64(i))), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Quantiles are the percentiles of a duration in the summary, in seconds.
type Quantiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func (h *logHist) quantiles() Quantiles {
	return Quantiles{
		P50: h.quantile(0.5).Seconds(), P90: h.quantile(0.9).Seconds(), P99: h.quantile(0.99).Seconds(),
		P999: h.quantile(0.999).Seconds(), Max: time.Duration(h.max.Load()).Seconds(),
	}
}
