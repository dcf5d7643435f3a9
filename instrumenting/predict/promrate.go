package predict

import (
	"sort"
	"time"
)

// Sample is one scraped value of a counter.
type Sample struct {
	T time.Duration
	V float64
}

// Rate is PromQL's rate(series[window]) evaluated at t over samples in time order, as Prometheus 2 computes it
// (promql/functions.go extrapolatedRate): the samples within [t-window, t], counter resets
// added back, the increase extrapolated to the window's edges when the samples reach within
// 1.1 average intervals of them (else by half an interval), never to below a counter's zero,
// divided by the window. ok is false with fewer than two samples, when Prometheus answers nothing.
func Rate(samples []Sample, t, window time.Duration) (float64, bool) {
	start := t - window
	// samples are in time order: the window's are one run of them.
	lo := sort.Search(len(samples), func(i int) bool { return samples[i].T >= start })
	hi := sort.Search(len(samples), func(i int) bool { return samples[i].T > t })
	in := samples[lo:hi]
	if len(in) < 2 {
		return 0, false
	}
	first, last := in[0], in[len(in)-1]
	result := last.V - first.V
	prev := first.V
	for _, s := range in[1:] {
		if s.V < prev {
			result += prev
		}
		prev = s.V
	}
	toStart := (first.T - start).Seconds()
	toEnd := (t - last.T).Seconds()
	sampled := (last.T - first.T).Seconds()
	avg := sampled / float64(len(in)-1)
	threshold := avg * 1.1
	interval := sampled
	if toStart >= threshold {
		toStart = avg / 2
	}
	if result > 0 && first.V >= 0 {
		if toZero := sampled * (first.V / result); toZero < toStart {
			toStart = toZero
		}
	}
	interval += toStart
	if toEnd >= threshold {
		toEnd = avg / 2
	}
	interval += toEnd
	return result * (interval / sampled) / window.Seconds(), true
}
