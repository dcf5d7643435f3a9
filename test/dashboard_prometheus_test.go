//go:build external

package test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// kubeStateMetrics is what kube-state-metrics exposes of the chart's HPA (release anyroute in
// namespace demo, the default target of 10 requests/s per pod). The test serves it to Prometheus as
// a job of its own, so the dashboard's HPA panels are proven on the series names and labels
// kube-state-metrics v2 gives them.
const kubeStateMetrics = `# TYPE kube_horizontalpodautoscaler_spec_target_metric gauge
kube_horizontalpodautoscaler_spec_target_metric{namespace="demo",horizontalpodautoscaler="anyroute",metric_name="avg_requests",metric_target_type="average"} 10
# TYPE kube_horizontalpodautoscaler_spec_min_replicas gauge
kube_horizontalpodautoscaler_spec_min_replicas{namespace="demo",horizontalpodautoscaler="anyroute"} 1
# TYPE kube_horizontalpodautoscaler_spec_max_replicas gauge
kube_horizontalpodautoscaler_spec_max_replicas{namespace="demo",horizontalpodautoscaler="anyroute"} 10
# TYPE kube_horizontalpodautoscaler_status_current_replicas gauge
kube_horizontalpodautoscaler_status_current_replicas{namespace="demo",horizontalpodautoscaler="anyroute"} 2
# TYPE kube_horizontalpodautoscaler_status_desired_replicas gauge
kube_horizontalpodautoscaler_status_desired_replicas{namespace="demo",horizontalpodautoscaler="anyroute"} 2
`

