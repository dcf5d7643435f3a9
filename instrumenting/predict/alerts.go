package predict

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/instrumenting"
)

// Objectives are the chart's prometheusRule values the alerts are rendered from.
type Objectives struct {
	Availability float64       // share of requests not failed (instrumenting.ErrorCodes: 5xx, or a fault that fails)
	Bound        time.Duration // the latency bound, a bucket of the histogram
	Latency      float64       // share of answers within Bound
}

// AlertRule is one of the chart's multiwindow burn-rate alerts (templates/prometheusrule.yaml):
// the share of bad answers over both windows above Factor times the budget, for For.
type AlertRule struct {
	Name        string
	Latency     bool // the latency budget; else the error budget
	Factor      float64
	Long, Short time.Duration
	For         time.Duration
}

// SLOAlerts are the alerts a scenario can set off, as the chart's template writes them.
var SLOAlerts = []AlertRule{
	{Name: "AnyrouteErrorBudgetBurnFast", Factor: 14.4, Long: time.Hour, Short: 5 * time.Minute, For: 2 * time.Minute},
	{Name: "AnyrouteErrorBudgetBurnSlow", Factor: 6, Long: 6 * time.Hour, Short: 30 * time.Minute, For: 15 * time.Minute},
	{Name: "AnyrouteLatencyBudgetBurnFast", Latency: true, Factor: 14.4, Long: time.Hour, Short: 5 * time.Minute, For: 2 * time.Minute},
	{Name: "AnyrouteLatencyBudgetBurnSlow", Latency: true, Factor: 6, Long: 6 * time.Hour, Short: 30 * time.Minute, For: 15 * time.Minute},
}

// Threshold is the share of bad answers above which the rule's expression holds.
func (r AlertRule) Threshold(o Objectives) float64 {
	if r.Latency {
		return r.Factor * (1 - o.Latency)
	}
	return r.Factor * (1 - o.Availability)
}

// Series is one synthesized series of the request metrics, as Prometheus scraped it: a value per
// scrape from 0, NaN before the series appeared.
type Series struct {
	Name   string // app_requests_total, app_request_duration_seconds_count or _bucket
	Route  string
	Code   string
	Le     string // the bucket's bound
	Values []float64
	points []Sample // Values as samples, made once
}

// Labels writes the series' labels as the alerts' unit tests name them: the labels a Kubernetes
// scrape gives a pod of release anyroute in namespace demo, which the chart's default selector
// matches.
func (s Series) Labels() string {
	l := fmt.Sprintf(`%s{namespace="demo", job="anyroute", pod="anyroute-5d8f7c9b4-x2kqp", method="GET", route=%q, code=%q`, s.Name, s.Route, s.Code)
	if s.Le != "" {
		l += fmt.Sprintf(", le=%q", s.Le)
	}
	return l + "}"
}

func (s *Series) samples(interval time.Duration) []Sample {
	if s.points == nil {
		s.points = []Sample{}
		for i, v := range s.Values {
			if !math.IsNaN(v) {
				s.points = append(s.points, Sample{time.Duration(i) * interval, v})
			}
		}
	}
	return s.points
}

