package service

import (
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzMatch checks the matcher against what a pattern means, for any pattern and path: it never
// panics, an exact pattern matches only itself, and a matching path has the pattern's literal
// segments in place.
func FuzzMatch(f *testing.F) {
	f.Add("/users/{id}/posts/*", "/users/42/posts/7")
	f.Add("/a/*", "/a")
	f.Add("/*", "/")
	f.Add("/exact/", "/exact")
	f.Add("/{a}/{b}", "//")
	f.Add("/x/{id}", "/x/\x00")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		m, err := ParseMatch(pattern)
		if err != nil {
			return
		}
		got := m.Matches(path)
		if m.exact && got != (path == pattern) {
			t.Fatalf("exact %q vs %q: %v", pattern, path, got)
		}
		if !got {
			return
		}
		if !strings.HasPrefix(path, "/") {
			t.Fatalf("%q matched %q, which is not a path", pattern, path)
		}
		if m.exact {
			return
		}
		segs := strings.Split(path[1:], "/")
		if len(segs) < len(m.segs) || (!m.wildcard && len(segs) != len(m.segs)) {
			t.Fatalf("%q matched %q with the wrong number of segments", pattern, path)
		}
		for i, want := range m.segs {
			if want == "" && segs[i] == "" || want != "" && segs[i] != want {
				t.Fatalf("%q matched %q but segment %d is %q", pattern, path, i, segs[i])
			}
		}
	})
}

// FuzzLatencyBound holds every distribution Check accepts, with parameters anywhere up to the
// largest duration, to its Bound: the bound is never negative, and no draw is negative or past it
// (config checks the bound against http.write_timeout, so a draw past it would go unanswered).
func FuzzLatencyBound(f *testing.F) {
	h := int64(time.Hour)
	f.Add(uint8(4), int64(10*time.Millisecond), int64(50*time.Millisecond), 2000000*h, int64(0), uint64(1))
	f.Add(uint8(4), 2000000*h, 2000000*h, 2000000*h, int64(0), uint64(2))
	f.Add(uint8(1), int64(math.MaxInt64), int64(math.MaxInt64), int64(0), int64(0), uint64(3))
	f.Add(uint8(1), int64(1<<54-1), int64(1<<54-1), int64(0), int64(1<<54-1), uint64(4))
	f.Add(uint8(2), int64(time.Second), int64(time.Second), int64(0), int64(math.MaxInt64), uint64(5))
	f.Add(uint8(3), int64(time.Millisecond), 2000000*h, int64(0), int64(1<<53+1), uint64(6))
	f.Fuzz(func(t *testing.T, dist uint8, a, b, c, maxD int64, seed uint64) {
		l := Latency{Distribution: []string{"fixed", "uniform", "normal", "lognormal", "percentiles"}[dist%5],
			Max: time.Duration(maxD & math.MaxInt64)}
		a, b, c = a&math.MaxInt64, b&math.MaxInt64, c&math.MaxInt64
		switch l.Distribution {
		case "fixed":
			l.Delay = time.Duration(a)
		case "uniform":
			l.Delay, l.Jitter = time.Duration(a), time.Duration(b)
		case "normal":
			l.Mean, l.StdDev = time.Duration(a), time.Duration(b)
		case "lognormal":
			l.Median, l.P99 = time.Duration(a), time.Duration(b)
		case "percentiles":
			l.P50, l.P90, l.P99 = time.Duration(a), time.Duration(b), time.Duration(c)
		}
		draw, err := l.compile()
		if err != nil || draw == nil {
			return
		}
		bound, bounded := l.Bound()
		if bounded && bound < 0 {
			t.Fatalf("%+v: a negative bound %d", l, bound)
		}
		r := NewRandom(&seed)
		for range 200 {
			d, q := draw(r)
			if d < 0 || bounded && d > bound {
				t.Fatalf("%+v: drew %d, bound %d (bounded %v)", l, d, bound, bounded)
			}
			if !(q >= 0 && q <= 1) {
				t.Fatalf("%+v: drew %d at quantile %v", l, d, q)
			}
		}
	})
}
