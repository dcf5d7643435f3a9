//go:build external

package test

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// Exemplars and native histograms, proven against a real Prometheus (Debian's 2.42, with its
// exemplar-storage and native-histograms features) and a real Jaeger.

// startPrometheusWith runs Debian's prometheus scraping target every second, with the given
// feature flags (--enable-feature), and waits for its first scrape.
func startPrometheusWith(t *testing.T, target string, features ...string) *kit.Prometheus {
	t.Helper()
	p := kit.StartPrometheus(t, kit.PrometheusOptions{Features: features,
		Jobs: []kit.ScrapeJob{{Name: "anyroute", Targets: []kit.ScrapeTarget{{Addr: target}}}}})
	p.WaitEquals(t, `up{job="anyroute"}`, 1, 15*time.Second)
	return p
}

// query is an instant query of a single value, NaN when there is none.
func query(t *testing.T, p *kit.Prometheus, q string, at time.Time) float64 {
	t.Helper()
	v, ok, err := p.Value(context.Background(), q, at)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return math.NaN()
	}
	return v
}

// latencyRoutes answer after a uniform delay: fast (at once), mid (2–8 ms) and slow (20–40 ms), so
// requests fill several buckets.
const latencyRoutes = `"routes": [
    {"name": "fast", "match": "/fast"},
    {"name": "mid", "match": "/mid", "delay": "5ms", "jitter": "3ms"},
    {"name": "slow", "match": "/slow", "delay": "30ms", "jitter": "10ms"}
  ]`

// TestExemplarsReachPrometheusAndJaeger: anyroute traces every request into a real Jaeger; a real
// Prometheus with exemplar storage scrapes it (negotiating OpenMetrics) and stores trace-id
// exemplars on the latency buckets and the request counter; each exemplar lies in its bucket, and
// each of its trace ids is a trace Jaeger holds.
func TestExemplarsReachPrometheusAndJaeger(t *testing.T) {
	j := kit.StartJaeger(t)
	service := "anyroute-exemplars"
	p := start(t, fmt.Sprintf(`{
  "tracing": {"backend": "jaeger", "service_name": %q, "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  %s
}`, service, j.AgentUDP, latencyRoutes))
	begin := time.Now()
	prom := startPrometheusWith(t, strings.TrimPrefix(p.admin, "http://"), "exemplar-storage")

	// Three seconds of requests on every route, so that several scrapes find new exemplars.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		load(t, 30, 6, func(k int) (string, string) {
			return "GET", p.api + []string{"/fast", "/mid", "/slow"}[k%3]
		})
	}

	var buckets, counters []kit.Exemplar
	kit.WaitUntil(t, 20*time.Second, "exemplars in Prometheus on the buckets of three routes and on their counters", func() (bool, string, error) {
		var err error
		ctx, end := context.Background(), time.Now().Add(time.Minute)
		if buckets, err = prom.Exemplars(ctx, `app_request_duration_seconds_bucket`, begin, end); err != nil {
			return false, "", err
		}
		if counters, err = prom.Exemplars(ctx, `app_requests_total`, begin, end); err != nil {
			return false, "", err
		}
		routes := map[string]bool{}
		for _, e := range buckets {
			routes[e.Series["route"]] = true
		}
		return len(routes) == 3 && len(counters) >= 3, fmt.Sprintf("bucket exemplars of routes %v, %d counter exemplars", routes, len(counters)), nil
	})
	ids := map[string]bool{}
	les := map[string]bool{}
	for _, e := range append(buckets, counters...) {
		if len(e.TraceID) != 32 {
			t.Fatalf("exemplar %+v: trace id of 32 hex digits wanted", e)
		}
		if e.At.Before(begin.Add(-time.Second)) || e.At.After(time.Now().Add(time.Second)) {
			t.Errorf("exemplar %+v: timestamp outside the test", e)
		}
		ids[e.TraceID] = true
	}
	for _, e := range buckets {
		le, err := strconv.ParseFloat(e.Series["le"], 64)
		if err != nil || e.Value > le {
			t.Errorf("exemplar %+v: a duration of %g s on bucket le=%s", e, e.Value, e.Series["le"])
		}
		les[e.Series["le"]] = true
	}
	for _, e := range counters {
		if e.Value != 1 {
			t.Errorf("counter exemplar %+v: value %g, want 1", e, e.Value)
		}
	}
	if len(les) < 3 {
		t.Errorf("exemplars on buckets %v only; the routes' delays span at least three", les)
	}
	for id := range ids {
		kit.WaitUntil(t, 15*time.Second, "trace "+id+" in Jaeger", func() (bool, string, error) {
			ok, err := j.HasTrace(context.Background(), id)
			return ok, "", err
		})
	}
	t.Logf("%d exemplars on %d buckets and %d on counters; their %d trace ids are all in Jaeger",
		len(buckets), len(les), len(counters), len(ids))
}

