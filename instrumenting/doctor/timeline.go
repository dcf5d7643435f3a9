package doctor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// This file reads a release's live timeline, for the comparison with a prediction
// (compare.go): Prometheus' history of the load generator's counter, of the pods' counter and of
// their scrapes, as readings of the chain (predict.Observed) every step from the start of the load.
// Prometheus holds no history of the HPA (that takes kube-state-metrics, which the chart does not
// install): its count and value are the HPA's status now, one reading at the end.

// loadSeries is the counter `anyroute load` exports of the requests it sent.
const loadSeries = "load_sent_requests_total"

// TimelineSource says where in Prometheus a release's timeline is and how to read each link.
type TimelineSource struct {
	Prom v1.API
	// Series is the pods' counter (app_requests_total); Pods the label matchers of the release's
	// pods' series, e.g. namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+" (pods come and go:
	// the Deployment's name, not today's pods).
	Series, Pods string
	// LoadMatchers select the load generator's load_sent_requests_total (namespace="demo").
	LoadMatchers string
	// LoadWindow is the rate window of the offered rate: a few scrapes, short enough to follow a
	// stage. A rate over [t-w, t] is the mean rate at t-w/2, and is read so.
	LoadWindow time.Duration
	// ServedWindow is the prediction's rate window (the model's adapter rule or KEDA query): the
	// prometheus link holds what Prometheus holds to the model through the model's own window, so
	// that a live rule with another window shows at the metric link, not here.
	ServedWindow time.Duration
	// MetricQuery is PromQL of one series: the value the HPA reads per pod, as the live adapter
	// rule or KEDA query computes it (MetricQueryOf).
	MetricQuery string
}

// Timeline is a release's live timeline as read, and how.
type Timeline struct {
	Observed []predict.Observed
	// RateFrom names the counter the load link read: the load generator's, or, when Prometheus
	// holds none, the pods' own (then a load and a scrape problem look alike).
	RateFrom string
	Queries  map[string]string // link: the PromQL it read
}

// Queries of one link each; offered is evaluated LoadWindow/2 later than the reading it fills.
func (s TimelineSource) queries() map[string]string {
	return map[string]string{
		"load":       fmt.Sprintf("sum(rate(%s{%s}[%s]))", loadSeries, s.LoadMatchers, promDuration(s.LoadWindow)),
		"offered":    fmt.Sprintf("sum(rate(%s{%s}[%s]))", s.Series, s.Pods, promDuration(s.LoadWindow)),
		"prometheus": fmt.Sprintf("sum(rate(%s{%s}[%s]))", s.Series, s.Pods, promDuration(s.ServedWindow)),
		"metric":     s.MetricQuery,
		"pods":       fmt.Sprintf("sum(up{%s})", s.Pods),
	}
}

// Read reads the timeline from t0 (the start of the load) to end, a reading every step.
func (s TimelineSource) Read(ctx context.Context, t0, end time.Time, step time.Duration) (Timeline, error) {
	if step < time.Second || s.LoadWindow < time.Second || s.ServedWindow < time.Second {
		return Timeline{}, fmt.Errorf("timeline: step %s, load window %s and served window %s must be a second or more", step, s.LoadWindow, s.ServedWindow)
	}
	t0 = t0.Truncate(time.Millisecond)
	if end.Before(t0) {
		return Timeline{}, fmt.Errorf("timeline: ends (%s) before the load starts (%s)", end.Format(time.RFC3339), t0.Format(time.RFC3339))
	}
	n := int(end.Sub(t0)/step) + 1
	last := t0.Add(time.Duration(n-1) * step)
	q := s.queries()
	shift := s.LoadWindow / 2
	results := map[string]model.Matrix{}
	for _, name := range []string{"load", "prometheus", "metric", "pods"} {
		from, to := t0, last
		if name == "load" {
			from, to = t0.Add(shift), last.Add(shift)
		}
		m, err := s.rangeQuery(ctx, q[name], from, to, step)
		if err != nil {
			return Timeline{}, err
		}
		results[name] = m
	}
	tl := Timeline{RateFrom: loadSeries, Queries: map[string]string{"load": q["load"], "prometheus": q["prometheus"], "metric": q["metric"], "pods": q["pods"]}}
	if len(results["load"]) == 0 {
		m, err := s.rangeQuery(ctx, q["offered"], t0.Add(shift), last.Add(shift), step)
		if err != nil {
			return Timeline{}, err
		}
		results["load"], tl.RateFrom, tl.Queries["load"] = m, s.Series, q["offered"]
	}
	obs, err := Observations(t0, step, n, shift, results)
	if err != nil {
		return Timeline{}, err
	}
	tl.Observed = obs
	return tl, nil
}

