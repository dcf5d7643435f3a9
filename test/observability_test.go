package test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Exemplars and native histograms, proven against a real Prometheus (Debian's 2.42, with its
// exemplar-storage and native-histograms features) and a real Jaeger.

// startPrometheusWith runs Debian's prometheus scraping target every second, with the given
// feature flags (--enable-feature). startPrometheus is this without features.
func startPrometheusWith(t *testing.T, target string, features ...string) *prometheus {
	t.Helper()
	bin := lookTool(t, "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: anyroute
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logs := &syncBuffer{}
	args := []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	if len(features) > 0 {
		args = append(args, "--enable-feature="+strings.Join(features, ","))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus %v output:\n%s", features, logs.String())
		}
	})
	p := &prometheus{url: "http://" + addr, logs: logs}
	waitFor(t, 20*time.Second, "prometheus ready", func() bool {
		code, _ := get(p.url + "/-/ready")
		return code == 200
	})
	waitFor(t, 15*time.Second, "the first scrape", func() bool {
		return !math.IsNaN(p.query(t, `up{job="anyroute"} == 1`, time.Now()))
	})
	return p
}

// exemplar is one exemplar as /api/v1/query_exemplars returns it, with the series it is on.
type exemplar struct {
	series  map[string]string
	traceID string
	value   float64
	at      float64
}

// exemplars returns the exemplars Prometheus stored for the query's series since start.
func (p *prometheus) exemplars(t *testing.T, query string, start time.Time) []exemplar {
	t.Helper()
	v := url.Values{"query": {query}, "start": {strconv.FormatInt(start.Unix(), 10)},
		"end": {strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)}}
	code, body := get(p.url + "/api/v1/query_exemplars?" + v.Encode())
	if code != 200 {
		t.Fatalf("query_exemplars %s: %d %s", query, code, body)
	}
	var r struct {
		Data []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels    map[string]string `json:"labels"`
				Value     string            `json:"value"`
				Timestamp float64           `json:"timestamp"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query_exemplars: %v: %.500s", err, body)
	}
	var out []exemplar
	for _, s := range r.Data {
		for _, e := range s.Exemplars {
			value, err := strconv.ParseFloat(e.Value, 64)
			if err != nil {
				t.Fatalf("exemplar value %q: %v", e.Value, err)
			}
			out = append(out, exemplar{series: s.SeriesLabels, traceID: e.Labels["trace_id"], value: value, at: e.Timestamp})
		}
	}
	return out
}

// hasTrace reports whether Jaeger holds the trace.
func (j *jaegerProc) hasTrace(t *testing.T, traceID string) bool {
	t.Helper()
	code, body := get("http://" + j.query + "/api/traces/" + traceID)
	if code != 200 {
		return false
	}
	var r struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []any  `json:"spans"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("jaeger trace %s: %v", traceID, err)
	}
	return len(r.Data) == 1 && sameID(r.Data[0].TraceID, traceID) && len(r.Data[0].Spans) > 0
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
	j := startJaeger(t)
	service := "anyroute-exemplars"
	p := start(t, fmt.Sprintf(`{
  "tracing": {"backend": "jaeger", "service_name": %q, "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  %s
}`, service, j.agentUDP, latencyRoutes))
	begin := time.Now()
	prom := startPrometheusWith(t, strings.TrimPrefix(p.admin, "http://"), "exemplar-storage")

	// Three seconds of requests on every route, so that several scrapes find new exemplars.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		load(t, 30, 6, func(k int) (string, string) {
			return "GET", p.api + []string{"/fast", "/mid", "/slow"}[k%3]
		})
	}

	var buckets, counters []exemplar
	waitFor(t, 20*time.Second, "exemplars in Prometheus on the buckets of three routes and on their counters", func() bool {
		buckets = prom.exemplars(t, `app_request_duration_seconds_bucket`, begin)
		counters = prom.exemplars(t, `app_requests_total`, begin)
		routes := map[string]bool{}
		for _, e := range buckets {
			routes[e.series["route"]] = true
		}
		return len(routes) == 3 && len(counters) >= 3
	})
	ids := map[string]bool{}
	les := map[string]bool{}
	for _, e := range append(buckets, counters...) {
		if len(e.traceID) != 32 {
			t.Fatalf("exemplar %+v: trace id of 32 hex digits wanted", e)
		}
		if e.at < float64(begin.Unix())-1 || e.at > float64(time.Now().Unix())+1 {
			t.Errorf("exemplar %+v: timestamp outside the test", e)
		}
		ids[e.traceID] = true
	}
	for _, e := range buckets {
		le, err := strconv.ParseFloat(e.series["le"], 64)
		if err != nil || e.value > le {
			t.Errorf("exemplar %+v: a duration of %g s on bucket le=%s", e, e.value, e.series["le"])
		}
		les[e.series["le"]] = true
	}
	for _, e := range counters {
		if e.value != 1 {
			t.Errorf("counter exemplar %+v: value %g, want 1", e, e.value)
		}
	}
	if len(les) < 3 {
		t.Errorf("exemplars on buckets %v only; the routes' delays span at least three", les)
	}
	for id := range ids {
		waitFor(t, 15*time.Second, "trace "+id+" in Jaeger", func() bool { return j.hasTrace(t, id) })
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
	// so the 99th percentile lies among them, in (0.025, 0.05].
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
	waitFor(t, 15*time.Second, "both quantiles", func() bool {
		at = time.Now().Add(-time.Second)
		n, c = native.query(t, nativeQ, at), classic.query(t, classicQ, at)
		return !math.IsNaN(n) && !math.IsNaN(c) && n > 0
	})
	if v := native.query(t, `count(app_request_duration_seconds_bucket)`, at); !math.IsNaN(v) {
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
	if math.Abs(n-c) > upper-lower || c <= 0.025 || c > 0.05 {
		t.Fatalf("p99: native %g, classic %g (bucket (%g, %g]): apart by more than the classic bucket", n, c, lower, upper)
	}
	t.Logf("p99 native %.4f s, classic %.4f s (classic bucket (%g, %g])", n, c, lower, upper)
}

// TestMetricsPassPromtoolWithExemplarsAndNative: with every request traced and native histograms
// on, the text exposition (which carries neither) stays clean for promtool check metrics. (Debian's
// promtool 2.42 reads the text format only; the OpenMetrics and protobuf expositions are checked by
// the real Prometheus of the tests above, which parses them.)
func TestMetricsPassPromtoolWithExemplarsAndNative(t *testing.T) {
	promtool := lookTool(t, "promtool")
	p := start(t, fmt.Sprintf(`{
  "metrics": {"native_histograms": true},
  "tracing": {"backend": "jaeger", "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  %s
}`, freeUDPAddr(t), latencyRoutes))
	load(t, 60, 4, func(k int) (string, string) { return "GET", p.api + []string{"/fast", "/mid", "/slow"}[k%3] })
	var body string
	waitFor(t, 5*time.Second, "the requests on /metrics", func() bool {
		_, body = get(p.admin + "/metrics")
		return strings.Contains(body, `app_requests_total{code="200",method="GET",route="slow"} 20`)
	})
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
