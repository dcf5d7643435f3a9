package predict

import (
	"math"
	"testing"
	"time"
)

func linear(from, to, every time.Duration, start, perSecond float64) []Sample {
	var s []Sample
	for t := from; t <= to; t += every {
		s = append(s, Sample{t, start + perSecond*(t-from).Seconds()})
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// rate() as Prometheus computes it: exact for a counter that covers the window, extrapolated by
// half an interval at an edge the series does not reach, never below the counter's zero, and
// counter resets added back.
func TestRate(t *testing.T) {
	// 10/s sampled every 15 s for 10 minutes: the 2m window ending on a sample holds 9 samples
	// reaching both edges.
	s := linear(0, 10*time.Minute, 15*sec, 100, 10)
	if r, ok := Rate(s, 10*time.Minute, 2*time.Minute); !ok || !near(r, 10) {
		t.Errorf("a full window: got %v %v, want 10", r, ok)
	}
	// A series that starts 60 s before t at 300 (so its zero lies 30 s before its first sample):
	// 60 s sampled, extrapolated 7.5 s at the start (half the interval, nearer than the zero) and
	// 0 at the end: 600 * 67.5/60 / 120.
	s = linear(9*time.Minute, 10*time.Minute, 15*sec, 300, 10)
	if r, _ := Rate(s, 10*time.Minute, 2*time.Minute); !near(r, 600*67.5/60/120) {
		t.Errorf("a series that starts within the window: got %v, want %v", r, 600*67.5/60/120)
	}
	// The same from a counter of 15: its zero, 1.5 s before the first sample, is nearer.
	s = linear(9*time.Minute, 10*time.Minute, 15*sec, 15, 10)
	if r, _ := Rate(s, 10*time.Minute, 2*time.Minute); !near(r, 600*61.5/60/120) {
		t.Errorf("extrapolation to zero: got %v, want %v", r, 600*61.5/60/120)
	}
	// A reset: 0, 100, 200, then 50, 150 (restarted): an increase of 350 over 60 s, the window 60 s.
	s = []Sample{{0, 0}, {15 * sec, 100}, {30 * sec, 200}, {45 * sec, 50}, {60 * sec, 150}}
	if r, _ := Rate(s, 60*sec, 60*sec); !near(r, 350.0/60) {
		t.Errorf("a counter reset: got %v, want %v", r, 350.0/60)
	}
	if _, ok := Rate(s[:1], 60*sec, 60*sec); ok {
		t.Error("one sample: want no value")
	}
}
