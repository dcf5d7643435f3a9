package test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/instrumenting"
)

// requestsCodeMatcher finds the code matchers inside the selectors of app_requests_total (not of
// app_upstream_requests_total, whose codes are the upstream's): the group is the matcher's
// operator and value.
var requestsCodeMatcher = regexp.MustCompile(`(?:^|[^_a-z])app_requests_total\{[^}]*?code\s*(=~|!~|=|!=)\s*"([^"]*)"`)

// errorMatchersIn returns each code matcher of app_requests_total in expr, as operator and value.
func errorMatchersIn(expr string) [][2]string {
	var out [][2]string
	for _, m := range requestsCodeMatcher.FindAllStringSubmatch(expr, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// TestErrorRatiosCountWhatTheClientSawFail: wherever the dashboard and the alerts pick the errors
// out of app_requests_total, they pick instrumenting.ErrorCodes (a 5xx status or a fault but
// slow_body), so that no panel or alert counts 5xx alone and reads 0 while a route resets every
// connection. The chart's rules are kept equal to the compose file by TestAlertsChartMatchesCompose.
func TestErrorRatiosCountWhatTheClientSawFail(t *testing.T) {
	want := [2]string{"=~", instrumenting.ErrorCodes}
	check := func(where, expr string) int {
		t.Helper()
		ms := errorMatchersIn(expr)
		for _, m := range ms {
			if m != want {
				t.Errorf("%s picks the errors with code%s%q, want code%s%q:\n%s", where, m[0], m[1], want[0], want[1], expr)
			}
		}
		return len(ms)
	}

	d := readDashboard(t)
	panels := 0
	for _, p := range d.allPanels() {
		n := 0
		for _, tg := range p.Targets {
			n += check("panel "+p.Title, tg.Expr)
		}
		if n > 0 {
			panels++
		}
	}
	// The overall and per-route ratios and the burn rate.
	if panels < 3 {
		t.Errorf("%d dashboard panels pick errors out of app_requests_total, want at least 3", panels)
	}

	b, err := os.ReadFile(composeDir + "/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if check("alert "+r.Alert, r.Expr) > 0 {
				alerts++
			}
			if strings.HasPrefix(r.Alert, "AnyrouteErrorBudget") && len(errorMatchersIn(r.Expr)) == 0 {
				t.Errorf("alert %s picks no errors out of app_requests_total:\n%s", r.Alert, r.Expr)
			}
		}
	}
	if alerts != 2 {
		t.Errorf("%d alerts pick errors out of app_requests_total, want the 2 error-budget burns", alerts)
	}
}

// TestErrorMatcherFinder: the finder the test above relies on sees a code matcher in
// app_requests_total's selector wherever it stands, and none in app_upstream_requests_total's.
func TestErrorMatcherFinder(t *testing.T) {
	for expr, want := range map[string]int{
		`sum(rate(app_requests_total{code=~"5.."}[5m]))`: 1,
		`sum(rate(app_requests_total{namespace=~"$namespace", job="x", code=~"5.."}[5m])) / sum(rate(app_requests_total{job="x"}[5m]))`: 1,
		`rate(app_requests_total{code="503"}[1m]) + rate(app_requests_total{route="a", code!~"2.."}[1m])`:                               2,
		`rate(app_upstream_requests_total{code=~"5..|timeout"}[1m])`:                                                                    0,
		`rate(app_requests_total[1m])`: 0,
	} {
		if got := len(errorMatchersIn(expr)); got != want {
			t.Errorf("%d code matchers found in %s, want %d", got, expr, want)
		}
	}
}
