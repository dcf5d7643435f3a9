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

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"

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
		"AnyrouteErrorBudgetBurnFast":   {`shop_requests_total{job="shop", code=~"5.."}[1h]`, `shop_requests_total{job="shop"}[5m]`, "(14.4 * (1 - 0.995))"},
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