// Synthesize counts the traffic into the series the alerts read, scraped every interval until
// end: each (route, code) counter and histogram count, and the bucket of the bound; counts are
// whole requests as of the last flush, a series appears with its first request.
func Synthesize(tr *Traffic, end, interval, flush time.Duration) ([]Series, error) {
	type acc struct{ total, fast, published, publishedFast float64 }
	accs := map[[2]string]*acc{}
	var keys [][2]string
	scrapes := int(end/interval) + 1
	out := map[[2]string][3]*Series{}
	for t := time.Duration(0); t <= end; t += Step {
		if t > 0 {
			cr, err := tr.At(t - Step/2)
			if err != nil {
				return nil, err
			}
			for _, c := range cr {
				k := [2]string{c.Route, c.Code}
				a := accs[k]
				if a == nil {
					a = &acc{}
					accs[k] = a
					keys = append(keys, k)
				}
				n := c.Rate * Step.Seconds()
				a.total += n
				a.fast += n * (1 - c.Slow)
			}
		}
		if every(t, flush, 0) {
			for _, a := range accs {
				a.published = math.Floor(a.total + 1e-9)
				a.publishedFast = min(math.Floor(a.fast+1e-9), a.published)
			}
		}
		if !every(t, interval, 0) {
			continue
		}
		i := int(t / interval)
		for _, k := range keys {
			a := accs[k]
			if a.published < 1 {
				continue
			}
			ss, ok := out[k]
			if !ok {
				le := fmt.Sprint(tr.Bound.Seconds())
				for j, name := range []string{"app_requests_total", "app_request_duration_seconds_count", "app_request_duration_seconds_bucket"} {
					s := &Series{Name: name, Route: k[0], Code: k[1], Values: nans(scrapes)}
					if j == 2 {
						s.Le = le
					}
					ss[j] = s
				}
				out[k] = ss
			}
			ss[0].Values[i], ss[1].Values[i], ss[2].Values[i] = a.published, a.published, a.publishedFast
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	var list []Series
	for _, k := range keys {
		if ss, ok := out[k]; ok {
			for _, s := range ss {
				list = append(list, *s)
			}
		}
	}
	return list, nil
}

func nans(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

// AlertEpisode is one stretch of an alert's expression holding: pending from Pending, firing from
// Firing (if it held for the rule's `for`), until Resolved (-1: still at the end).
type AlertEpisode struct {
	Pending, Firing, Resolved time.Duration
}

// AlertPrediction is one alert's course.
type AlertPrediction struct {
	Rule     AlertRule
	Episodes []AlertEpisode
}

// sumRate is sum(rate(series[window])) over the series pick selects; ok false when none answers.
func sumRate(series []Series, interval time.Duration, pick func(Series) bool, t, window time.Duration) (float64, bool) {
	sum, any := 0.0, false
	for i := range series {
		s := &series[i]
		if !pick(*s) {
			continue
		}
		if r, ok := Rate(s.samples(interval), t, window); ok {
			sum += r
			any = true
		}
	}
	return sum, any
}

// badShare is the rule's ratio over one window, as its expression computes it; ok false when
// the expression has no value.
func badShare(r AlertRule, series []Series, interval, t, window time.Duration) (float64, bool) {
	if r.Latency {
		count, ok1 := sumRate(series, interval, func(s Series) bool { return s.Name == "app_request_duration_seconds_count" }, t, window)
		fast, ok2 := sumRate(series, interval, func(s Series) bool { return s.Name == "app_request_duration_seconds_bucket" }, t, window)
		if !ok1 || !ok2 {
			return 0, false
		}
		return (count - fast) / count, true
	}
	errs, ok1 := sumRate(series, interval, func(s Series) bool {
		return s.Name == "app_requests_total" && instrumenting.IsErrorCode(s.Code)
	}, t, window)
	all, ok2 := sumRate(series, interval, func(s Series) bool { return s.Name == "app_requests_total" }, t, window)
	if !ok1 || !ok2 {
		return 0, false
	}
	return errs / all, true
}

// PredictAlerts evaluates each rule every eval interval from 0 to end, as Prometheus' rule
// manager (and promtool) does, over the synthesized series.
func PredictAlerts(series []Series, interval, eval, end time.Duration, o Objectives) []AlertPrediction {
	var out []AlertPrediction
	for _, r := range SLOAlerts {
		p := AlertPrediction{Rule: r}
		thr := r.Threshold(o)
		var cur *AlertEpisode
		for t := time.Duration(0); t <= end; t += eval {
			long, ok1 := badShare(r, series, interval, t, r.Long)
			short, ok2 := badShare(r, series, interval, t, r.Short)
			holds := ok1 && ok2 && long > thr && short > thr
			switch {
			case holds && cur == nil:
				p.Episodes = append(p.Episodes, AlertEpisode{Pending: t, Firing: -1, Resolved: -1})
				cur = &p.Episodes[len(p.Episodes)-1]
				if r.For == 0 {
					cur.Firing = t
				}
			case holds && cur.Firing < 0 && t-cur.Pending >= r.For:
				cur.Firing = t
			case !holds && cur != nil:
				cur.Resolved = t
				cur = nil
			}
		}
		out = append(out, p)
	}
	return out
}

// ruleTemplates are an alert's labels and annotations as the rules file writes them.
type ruleTemplates struct {
	Labels      map[string]string
	Annotations map[string]string
}

// readRuleTemplates reads the alerts' labels and annotations from a Prometheus rules file.
func readRuleTemplates(file string) (map[string]ruleTemplates, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]ruleTemplates{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = ruleTemplates{Labels: r.Labels, Annotations: r.Annotations}
			}
		}
	}
	return out, nil
}

var labelRef = regexp.MustCompile(`\{\{\s*\$labels\.(\w+)\s*\}\}`)

// expand fills {{ $labels.NAME }} of an annotation; any other template is refused.
func expand(tmpl string, labels map[string]string) (string, error) {
	s := labelRef.ReplaceAllStringFunc(tmpl, func(m string) string { return labels[labelRef.FindStringSubmatch(m)[1]] })
	if strings.Contains(s, "{{") {
		return "", fmt.Errorf("annotation %q: predict expands only {{ $labels.NAME }}", tmpl)
	}
	return s, nil
}