// rangeQuery evaluates q from start to end every step; the doctor's queries answer one series.
func (s TimelineSource) rangeQuery(ctx context.Context, q string, start, end time.Time, step time.Duration) (model.Matrix, error) {
	value, _, _, err := s.Prom.QueryRange(ctx, q, v1.Range{Start: start, End: end, Step: step})
	var refused *v1.Error
	if errors.As(err, &refused) {
		return nil, fmt.Errorf("prometheus refused %s: %s", q, refused.Msg)
	}
	if err != nil {
		return nil, fmt.Errorf("query_range %s: %w", q, err)
	}
	m, ok := value.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query_range %s gives a %s, not a range vector", q, value.Type())
	}
	return m, nil
}

// Observations turns range-query answers into readings: n of them, step apart from t0, each
// from the answers' points at its time. The answers are by link: "load" (the offered rate,
// evaluated shift later than the reading it fills), "prometheus" (what Prometheus sees the pods
// serve), "metric" (the HPA's value per pod), "pods" (the pods up). Each holds at most one series.
//
// Where an answer has no point: the load link reads 0 once its series exists (the load generator
// had stopped or not started), and is not read while no answer has any point; Prometheus has seen
// 0 served; the metric has no value (as the HPA would have none); the pods are not read (-1).
// The HPA's count is never in Prometheus: -1.
func Observations(t0 time.Time, step time.Duration, n int, shift time.Duration, answers map[string]model.Matrix) ([]predict.Observed, error) {
	points := map[string]map[int]float64{}
	for name, m := range answers {
		if len(m) > 1 {
			return nil, fmt.Errorf("the %s query answers %d series, want one", name, len(m))
		}
		at := map[int]float64{}
		start := t0
		if name == "load" {
			start = t0.Add(shift)
		}
		for _, series := range m {
			for _, p := range series.Values {
				off := p.Timestamp.Time().Sub(start)
				k := int(math.Round(float64(off) / float64(step)))
				if k < 0 || k >= n || off-time.Duration(k)*step > time.Millisecond || time.Duration(k)*step-off > time.Millisecond {
					return nil, fmt.Errorf("the %s query answers a point at %s, between the readings", name, p.Timestamp.Time().Format(time.RFC3339Nano))
				}
				if v := float64(p.Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
					at[k] = v
				}
			}
		}
		points[name] = at
	}
	obs := make([]predict.Observed, n)
	for k := range obs {
		o := predict.Observed{T: time.Duration(k) * step, Replicas: -1, Ready: -1}
		if len(points["load"]) > 0 {
			o.Rate, o.HasRate = points["load"][k], true
		}
		o.Served, o.HasServed = points["prometheus"][k], true
		o.Metric, o.HasMetric = points["metric"][k]
		if up, ok := points["pods"][k]; ok {
			o.Ready = int(math.Round(up))
		}
		obs[k] = o
	}
	return obs, nil
}

// MetricQueryOf is the PromQL of the value the HPA reads per pod, over time: the adapter rule's
// metricsQuery over the release's pods, grouped by pod and averaged (the Pods metric's average);
// or the ScaledObject's query over the pods up (KEDA's External metric divided by the replicas),
// with KEDA's default ignoreNullValues (KEDAMetricQuery).
func MetricQueryOf(path, ruleQuery, kedaQuery, series, pods string) (string, error) {
	switch path {
	case PathAdapter:
		if ruleQuery == "" {
			return "", fmt.Errorf("the adapter rule has no metricsQuery")
		}
		r := strings.NewReplacer("<<.Series>>", series, "<<.LabelMatchers>>", pods, "<<.GroupBy>>", "pod")
		q := r.Replace(ruleQuery)
		if strings.Contains(q, "<<") {
			return "", fmt.Errorf("the adapter rule's metricsQuery %s has a template field the doctor does not fill", ruleQuery)
		}
		return "avg(" + q + ")", nil
	case PathKEDA:
		if kedaQuery == "" {
			return "", fmt.Errorf("the ScaledObject's trigger has no query")
		}
		return KEDAMetricQuery(kedaQuery, true, pods), nil
	}
	return "", fmt.Errorf("path %q: neither %s nor %s", path, PathAdapter, PathKEDA)
}

// KEDAMetricQuery is the PromQL of the value the HPA KEDA made reads per pod, over time: the
// ScaledObject's query, which KEDA's metrics server serves as the External metric, over the pods
// up (the HPA divides an AverageValue External metric by the replicas). Where the query answers
// nothing (before the pods' counter exists, that is before their first request) KEDA serves 0 when
// the trigger ignores null values, its default, and the HPA has 0: so does this query. Otherwise
// the trigger errors and the HPA has no value, and neither has this query.
func KEDAMetricQuery(query string, ignoreNullValues bool, pods string) string {
	if ignoreNullValues {
		query += " or on() vector(0)"
	}
	return fmt.Sprintf("(%s) / on() sum(up{%s})", query, pods)
}

// promDuration writes a duration as PromQL reads it: whole seconds, else milliseconds.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