// TestNativeHistogramQuantileMatchesClassic: with metrics.native_histograms, a real Prometheus with
// native histograms (which then negotiates protobuf) stores the latency histogram as a native
// one, and histogram_quantile over it answers within the classic histogram's bucket resolution of
// what a second Prometheus, without the feature, computes from the classic buckets of the same
// requests.
func TestNativeHistogramQuantileMatchesClassic(t *testing.T) {
	p := start(t, `{"metrics": {"native_histograms": true}, `+latencyRoutes+`}`)
	admin := strings.TrimPrefix(p.admin, "http://")
	native := startPrometheusWith(t, admin, "native-histograms")
	classic := startPrometheusWith(t, admin)

	// A steady load for long enough that a 1m rate holds a dozen scrapes: slow requests mostly,
	// so the 99th percentile lies among them.
	stop := time.Now().Add(12 * time.Second)
	for time.Now().Before(stop) {
		load(t, 40, 8, func(k int) (string, string) {
			if k%10 == 0 {
				return "GET", p.api + "/fast"
			}
			return "GET", p.api + "/slow"
		})
	}
	const nativeQ = `histogram_quantile(0.99, sum(rate(app_request_duration_seconds[1m])))`
	const classicQ = `histogram_quantile(0.99, sum by (le) (rate(app_request_duration_seconds_bucket[1m])))`
	var at time.Time
	var n, c float64
	kit.WaitFor(t, 15*time.Second, "both quantiles", func() bool {
		at = time.Now().Add(-time.Second)
		n, c = query(t, native, nativeQ, at), query(t, classic, classicQ, at)
		return !math.IsNaN(n) && !math.IsNaN(c) && n > 0
	})
	if v := query(t, native, `count(app_request_duration_seconds_bucket)`, at); !math.IsNaN(v) {
		t.Errorf("the native Prometheus holds %g classic bucket series: it did not take the native histogram", v)
	}
	bounds := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	lower, upper := 0.0, math.Inf(1)
	for _, b := range bounds {
		if c <= b {
			upper = b
			break
		}
		lower = b
	}
	// The slow route's 20–40 ms put the p99 above 25 ms; how far above depends on the machine's
	// load (the race detector, other work), which moves both answers alike.
	if math.Abs(n-c) > upper-lower || c <= 0.025 || math.IsInf(upper, 1) {
		t.Fatalf("p99: native %g, classic %g (bucket (%g, %g]): apart by more than the classic bucket", n, c, lower, upper)
	}
	t.Logf("p99 native %.4f s, classic %.4f s (classic bucket (%g, %g])", n, c, lower, upper)
}

// TestMetricsPassPromtoolWithExemplarsAndNative: with every request traced and native histograms
// on, the text exposition (which carries neither) stays clean for promtool check metrics. (Debian's
// promtool 2.42 reads the text format only; the OpenMetrics and protobuf expositions are checked by
// the real Prometheus of the tests above, which parses them.)
func TestMetricsPassPromtoolWithExemplarsAndNative(t *testing.T) {
	promtool := kit.SystemTool(t, "promtool")
	p := start(t, fmt.Sprintf(`{
  "metrics": {"native_histograms": true},
  "tracing": {"backend": "jaeger", "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  %s
}`, kit.FreeUDPAddr(t), latencyRoutes))
	load(t, 60, 4, func(k int) (string, string) { return "GET", p.api + []string{"/fast", "/mid", "/slow"}[k%3] })
	var body string
	kit.WaitFor(t, 5*time.Second, "the requests on /metrics", func() bool {
		_, body = kit.Get(p.admin + "/metrics")
		return strings.Contains(body, `app_requests_total{code="200",method="GET",route="slow"} 20`)
	})
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
