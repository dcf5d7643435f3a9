//go:build external

package test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// The promtool cases anyroute predict wrote for the committed incident drill (deployments/predict;
// make docs writes them, predict's TestExampleIsFresh keeps them fresh).
const predictedAlertsTestFile = composeDir + "/prometheus-alerts_predicted_test.yml"

// predictedAlertNames are the alerts the predicted cases check.
var predictedAlertNames = []string{
	"AnyrouteErrorBudgetBurnFast", "AnyrouteErrorBudgetBurnSlow",
	"AnyrouteLatencyBudgetBurnFast", "AnyrouteLatencyBudgetBurnSlow",
}

// failedAlert finds the alerts promtool names in the cases that failed.
var failedAlert = regexp.MustCompile(`alertname: (Anyroute\w+)`)

// TestPredictedAlertsFollowTheRules runs the predicted cases with promtool: against the shipped
// rules they pass; against a copy of the rules where one alert's threshold is doubled, or halved,
// they fail, and promtool names that alert and no other: each threshold is held by the cases on
// its own, in both directions.
func TestPredictedAlertsFollowTheRules(t *testing.T) {
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := os.ReadFile(predictedAlertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cases), "\n  - "+filepath.Base(alertsFile)+"\n") {
		t.Fatalf("%s does not test %s", predictedAlertsTestFile, filepath.Base(alertsFile))
	}
	run := func(rules string) (string, error) {
		dir := t.TempDir()
		for name, data := range map[string]string{filepath.Base(alertsFile): rules, "cases_test.yml": string(cases)} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return runPromtool(t, dir, "test", "rules", "cases_test.yml")
	}
	if out, err := run(string(rules)); err != nil {
		t.Fatalf("the predicted cases fail against the shipped rules: %v\n%s", err, out)
	}
	for _, alert := range predictedAlertNames {
		for _, scale := range []struct {
			name   string
			factor map[string]string
		}{
			{"doubled", map[string]string{"14.4": "28.8", "6": "12"}},
			{"halved", map[string]string{"14.4": "7.2", "6": "3"}},
		} {
			changed := changeThreshold(t, string(rules), alert, scale.factor)
			out, err := run(changed)
			if err == nil {
				t.Errorf("%s's threshold %s: the predicted cases still pass", alert, scale.name)
				continue
			}
			named := map[string]bool{}
			for _, m := range failedAlert.FindAllStringSubmatch(out, -1) {
				named[m[1]] = true
			}
			if !named[alert] || len(named) != 1 {
				t.Errorf("%s's threshold %s: promtool names %v, want %s alone\n%s", alert, scale.name, named, alert, out)
			}
		}
	}
}

// changeThreshold rewrites the burn factor of one alert's expression (both of its windows).
func changeThreshold(t *testing.T, rules, alert string, factors map[string]string) string {
	t.Helper()
	i := strings.Index(rules, "- alert: "+alert+"\n")
	if i < 0 {
		t.Fatalf("the rules have no alert %s", alert)
	}
	j := i + strings.Index(rules[i:], "\n        for: ")
	expr := rules[i:j]
	changed := expr
	for from, to := range factors {
		changed = strings.ReplaceAll(changed, "("+from+" * (1 - ", "("+to+" * (1 - ")
	}
	if strings.Count(changed, "* (1 - ") != 2 || changed == expr {
		t.Fatalf("alert %s: no burn factor of %v in both windows of its expression:\n%s", alert, factors, expr)
	}
	return rules[:i] + changed + rules[j:]
}

// TestPredictedAlertsFollowChartValues: with other objectives in the values (99.5 % available,
// 95 % within 0.25 s), anyroute predict predicts other alerts, and its cases pass against the
// chart's PrometheusRule rendered from the same values for release anyroute in namespace demo,
// whose selector the cases' series match: the prediction reads the values the rules come from.
func TestPredictedAlertsFollowChartValues(t *testing.T) {
	values := writeValues(t, "prometheusRule:\n  enabled: true\n  availability: 0.995\n  latency:\n    bound: 0.25\n    objective: 0.95\n")
	r := renderChart(t, "anyroute", "-f", values)
	if len(r.prometheusRules) != 1 {
		t.Fatalf("want one PrometheusRule, got %d", len(r.prometheusRules))
	}
	dir := t.TempDir()
	rules, err := yaml.Marshal(rulesFile{Groups: r.prometheusRules[0].Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := predict.Run([]string{
		"-chart", "../deployments/helm/anyroute", "-f", "../deployments/helm/values-demo.yaml", "-f", values,
		"-adapter", "../deployments/helm/prometheus-adapter-values.yaml",
		"-config", "../deployments/predict/incident-drill.json", "-load", "../deployments/predict/incident-drill-load.json",
		"-eval-interval", "15s", "-rules", filepath.Join(dir, "rules.yml"), "-alerts", filepath.Join(dir, "cases_test.yml"), "-o", "summary",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("anyroute predict: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "availability 0.995, latency 0.95 within 250ms") {
		t.Errorf("the prediction does not use the values' objectives:\n%s", stdout.String())
	}
	shipped, err := os.ReadFile(predictedAlertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := os.ReadFile(filepath.Join(dir, "cases_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(alertRuleTests(cases), alertRuleTests(shipped)) {
		t.Error("other objectives, the same predicted alert times as the defaults'")
	}
	if out, err := runPromtool(t, dir, "test", "rules", "cases_test.yml"); err != nil {
		t.Fatalf("the cases predicted from the values fail against the chart's rules rendered from them: %v\n%s", err, out)
	}
	t.Logf("predicted with the values' objectives:\n%s", stdout.String())
}

// alertRuleTests is the part of a promtool test file after its input series.
func alertRuleTests(file []byte) []byte {
	_, after, _ := bytes.Cut(file, []byte("alert_rule_test:"))
	return after
}
