package doctor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// This file is `anyroute doctor -predict-load`: the release's live timeline (timeline.go) against
// `anyroute predict`'s prediction from the same inputs, and the first reading that leaves it,
// named by the link of the chain that explains it (predict.Compare). The walk of the chain says
// what is broken now; the comparison says when the run stopped doing what the model says, and where.

// Comparison is the live timeline against the prediction, in the report.
type Comparison struct {
	Since time.Time `json:"since"`
	// SinceFrom says where Since came from: -since, or the load generator's start in Prometheus.
	SinceFrom string    `json:"since_from"`
	Until     time.Time `json:"until"`
	Step      string    `json:"step"`
	Readings  int       `json:"readings"`
	// RateFrom is the counter the load link read (the load generator's, else the pods').
	RateFrom string            `json:"rate_from,omitempty"`
	Queries  map[string]string `json:"queries,omitempty"`
	Notes    []string          `json:"notes,omitempty"`
	// Agrees: every reading is within the tolerance of the prediction; else Divergence is the
	// first that is not. Error says why no comparison was made.
	Agrees     bool        `json:"agrees"`
	Tolerance  string      `json:"tolerance,omitempty"`
	Divergence *Divergence `json:"divergence,omitempty"`
	Error      string      `json:"error,omitempty"`
	// Observed are the readings compared, for -svg.
	Observed []predict.Observed `json:"-"`
}

// writeSVG draws the prediction with a comparison's readings over it into file (-svg); without
// readings (no comparison made), the prediction alone.
func writeSVG(file string, p predict.Prediction, obs []predict.Observed) error {
	var b bytes.Buffer
	if err := p.WriteSVGObserved(&b, obs); err != nil {
		return err
	}
	return os.WriteFile(file, b.Bytes(), 0o644)
}

// Divergence is predict.Divergence with its wall-clock time.
type Divergence struct {
	AtSeconds   float64   `json:"at_seconds"` // from the start of the load
	At          time.Time `json:"at"`
	Link        string    `json:"link"`
	Predicted   string    `json:"predicted"`
	Observed    string    `json:"observed"`
	Explanation string    `json:"explanation"`
}

// podsMatchers select the series of the release's pods, the ones gone since included: the
// Deployment's pods are named DEPLOYMENT-TEMPLATEHASH-SUFFIX.
func (c *Chain) podsMatchers() string {
	return fmt.Sprintf(`namespace=%q,pod=~%q`, c.Namespace, regexp.QuoteMeta(c.dep.Name)+"-[a-z0-9]+-[a-z0-9]+")
}

// loadStart is the query of the start of the load generator's last run within a day.
func loadStart(namespace string) string {
	return fmt.Sprintf("max(max_over_time(load_start_time_seconds{namespace=%q}[1d]))", namespace)
}

// Compare reads the release's timeline from t0 (the start of the load; zero: the load generator's
// last start, as Prometheus holds it) to now, a reading every step, and compares it with the
// prediction. It runs after the walk (Run), which found the Deployment, Prometheus, the adapter's
// rule or the ScaledObject, and the HPA.
func (c *Chain) Compare(ctx context.Context, p predict.Prediction, t0, now time.Time, step time.Duration) *Comparison {
	cmp := &Comparison{Since: t0.UTC(), SinceFrom: "-since", Step: step.String()}
	if c.report != nil {
		c.report.Comparison = cmp
	}
	if t0.IsZero() && c.prom != nil {
		q := loadStart(c.Namespace)
		cmp.SinceFrom = q
		v, err := c.query(ctx, q)
		switch {
		case err != nil:
			cmp.Error = "the start of the load: " + err.Error()
			return cmp
		case len(v) == 0 || v[0].Value <= 0:
			cmp.Error = fmt.Sprintf("no -since, and Prometheus holds no start of a load generator in namespace %s (%s): pass -since", c.Namespace, q)
			return cmp
		}
		t0 = time.Unix(0, int64(float64(v[0].Value)*1e9))
		cmp.Since = t0.UTC()
	}
	end := t0.Add(p.Timeline.End)
	if now.Before(end) {
		end = now
	}
	cmp.Until = end.UTC()
	switch {
	case c.dep == nil:
		cmp.Error = "no Deployment: the release link names why"
		return cmp
	case c.prom == nil:
		cmp.Error = "no Prometheus to read the live timeline from: pass -prometheus-url"
		return cmp
	case string(p.Timeline.Path) != c.path():
		cmp.Error = fmt.Sprintf("the prediction is of the %s path, the release runs the %s path: predict with the release's values", p.Timeline.Path, c.path())
		return cmp
	case now.Before(t0):
		cmp.Error = fmt.Sprintf("-since %s is in the future", t0.Format(time.RFC3339))
		return cmp
	}
	pods := c.podsMatchers()
	metricQuery, notes := c.metricQuery(p, pods)
	cmp.Notes = notes
	scrape := p.Delays.Scrape
	if global, jobs, err := c.scrapeIntervals(ctx); err == nil {
		scrape = global
		if len(c.samples) > 0 {
			if d, ok := jobs[string(c.samples[0].Metric["job"])]; ok {
				scrape = d
			}
		}
	}
	src := TimelineSource{Prom: c.prom, Series: c.series, Pods: pods, LoadMatchers: fmt.Sprintf("namespace=%q", c.Namespace),
		LoadWindow: 4 * scrape, ServedWindow: p.Delays.RateWindow, MetricQuery: metricQuery}
	tl, err := src.Read(ctx, t0, end, step)
	if err != nil {
		cmp.Error = err.Error()
		return cmp
	}
	obs := tl.Observed
	if c.hpa != nil && now.Sub(t0) <= p.Timeline.End {
		obs = append(obs, c.hpaNow(now.Sub(t0)))
		cmp.Notes = append(cmp.Notes, "the HPA's count, value and target are read now only: Prometheus holds no history of the HPA without kube-state-metrics")
	}
	if tl.RateFrom != loadSeries {
		cmp.Notes = append(cmp.Notes, fmt.Sprintf("Prometheus holds no %s{namespace=%q} of a load generator: the offered rate is what the pods served, so a load and a scrape problem look alike", loadSeries, c.Namespace))
	}
	cmp.Readings, cmp.RateFrom, cmp.Queries, cmp.Observed = len(obs), tl.RateFrom, tl.Queries, obs
	tol := predict.ToleranceFor(p)
	cmp.Tolerance = fmt.Sprintf("%s in time, %.0f%% of a rate (at least %s/s), %.0f%% of the metric (at least %s), %d replica",
		tol.Time, 100*tol.Rate, formatFloat(tol.RateFloor), 100*tol.Metric, formatFloat(tol.MetricFloor), tol.Replicas)
	div, found := predict.Compare(p, obs, tol)
	if !found {
		cmp.Agrees = true
		return cmp
	}
	cmp.Divergence = &Divergence{AtSeconds: div.At.Seconds(), At: t0.Add(div.At).UTC(), Link: div.Link,
		Predicted: div.Predicted, Observed: div.Observed, Explanation: div.Explanation}
	return cmp
}

