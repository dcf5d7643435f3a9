//go:build external

package test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/instrumenting"
	"github.com/anyroute/anyroute/test/kit"
)

// The alerts: a Prometheus rules file for the compose stack, the chart's PrometheusRule that
// renders the same rules, and the promtool unit tests both must pass.
const (
	alertsFile     = composeDir + "/prometheus-alerts.yml"
	alertsTestFile = composeDir + "/prometheus-alerts_test.yml"
)

// rulesFile is a Prometheus rules file, decoded into the prometheus-operator's types (the same
// fields, so a PrometheusRule's spec and a rules file compare directly).
type rulesFile struct {
	Groups []monitoringv1.RuleGroup `json:"groups"`
}

func readAlerts(t *testing.T) rulesFile {
	t.Helper()
	var f rulesFile
	readStrictYAML(t, alertsFile, &f)
	return f
}

// composeAlertNames lists the alerts of the compose rules file, in order.
func composeAlertNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, g := range readAlerts(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	return names
}

// runPromtool runs Debian's promtool in dir and returns its output.
func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	r, err := kit.Run(context.Background(), kit.Cmd{Path: kit.SystemTool(t, "promtool"), Args: args, Dir: dir})
	return r.Output, err
}

// TestAlertsPassPromtool checks the compose rules file with promtool and runs its unit tests, and
// fails when an alert has no case that fires it and none that keeps it quiet.
func TestAlertsPassPromtool(t *testing.T) {
	if out, err := runPromtool(t, composeDir, "check", "rules", filepath.Base(alertsFile)); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := runPromtool(t, composeDir, "test", "rules", filepath.Base(alertsTestFile)); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			Name  string `json:"name"`
			Cases []struct {
				Alert     string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	readYAML(t, alertsTestFile, &tests)
	if !slices.Equal(tests.RuleFiles, []string{filepath.Base(alertsFile)}) {
		t.Errorf("%s tests %v, want %s", alertsTestFile, tests.RuleFiles, filepath.Base(alertsFile))
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, c := range tc.Cases {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alert]++
			} else {
				quiet[c.Alert]++
			}
		}
	}
	names := composeAlertNames(t)
	for _, a := range names {
		if fires[a] == 0 || quiet[a] == 0 {
			t.Errorf("alert %s: %d cases where it fires and %d where it does not; want at least one of each", a, fires[a], quiet[a])
		}
	}
	for a := range fires {
		if !slices.Contains(names, a) {
			t.Errorf("%s tests alert %s, which %s does not have", alertsTestFile, a, alertsFile)
		}
	}
	t.Logf("%d alerts, each fired and kept quiet by the unit tests (%d test groups)", len(names), len(tests.Tests))
}

// TestAlertsChartMatchesCompose: the chart's PrometheusRule with an empty selector is the compose
// file, rule for rule (the file carries the chart's defaults).
func TestAlertsChartMatchesCompose(t *testing.T) {
	file := writeValues(t, "prometheusRule:\n  enabled: true\n  selector: \"\"\n")
	r := renderChart(t, "anyroute", "-f", file)
	if len(r.prometheusRules) != 1 {
		t.Fatalf("want one PrometheusRule, got %d", len(r.prometheusRules))
	}
	got, want := r.prometheusRules[0].Spec.Groups, readAlerts(t).Groups
	if !reflect.DeepEqual(got, want) {
		gotYAML, _ := yaml.Marshal(got)
		wantYAML, _ := yaml.Marshal(want)
		t.Fatalf("the chart's rules (selector \"\") differ from %s:\n--- chart\n%s\n--- compose\n%s", alertsFile, gotYAML, wantYAML)
	}
}

