//go:build soak

package test

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestSoak runs a steady mixed load for SOAK_DURATION (default 10m; `make soak`) and checks that
// errors stay at the configured rate, that memory and goroutines stay flat, and that the counts
// are exact at the end.
func TestSoak(t *testing.T) {
	duration := 10 * time.Minute
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		var err error
		if duration, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	p := startBinary(t, plainBinary, `{
  "routes": [
    {"name": "fast", "match": "/fast/*"},
    {"name": "slow", "match": "/slow/*", "delay": "20ms", "jitter": "10ms"},
    {"name": "flaky", "match": "/flaky/*", "error_rate": 0.05, "error_status": 503},
    {"name": "big", "match": "/big/*", "body_bytes": 16384}
  ]
}`)
	paths := []string{"/fast/a", "/slow/b", "/flaky/c", "/big/d", "/unmatched/e"}
	type sample struct{ rss, goroutines float64 }
	var samples []sample
	sent := 0
	answered := map[string]int{}
	deadline := time.Now().Add(duration)
	for round := 0; time.Now().Before(deadline); round++ {
		got := load(t, 5000, 16, func(i int) (string, string) {
			return []string{"GET", "POST"}[i%2], p.api + paths[i%len(paths)] + fmt.Sprint(i)
		})
		for k, v := range got {
			answered[k] += v
		}
		sent += 5000
		fams := p.metrics(t)
		samples = append(samples, sample{gauge(t, fams, "process_resident_memory_bytes"), gauge(t, fams, "go_goroutines")})
	}
	counts, _ := requestCounts(waitCounts(t, p, sent, 1500*time.Millisecond))
	flakyFailed := counts["GET flaky 503"] + counts["POST flaky 503"]
	flakyAll := flakyFailed + counts["GET flaky 200"] + counts["POST flaky 200"]
	if rate := flakyFailed / flakyAll; rate < 0.04 || rate > 0.06 {
		t.Errorf("flaky error rate %.3f, configured 0.05", rate)
	}
	for k := range answered {
		if k != "GET 200" && k != "POST 200" && k != "GET 503" && k != "POST 503" {
			t.Errorf("unexpected answers %s: %d", k, answered[k])
		}
	}
	// Flat: the last quarter's peak within 10% of the first quarter's (after warm-up).
	q := max(len(samples)/4, 1)
	peak := func(s []sample, f func(sample) float64) float64 {
		m := 0.0
		for _, x := range s {
			m = max(m, f(x))
		}
		return m
	}
	rss := func(s sample) float64 { return s.rss }
	gor := func(s sample) float64 { return s.goroutines }
	early, late := samples[:q], samples[len(samples)-q:]
	if peak(late, rss) > peak(early, rss)*1.10 {
		t.Errorf("RSS grew from %.1f to %.1f MiB", peak(early, rss)/(1<<20), peak(late, rss)/(1<<20))
	}
	if peak(late, gor) > peak(early, gor)+10 {
		t.Errorf("goroutines grew from %v to %v", peak(early, gor), peak(late, gor))
	}
	t.Logf("soak %v on %s: %d requests, %d samples; RSS %.1f → %.1f MiB; goroutines %v → %v; flaky error rate %.4f",
		duration, runtime.Version(), sent, len(samples), peak(early, rss)/(1<<20), peak(late, rss)/(1<<20),
		peak(early, gor), peak(late, gor), flakyFailed/flakyAll)
}