// metricQuery is the PromQL of the HPA's value per pod over time, on the release's path: the live
// adapter rule's metricsQuery, or the ScaledObject's query as KEDA serves it; else (the rule or
// the ScaledObject not read) the model's own on that path, with a note saying so.
func (c *Chain) metricQuery(p predict.Prediction, pods string) (string, []string) {
	if c.path() == PathKEDA {
		if c.so != nil {
			if t := c.so.prometheusTrigger(); t != nil && t.Metadata["query"] != "" {
				return KEDAMetricQuery(t.Metadata["query"], t.ignoresNullValues(), pods), nil
			}
		}
		own := fmt.Sprintf("sum(rate(%s{%s}[%s]))", c.series, pods, promDuration(p.Delays.RateWindow))
		return KEDAMetricQuery(own, true, pods), []string{"no ScaledObject's prometheus query was read: KEDA's metric is read as the model computes it (the chart's query over keda.rateWindow), " +
			"so the metric link cannot tell the live query from the model's"}
	}
	rule := ""
	if r := c.adapter.rule(c.series); r != nil {
		rule = r.MetricsQuery
	}
	q, err := MetricQueryOf(PathAdapter, rule, "", c.series, pods)
	if err == nil {
		return q, nil
	}
	own := fmt.Sprintf("sum(rate(<<.Series>>{<<.LabelMatchers>>}[%s])) by (<<.GroupBy>>)", promDuration(p.Delays.RateWindow))
	q, _ = MetricQueryOf(PathAdapter, own, "", c.series, pods)
	return q, []string{fmt.Sprintf("%v: the metric is read as the model computes it, so the metric link cannot tell the live rule from the model's", err)}
}

// hpaNow is the HPA's status as a reading at t: its desired count, its value and target, and the
// Ready pods the walk found.
func (c *Chain) hpaNow(t time.Duration) predict.Observed {
	v := HPAMetricOf(c.hpa)
	return predict.Observed{T: t, Metric: v.Current, HasMetric: v.HasCurrent, Target: v.Target,
		Replicas: int(c.hpa.Status.DesiredReplicas), Ready: len(c.pods)}
}

// writeText prints the comparison under the walk's lines.
func (cmp *Comparison) writeText(w io.Writer) {
	since := cmp.Since.Format(time.RFC3339)
	if cmp.SinceFrom != "-since" {
		since += ", the load generator's start"
	}
	fmt.Fprintf(w, "against the prediction, from %s (T+0) to %s", since, cmp.Until.Format(time.RFC3339))
	if cmp.Error != "" {
		fmt.Fprintf(w, ": no comparison: %s\n", cmp.Error)
		return
	}
	fmt.Fprintf(w, ", %d readings every %s; the offered rate from %s\n", cmp.Readings, cmp.Step, cmp.RateFrom)
	for _, n := range cmp.Notes {
		fmt.Fprintf(w, "      note: %s\n", n)
	}
	if cmp.Agrees {
		fmt.Fprintf(w, "the live timeline agrees with the prediction (within %s)\n", cmp.Tolerance)
		return
	}
	d := cmp.Divergence
	fmt.Fprintf(w, "the live timeline leaves the prediction at T+%s (%s), link %s: observed %s, predicted %s\n",
		time.Duration(d.AtSeconds*float64(time.Second)), d.At.Format(time.RFC3339), d.Link, d.Observed, d.Predicted)
	fmt.Fprintf(w, "      %s\n", d.Explanation)
	if q := cmp.Queries[d.Link]; q != "" {
		fmt.Fprintf(w, "      read with: %s\n", q)
	}
}

// Diverged says whether the comparison failed: a divergence, or none could be made.
func (cmp *Comparison) Diverged() bool {
	return cmp != nil && (cmp.Error != "" || cmp.Divergence != nil)
}

// ParseSince reads -since: an RFC 3339 time, or a duration before now ("10m": the load started
// ten minutes ago).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(strings.TrimPrefix(s, "-"))
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("-since %q: want the start of the load, an RFC 3339 time (2026-12-06T11:00:00Z) or a duration before now (10m)", s)
	}
	return now.Add(-d), nil
}