// TestAlertsChartPassUnitTests runs the unit tests against the chart's rules as rendered for
// release anyroute in namespace demo (whose pods the tests' series are), then in namespace other,
// where the selector must keep those series out and the firing cases fail.
func TestAlertsChartPassUnitTests(t *testing.T) {
	run := func(args ...string) (string, error) {
		r := renderChart(t, "anyroute", args...)
		if len(r.prometheusRules) != 1 {
			t.Fatalf("want one PrometheusRule, got %d", len(r.prometheusRules))
		}
		return promtoolOnRules(t, r.prometheusRules[0].Spec.Groups)
	}
	if out, err := run("--set", "prometheusRule.enabled=true"); err != nil {
		t.Fatalf("promtool test rules on the chart's rules (namespace %s): %v\n%s", testNamespace, err, out)
	}

	stdout, stderr, err := runHelm(t, "template", "anyroute", chartDir, "--kube-version", helmKubeVersion, "-n", "other",
		"--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict([]byte(stdout), &pr); err != nil {
		t.Fatal(err)
	}
	out, err := promtoolOnRules(t, pr.Spec.Groups)
	if err == nil || !strings.Contains(out, "got:[]") {
		t.Fatalf("rules rendered for namespace other fired on namespace demo's series (err %v):\n%s", err, out)
	}
}