// TestDashboardQueriesReturnData runs a small system (a front anyroute whose checkout route calls
// a second anyroute and an address where nothing listens), loads it with a mix of routes, errors
// and latencies, has a real Prometheus scrape both with the pod labels and a kube-state-metrics
// stand-in, then evaluates every PromQL expression of the dashboard, and every variable's query,
// with the variables filled in twice: each at All, and each at one value. Each must return data.
func TestDashboardQueriesReturnData(t *testing.T) {
	d := readDashboard(t)

	inventory := start(t, `{"routes": [
  {"name": "stock", "match": "/stock/*", "latency": {"distribution": "uniform", "delay": "5ms", "jitter": "4ms"},
   "errors": [{"status": 503, "rate": 0.2}]}]}`)
	closed := kit.FreeAddr(t) // nothing listens: the payments call gets no answer
	front := start(t, fmt.Sprintf(`{
  "tracing": {"backend": "otlp", "sampler": {"type": "const", "param": 1}, "otlp": {"endpoint": %q}},
  "routes": [
    {"name": "api", "match": "/api/*"},
    {"name": "flaky", "match": "/flaky/*", "errors": [{"status": 503, "rate": 0.3}, {"status": 500, "rate": 0.1}]},
    {"name": "slow", "match": "/slow/*", "latency": {"distribution": "lognormal", "median": "20ms", "p99": "80ms"}},
    {"name": "checkout", "match": "/checkout/*", "call_mode": "parallel", "on_call_error": "ignore", "calls": [
      {"name": "inventory", "url": "%s/stock/{path}", "timeout": "2s"},
      {"name": "payments", "url": "http://%s/pay", "timeout": "300ms"}]}
  ]}`, closed, inventory.api, closed))

	ksm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(kubeStateMetrics))
	}))
	t.Cleanup(ksm.Close)

	host := func(url string) string { return strings.TrimPrefix(url, "http://") }
	prom := kit.StartPrometheus(t, kit.PrometheusOptions{Config: fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: anyroute
    static_configs:
      - targets: [%q]
        labels: {namespace: demo, pod: anyroute-5d8f7c9b4-x2kqp}
      - targets: [%q]
        labels: {namespace: demo, pod: inventory-6c7d8f9b5-q4r7t}
  # kube-state-metrics' own namespace label names the HPA's namespace: keep it, as the
  # prometheus-community chart and kube-prometheus-stack do.
  - job_name: kube-state-metrics
    honor_labels: true
    static_configs:
      - targets: [%q]
`, host(front.admin), host(inventory.admin), host(ksm.URL))})
	prom.WaitEquals(t, `sum(up{job="anyroute"})`, 2, 15*time.Second)
	prom.WaitEquals(t, `up{job="kube-state-metrics"}`, 1, 15*time.Second)

	// Ten seconds of traffic, so every rate window holds several scrapes.
	paths := []string{"/api/hello", "/flaky/x", "/slow/report", "/checkout/42", "/nowhere"}
	sent := 0
	for range 10 {
		round := time.Now()
		load(t, 50, 4, func(i int) (string, string) { return "GET", front.api + paths[i%len(paths)] })
		sent += 50
		time.Sleep(time.Until(round.Add(time.Second)))
	}
	prom.WaitEquals(t, `sum(app_requests_total{pod="anyroute-5d8f7c9b4-x2kqp"})`, float64(sent), 15*time.Second)
	prom.WaitEquals(t, `sum(app_requests_total{pod="inventory-6c7d8f9b5-q4r7t"})`, float64(sent/len(paths)), 15*time.Second)

	ctx := context.Background()
	fillings := map[string]map[string]string{
		"every variable at All": {"namespace": ".*", "job": ".*", "route": ".*", "hpa": ".*"},
		"one value each":        {"namespace": "demo", "job": "anyroute", "route": "checkout", "hpa": "anyroute"},
	}
	for name, values := range fillings {
		t.Run(name, func(t *testing.T) {
			vars := dashboardVariables(t, d, values)
			checked := 0
			for _, p := range d.queryPanels() {
				for _, tg := range p.Targets {
					q := fillVariables(t, tg.Expr, vars)
					samples, err := prom.Query(ctx, q, time.Time{})
					if err != nil {
						t.Errorf("panel %q %s: %v", p.Title, tg.RefID, err)
						continue
					}
					if !hasNumber(samples) {
						t.Errorf("panel %q %s: no data (%v) from\n  %s", p.Title, tg.RefID, samples, q)
					}
					checked++
				}
			}
			// The variables' own queries offer the values filled in above.
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				q, label := labelValuesQuery(t, fillVariables(t, v.variableQuery(), vars))
				got, err := prom.ByLabel(ctx, q, label)
				if err != nil {
					t.Errorf("variable %s: %v", v.Name, err)
					continue
				}
				want := fillings["one value each"][v.Name]
				if _, ok := got[want]; !ok {
					t.Errorf("variable %s: %s offers %v, not %q", v.Name, q, got, want)
				}
				checked++
			}
			t.Logf("%d expressions returned data", checked)
		})
	}
}

// dashboardVariables returns every variable's value for a query: the given ones, the custom
// variables' current values, and Grafana's $__rate_interval (4 scrape intervals at least; the
// traffic above spans 10 s, so a minute covers it all).
func dashboardVariables(t *testing.T, d dashboard, values map[string]string) map[string]string {
	t.Helper()
	vars := map[string]string{"__rate_interval": "1m"}
	for _, v := range d.Templating.List {
		switch v.Type {
		case "query":
			val, ok := values[v.Name]
			if !ok {
				t.Fatalf("the test has no value for query variable %s", v.Name)
			}
			vars[v.Name] = val
		case "custom", "textbox", "constant":
			vars[v.Name] = v.currentValue()
		}
	}
	return vars
}

// fillVariables replaces $name and ${name} as Grafana does for a single value.
func fillVariables(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	out := variableRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		if v, ok := vars[m[1]+m[2]+m[3]]; ok {
			return v
		}
		return ref
	})
	if strings.Contains(out, "$") {
		t.Fatalf("unfilled variable in %s", out)
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// labelValuesQuery turns Grafana's label_values(selector, label) into PromQL giving one sample
// per value of the label.
func labelValuesQuery(t *testing.T, q string) (string, string) {
	t.Helper()
	m := labelValues.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("%q is not label_values(selector, label)", q)
	}
	return fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), m[2]
}

// hasNumber reports whether one sample at least is a number (a ratio of nothing is NaN).
func hasNumber(samples []kit.Sample) bool {
	for _, s := range samples {
		if !math.IsNaN(s.Value) {
			return true
		}
	}
	return false
}
