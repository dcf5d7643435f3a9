//go:build external

package test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
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
// and latencies, has two real Prometheus servers scrape both with the pod labels and a
// kube-state-metrics stand-in, then evaluates on each every PromQL expression of the dashboard,
// and every variable's query, with the variables filled in twice: each at All, and each at one
// value. Each must return data from both servers: the one that stores the latency histogram's
// classic buckets and the one that stores only its native histogram.
func TestDashboardQueriesReturnData(t *testing.T) {
	d := readDashboard(t)

	inventory := start(t, `{"metrics": {"native_histograms": true}, "routes": [
  {"name": "stock", "match": "/stock/*", "latency": {"distribution": "uniform", "delay": "5ms", "jitter": "4ms"},
   "errors": [{"status": 503, "rate": 0.2}]}]}`)
	closed := kit.FreeAddr(t) // nothing listens: the payments call gets no answer
	front := start(t, fmt.Sprintf(`{
  "metrics": {"native_histograms": true},
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

	// anyroute load, for the client-side panels: against a service of its own (the two above are
	// counted exactly below), scraped as job load, lingering so every scrape finds it.
	loaded := start(t, "")
	loadMetrics := kit.FreeAddr(t)
	loadCmd := exec.Command(binary, "load", "-rate", "20", "-duration", "15s", "-metrics.addr", loadMetrics, "-linger", "5m", loaded.api+"/")
	loadCmd.Env = kit.Env(raceEnv)
	if err := loadCmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCmd(t, loadCmd)

	host := func(url string) string { return strings.TrimPrefix(url, "http://") }
	jobs := []kit.ScrapeJob{
		{Name: "load", Targets: []kit.ScrapeTarget{
			{Addr: loadMetrics, Labels: map[string]string{"namespace": "demo", "pod": "anyroute-load-7f9c6d5b8-m3n4p"}},
		}},
		{Name: "anyroute", Targets: []kit.ScrapeTarget{
			{Addr: host(front.admin), Labels: map[string]string{"namespace": "demo", "pod": "anyroute-5d8f7c9b4-x2kqp"}},
			{Addr: host(inventory.admin), Labels: map[string]string{"namespace": "demo", "pod": "inventory-6c7d8f9b5-q4r7t"}},
		}},
		{Name: "kube-state-metrics", HonorLabels: true, Targets: []kit.ScrapeTarget{{Addr: host(ksm.URL)}}},
	}
	// Both services serve native buckets beside the classic ones. Without the feature Prometheus
	// asks for the text format and stores the classic buckets; with it, it negotiates protobuf and
	// (2.42, or 2.45+ without scrape_classic_histograms, or 3.x without
	// always_scrape_classic_histograms) stores the native histogram alone: no _bucket, _count or
	// _sum series of app_request_duration_seconds.
	proms := []struct {
		storage string
		prom    *kit.Prometheus
		has     string // a series only this storage holds
		hasNot  string
	}{
		{"classic", kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: jobs}),
			"app_request_duration_seconds_bucket", "app_request_duration_seconds"},
		{"native", kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: jobs, Features: []string{"native-histograms"}}),
			"app_request_duration_seconds", "app_request_duration_seconds_bucket"},
	}
	for _, p := range proms {
		p.prom.WaitEquals(t, `sum(up{job="anyroute"})`, 2, 15*time.Second)
		p.prom.WaitEquals(t, `up{job="kube-state-metrics"}`, 1, 15*time.Second)
		p.prom.WaitEquals(t, `up{job="load"}`, 1, 15*time.Second)
	}

	// Ten seconds of traffic, so every rate window holds several scrapes.
	paths := []string{"/api/hello", "/flaky/x", "/slow/report", "/checkout/42", "/nowhere"}
	sent := 0
	for range 10 {
		round := time.Now()
		load(t, 50, 4, func(i int) (string, string) { return "GET", front.api + paths[i%len(paths)] })
		sent += 50
		time.Sleep(time.Until(round.Add(time.Second)))
	}

	ctx := context.Background()
	fillings := []struct {
		name   string
		values map[string]string
	}{
		{"every variable at All", map[string]string{"namespace": ".*", "job": ".*", "route": ".*", "hpa": ".*"}},
		{"one value each", map[string]string{"namespace": "demo", "job": "anyroute", "route": "checkout", "hpa": "anyroute"}},
	}
	one := fillings[1].values
	for _, p := range proms {
		prom := p.prom
		prom.WaitEquals(t, `sum(app_requests_total{pod="anyroute-5d8f7c9b4-x2kqp"})`, float64(sent), 15*time.Second)
		prom.WaitEquals(t, `sum(app_requests_total{pod="inventory-6c7d8f9b5-q4r7t"})`, float64(sent/len(paths)), 15*time.Second)
		// The storage is what this run is about: prove it, or an expression that reads only
		// the classic buckets would pass on both.
		for q, want := range map[string]bool{"count(" + p.has + ")": true, "count(" + p.hasNot + ")": false} {
			samples, err := prom.Query(ctx, q, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if hasNumber(samples) != want {
				t.Fatalf("%s Prometheus: %s gives %v: it does not store the histogram as %s", p.storage, q, samples, p.storage)
			}
		}
		for _, f := range fillings {
			t.Run(p.storage+"/"+f.name, func(t *testing.T) {
				vars := dashboardVariables(t, d, f.values)
				checked := 0
				for _, panel := range d.queryPanels() {
					for _, tg := range panel.Targets {
						q := fillVariables(t, tg.Expr, vars)
						samples, err := prom.Query(ctx, q, time.Time{})
						if err != nil {
							t.Errorf("panel %q %s: %v", panel.Title, tg.RefID, err)
							continue
						}
						if !hasNumber(samples) {
							t.Errorf("panel %q %s: no data (%v) from\n  %s", panel.Title, tg.RefID, samples, q)
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
					if _, ok := got[one[v.Name]]; !ok {
						t.Errorf("variable %s: %s offers %v, not %q", v.Name, q, got, one[v.Name])
					}
					checked++
				}
				t.Logf("%d expressions returned data", checked)
			})
		}
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

// hasNumber reports whether one sample at least is a number (a ratio of nothing is NaN) or a
// native histogram that counted something (the heatmap's query, on native storage).
func hasNumber(samples []kit.Sample) bool {
	for _, s := range samples {
		if s.Histogram != nil {
			if s.Histogram.Count > 0 {
				return true
			}
			continue
		}
		if !math.IsNaN(s.Value) {
			return true
		}
	}
	return false
}
