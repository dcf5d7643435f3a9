package doctor

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// series is one answer series of a range query: values at t0+offset.
func series(t0 time.Time, points map[time.Duration]float64) model.Matrix {
	s := &model.SampleStream{Metric: model.Metric{}}
	for off, v := range points {
		s.Values = append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(t0.Add(off).UnixNano()), Value: model.SampleValue(v)})
	}
	return model.Matrix{s}
}

// Range-query answers become readings at their times from the start of the load: the offered
// rate from points half its window later, a link with no point read as its rule says (the load 0
// once its series exists, Prometheus' served 0, the metric without value, the pods not read), the
// HPA's count never read from Prometheus.
func TestObservations(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	step, shift := 10*time.Second, 2*time.Second
	answers := map[string]model.Matrix{
		"load":       series(t0, map[time.Duration]float64{shift: 0, 10*time.Second + shift: 20, 20*time.Second + shift: 19.5}),
		"prometheus": series(t0, map[time.Duration]float64{10 * time.Second: 18, 30 * time.Second: 20}),
		"metric":     series(t0, map[time.Duration]float64{20 * time.Second: 9.5, 30 * time.Second: math.NaN()}),
		"pods":       series(t0, map[time.Duration]float64{0: 1, 10 * time.Second: 1, 20 * time.Second: 2, 30 * time.Second: 2}),
	}
	got, err := Observations(t0, step, 4, shift, answers)
	if err != nil {
		t.Fatal(err)
	}
	want := []predict.Observed{
		{T: 0, Rate: 0, HasRate: true, Served: 0, HasServed: true, Replicas: -1, Ready: 1},
		{T: 10 * time.Second, Rate: 20, HasRate: true, Served: 18, HasServed: true, Replicas: -1, Ready: 1},
		{T: 20 * time.Second, Rate: 19.5, HasRate: true, Served: 0, HasServed: true, Metric: 9.5, HasMetric: true, Replicas: -1, Ready: 2},
		{T: 30 * time.Second, Rate: 0, HasRate: true, Served: 20, HasServed: true, Replicas: -1, Ready: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("%d readings, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reading %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}

	// No load generator's series at all: the load link is not read; no pods' up: not read.
	got, err = Observations(t0, step, 2, shift, map[string]model.Matrix{"prometheus": series(t0, map[time.Duration]float64{0: 3})})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].HasRate || got[0].Ready != -1 || !got[0].HasServed || got[0].Served != 3 || got[1].HasMetric {
		t.Errorf("without the load's and the pods' series: %+v", got)
	}

	// What the doctor's queries never answer is an error, not a guess.
	for name, answers := range map[string]map[string]model.Matrix{
		"two series":     {"metric": append(series(t0, map[time.Duration]float64{0: 1}), series(t0, map[time.Duration]float64{0: 2})...)},
		"off the step":   {"pods": series(t0, map[time.Duration]float64{5 * time.Second: 1})},
		"past the end":   {"pods": series(t0, map[time.Duration]float64{40 * time.Second: 1})},
		"load unshifted": {"load": series(t0, map[time.Duration]float64{10 * time.Second: 1})},
	} {
		if _, err := Observations(t0, step, 4, shift, answers); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The HPA's value over time is the live rule's query over the release's pods, averaged as the
// Pods metric averages; KEDA's is its query over the pods up, 0 where it answers nothing (KEDA's
// default ignoreNullValues); a rule the doctor cannot fill is
// refused.
func TestMetricQueryOf(t *testing.T) {
	pods := `namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+"`
	q, err := MetricQueryOf(PathAdapter, "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)", "", "app_requests_total", pods)
	if want := `avg(sum(rate(app_requests_total{` + pods + `}[2m])) by (pod))`; err != nil || q != want {
		t.Errorf("adapter: %q, %v; want %q", q, err, want)
	}
	q, err = MetricQueryOf(PathKEDA, "", `sum(rate(app_requests_total{namespace="demo"}[1m]))`, "app_requests_total", pods)
	if want := `(sum(rate(app_requests_total{namespace="demo"}[1m])) or on() vector(0)) / on() sum(up{` + pods + `})`; err != nil || q != want {
		t.Errorf("keda: %q, %v; want %q", q, err, want)
	}
	// A trigger with ignoreNullValues false: KEDA errors on an empty answer, the HPA has no value.
	if q, want := KEDAMetricQuery("sum(x)", false, pods), `(sum(x)) / on() sum(up{`+pods+`})`; q != want {
		t.Errorf("keda, null values not ignored: %q, want %q", q, want)
	}
	if _, err := MetricQueryOf(PathAdapter, "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) / <<.Other>>", "", "x", pods); err == nil || !strings.Contains(err.Error(), "template field") {
		t.Errorf("an unknown template field: %v", err)
	}
	if _, err := MetricQueryOf(PathAdapter, "", "", "x", pods); err == nil {
		t.Error("no rule query: no error")
	}
}

// -since is a time or a duration before now; anything else names the flag.
func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-12-06T10:50:00Z": now.Add(-10 * time.Minute),
		"10m":                  now.Add(-10 * time.Minute),
		"-90s":                 now.Add(-90 * time.Second),
	} {
		if got, err := ParseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%q: %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "0s", "2026-12-06 10:50"} {
		if _, err := ParseSince(in, now); err == nil || !strings.Contains(err.Error(), "-since") {
			t.Errorf("%q: %v, want an error naming -since", in, err)
		}
	}
}