// promtoolOnRules writes groups as the rules file the unit tests name, beside a copy of the unit
// tests, and runs them.
func promtoolOnRules(t *testing.T, groups []monitoringv1.RuleGroup) (string, error) {
	t.Helper()
	dir := t.TempDir()
	data, err := yaml.Marshal(rulesFile{Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(alertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{filepath.Base(alertsFile): data, filepath.Base(alertsTestFile): tests} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runPromtool(t, dir, "check", "rules", filepath.Base(alertsFile)); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, data)
	}
	return runPromtool(t, dir, "test", "rules", filepath.Base(alertsTestFile))
}

// TestAlertsChartValues: the objectives, the latency bound, the flush interval and the metric
// prefix reach the rules, which stay valid.
func TestAlertsChartValues(t *testing.T) {
	file := writeValues(t, `config:
  metrics:
    namespace: shop
    flush_interval: 250ms
    buckets: [0.05, 0.1, 0.25, 1]
prometheusRule:
  enabled: true
  availability: 0.995
  latency:
    bound: 0.25
    objective: 0.9
  flusherStalledIntervals: 20
  selector: 'job="shop"'
`)
	r := renderChart(t, "anyroute", "-f", file)
	if len(r.prometheusRules) != 1 {
		t.Fatalf("want one PrometheusRule, got %d", len(r.prometheusRules))
	}
	exprs := map[string]string{}
	for _, g := range r.prometheusRules[0].Spec.Groups {
		for _, rule := range g.Rules {
			exprs[rule.Alert] = rule.Expr.String()
		}
	}
	for alert, want := range map[string][]string{
		"AnyrouteErrorBudgetBurnFast":   {`shop_requests_total{job="shop", code=~"` + instrumenting.ErrorCodes + `"}[1h]`, `shop_requests_total{job="shop"}[5m]`, "(14.4 * (1 - 0.995))"},
		"AnyrouteErrorBudgetBurnSlow":   {"(6 * (1 - 0.995))", "[6h]", "[30m]"},
		"AnyrouteLatencyBudgetBurnFast": {`shop_request_duration_seconds_bucket{job="shop", le="0.25"}[1h]`, "(14.4 * (1 - 0.9))"},
		"AnyrouteLatencyBudgetBurnSlow": {`shop_request_duration_seconds_count{job="shop"}[6h]`, "(6 * (1 - 0.9))"},
		"AnyrouteMetricsFlusherStalled": {`timestamp(shop_metrics_last_flush_timestamp_seconds{job="shop"})`, "> 5\n"}, // 20 × 250ms
		"AnyrouteTracingSpansDropped":   {`rate(shop_tracing_spans_dropped_total{job="shop"}[5m])`},
	} {
		for _, w := range want {
			if !strings.Contains(exprs[alert], w) {
				t.Errorf("%s: expression lacks %q:\n%s", alert, w, exprs[alert])
			}
		}
	}
	if _, err := promtoolOnRules(t, r.prometheusRules[0].Spec.Groups); err == nil {
		t.Error("the unit tests (objectives 0.999 and 0.99, metrics app_*) pass on rules with other objectives and names")
	}
}

func writeValues(t *testing.T, values string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestLatencyAlertsOnNativeHistograms: the latency alerts read the classic buckets or, where
// Prometheus stores the histogram as a native one only, the native histogram. Two services with
// metrics.native_histograms (one answering half of its requests in 600 ms, past the 0.5 s
// bound; one answering at once) are scraped by two real Prometheus servers that evaluate the
// compose rules file: one storing the classic buckets, one with native histograms, which then
// holds no _bucket or _count series. On both, both latency alerts go pending (their `for` keeps
// them from firing within a test) for the slow service and stay quiet for the fast one.
func TestLatencyAlertsOnNativeHistograms(t *testing.T) {
	slow := start(t, `{"metrics": {"native_histograms": true}, "routes": [
  {"name": "slow", "match": "/slow", "latency": {"distribution": "fixed", "delay": "600ms"}},
  {"name": "fast", "match": "/fast"}]}`)
	fast := start(t, `{"metrics": {"native_histograms": true}, "routes": [{"name": "fast", "match": "/fast"}]}`)
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	target := func(p *proc, pod string) []kit.ScrapeTarget {
		return []kit.ScrapeTarget{{Addr: strings.TrimPrefix(p.admin, "http://"), Labels: map[string]string{"namespace": "demo", "pod": pod}}}
	}
	jobs := []kit.ScrapeJob{
		{Name: "slow", Targets: target(slow, "slow-5d8f7c9b4-x2kqp")},
		{Name: "fast", Targets: target(fast, "fast-5d8f7c9b4-b7wzn")},
	}
	proms := map[string]*kit.Prometheus{
		"classic": kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: jobs, RuleFiles: []string{rules}}),
		"native":  kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: jobs, RuleFiles: []string{rules}, Features: []string{"native-histograms"}}),
	}
	for _, prom := range proms {
		prom.WaitEquals(t, `count(up == 1)`, 2, 15*time.Second)
	}

	// A steady load until both servers hold the alerts, 30 s at most.
	stop := time.Now().Add(30 * time.Second)
	pending := func(prom *kit.Prometheus, job string) float64 {
		v, ok, err := prom.Value(context.Background(),
			`count(ALERTS{alertname=~"AnyrouteLatencyBudgetBurn(Fast|Slow)", job="`+job+`"})`, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return 0
		}
		return v
	}
	// The fast job's quiet must come from its histogram, not from an absence of data: the load
	// also goes on until both servers hold two samples of its request counter (its series
	// appears with its first request, so one scrape can find the alerts pending before that).
	fastRate := func(prom *kit.Prometheus) (float64, bool, error) {
		return prom.Value(context.Background(), `sum(rate(app_requests_total{job="fast"}[1m]))`, time.Time{})
	}
	settled := func() bool {
		for _, prom := range proms {
			if v, ok, err := fastRate(prom); err != nil || !ok || v <= 0 || pending(prom, "slow") < 2 {
				return false
			}
		}
		return true
	}
	for time.Now().Before(stop) && !settled() {
		load(t, 24, 8, func(k int) (string, string) {
			switch k % 3 {
			case 0:
				return "GET", slow.api + "/slow"
			case 1:
				return "GET", slow.api + "/fast"
			}
			return "GET", fast.api + "/fast"
		})
	}
	for storage, prom := range proms {
		if n := pending(prom, "slow"); n != 2 {
			t.Errorf("%s Prometheus: %g of the two latency alerts for job slow, half of whose answers take longer than 0.5 s", storage, n)
		}
		if n := pending(prom, "fast"); n != 0 {
			t.Errorf("%s Prometheus: %g latency alerts for job fast, whose answers all take less than 0.5 s", storage, n)
		}
		if v, ok, err := fastRate(prom); err != nil || !ok || v <= 0 {
			t.Errorf("%s Prometheus: no request rate for job fast (%g, %v, %v)", storage, v, ok, err)
		}
	}
	if v, ok, err := proms["native"].Value(context.Background(), `count({__name__=~"app_request_duration_seconds_(bucket|count)"})`, time.Time{}); err != nil || ok {
		t.Errorf("the native Prometheus holds %g classic series (%v): it did not store the native histogram", v, err)
	}
	if v, ok, err := proms["classic"].Value(context.Background(), `count(app_request_duration_seconds)`, time.Time{}); err != nil || ok {
		t.Errorf("the classic Prometheus holds %g native series (%v)", v, err)
	}
}
