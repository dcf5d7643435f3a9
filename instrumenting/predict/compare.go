package predict

import (
	"fmt"
	"math"
	"time"
)

// This file compares a live run with its prediction, for `anyroute doctor` beside a running
// release: readings of each link of the chain over time against the predicted timeline, and the
// first place they part, named by the link that explains it.

// Observed is one reading of the live chain, T from the start of the load. A Has* false is a
// link that was not read (or had no value).
type Observed struct {
	T time.Duration
	// Rate is the load generator's achieved rate (anyroute load's own /metrics).
	Rate    float64
	HasRate bool
	// Served is the Deployment's requests a second as Prometheus sees them (sum over its pods of
	// rate(app_requests_total[window]), the window of the adapter rule or KEDA's query).
	Served    float64
	HasServed bool
	// Metric is the HPA's current value of its metric (status.currentMetrics), Target its spec's
	// target (0: not read).
	Metric    float64
	HasMetric bool
	Target    float64
	// Replicas is the HPA's desired count (the Deployment's spec), Ready its Ready pods; -1 is not
	// read (Prometheus holds no history of the HPA without kube-state-metrics: the doctor reads
	// its count now only). 0 is read, and none.
	Replicas int
	Ready    int
}

// Tolerance is how far a reading may stray from the prediction and still agree with it.
type Tolerance struct {
	// Time is how far an event may move: a reading agrees when it matches the prediction anywhere
	// within Time of it (the phases of scrapes and syncs are not known beforehand).
	Time time.Duration
	// Rate and Metric are relative, with the absolute floors RateFloor and MetricFloor (near zero a
	// share of a small value is noise).
	Rate, RateFloor     float64
	Metric, MetricFloor float64
	Replicas            int
}

// ToleranceFor is two syncs in time, 10 % of a rate (at least 1 request/s), 20 % of the metric
// (at least a tenth of its target) and one replica: the bar for the e2e.
func ToleranceFor(p Prediction) Tolerance {
	return Tolerance{Time: 2 * p.Delays.Sync, Rate: 0.1, RateFloor: 1, Metric: 0.2, MetricFloor: p.Timeline.Target / 10, Replicas: 1}
}

// Divergence is where a live run left its prediction.
type Divergence struct {
	At                  time.Duration
	Link                string // load, prometheus, metric (the adapter or KEDA), hpa, pods
	Predicted, Observed string
	Explanation         string
}

func (d Divergence) String() string {
	return fmt.Sprintf("T+%s %s: observed %s, predicted %s: %s", d.At, d.Link, d.Observed, d.Predicted, d.Explanation)
}

// span is the range of a predicted quantity over the rows within the time tolerance of a reading.
type span struct{ lo, hi float64 }

func (s span) holds(v, rel, floor float64) bool {
	slack := func(x float64) float64 { return max(math.Abs(x)*rel, floor) }
	return v >= s.lo-slack(s.lo) && v <= s.hi+slack(s.hi)
}

func (s span) String() string {
	if s.lo == s.hi {
		return num(s.lo)
	}
	return num(s.lo) + " to " + num(s.hi)
}

// link is one link's check: whether the reading agrees with the predicted rows around it, and
// what to say when it does not. Links are checked in the chain's order, so the first that
// disagrees is upstream of every other that does.
type link struct {
	name    string
	applies func(Observed) bool
	value   func(Row) (float64, bool)
	read    func(Observed) float64
	rel     func(Tolerance) (float64, float64)
	explain string
}

var links = []link{
	{"load", func(o Observed) bool { return o.HasRate }, func(r Row) (float64, bool) { return r.Rate, true },
		func(o Observed) float64 { return o.Rate }, func(t Tolerance) (float64, float64) { return t.Rate, t.RateFloor },
		"the load generator did not send its stages: the prediction's input, not the chain, differs (a saturated client, or other stages)"},
	{"prometheus", func(o Observed) bool { return o.HasServed }, func(r Row) (float64, bool) { return r.Served, true },
		func(o Observed) float64 { return o.Served }, func(t Tolerance) (float64, float64) { return t.Rate, t.RateFloor },
		"Prometheus does not see the requests the pods served: pods not scraped (annotations, labels), another scrape interval, or a series under another name"},
	{"metric", func(o Observed) bool { return true }, func(r Row) (float64, bool) { return r.Metric, r.HasValue },
		func(o Observed) float64 { return o.Metric }, func(t Tolerance) (float64, float64) { return t.Metric, t.MetricFloor },
		"the value the HPA reads is not the per-pod rate Prometheus holds as the model computes it: the adapter rule's window or re-list interval, KEDA's query, or the HPA's metric name"},
	{"hpa", func(o Observed) bool { return o.Replicas >= 0 }, func(r Row) (float64, bool) { return float64(r.Replicas), true },
		func(o Observed) float64 { return float64(o.Replicas) }, func(t Tolerance) (float64, float64) { return 0, float64(t.Replicas) },
		"the HPA set another count than its arithmetic gives for the value it read: its target, behavior, tolerance or min/max differ from the values', or its controller syncs at another period"},
	{"pods", func(o Observed) bool { return o.Ready >= 0 }, func(r Row) (float64, bool) { return float64(r.Ready), true },
		func(o Observed) float64 { return float64(o.Ready) }, func(t Tolerance) (float64, float64) { return 0, float64(t.Replicas) },
		"the pods the HPA asked for were not Ready when the model had them serving: they start slower than -pod-startup (scheduling, image pulls, readiness probes) or fail"},
}

// Compare walks the readings in time order and returns the first that disagrees with the
// prediction, named by the first link of the chain that disagrees; false when every reading
// agrees. A reading agrees with a link when its value lies within the tolerance of the predicted
// values anywhere within tol.Time of it; a metric the HPA had no value for agrees where the
// prediction has none somewhere within tol.Time either. A target that differs from the values' is
// named before anything else, at the reading that read it.
func Compare(p Prediction, obs []Observed, tol Tolerance) (Divergence, bool) {
	// The target first, at whichever reading read it: a target other than the values' explains
	// every difference downstream of it, earlier readings' too (the doctor reads the HPA now
	// only, after Prometheus' history of the other links).
	for _, o := range obs {
		if o.Target != 0 && math.Abs(o.Target-p.Timeline.Target) > 1e-9 && len(nearRows(p.Timeline.Rows, o.T, tol.Time)) > 0 {
			return Divergence{At: o.T, Link: "hpa", Observed: "target " + num(o.Target), Predicted: "target " + num(p.Timeline.Target),
				Explanation: "the HPA's target is not the values' " + targetKey(p.Timeline.Path) + ": it was changed on the cluster, or the release runs other values"}, true
		}
	}
	for _, o := range obs {
		near := nearRows(p.Timeline.Rows, o.T, tol.Time)
		if len(near) == 0 {
			continue
		}
		for _, l := range links {
			if !l.applies(o) {
				continue
			}
			if l.name == "metric" && !o.HasMetric {
				if allValues(near) {
					return Divergence{At: o.T, Link: "metric", Observed: "no value", Predicted: "a value", Explanation: noValueExplanation(p.Timeline.Path)}, true
				}
				continue
			}
			s, ok := spanOf(near, l.value)
			if !ok {
				continue // the prediction has no value here: nothing to hold the reading to
			}
			if l.name == "metric" && o.Ready > 0 {
				// The chain is a loop: a per-pod value follows the pods that serve. Where the live
				// run has other Ready pods than the model (a link downstream), the same traffic
				// over them is as right as the model's own value; the metric is wrong only outside
				// both.
				if scaled, ok := spanOf(near, func(r Row) (float64, bool) {
					return r.Metric * float64(r.Ready) / float64(o.Ready), r.HasValue && r.Ready > 0
				}); ok {
					s = span{min(s.lo, scaled.lo), max(s.hi, scaled.hi)}
				}
			}
			rel, floor := l.rel(tol)
			if v := l.read(o); !s.holds(v, rel, floor) {
				return Divergence{At: o.T, Link: l.name, Observed: num(v), Predicted: s.String(), Explanation: l.explanation(p.Timeline.Path)}, true
			}
		}
	}
	return Divergence{}, false
}

// cpuMetricExplanation is the metric link's on the metrics-server path, whose metric is no rate.
const cpuMetricExplanation = "the cpu utilization the HPA reads is not the model's: the routes' cpu cost, -cpu-idle, the pods' cpu request or metrics-server's resolution differ from the run's, or the pods did not get the CPU they asked for (a CPU limit, a saturated node)"

// kedaMetricExplanation is the metric link's on the KEDA path, where the HPA reads KEDA's External
// metric (the query's total over the replicas), not a per-pod metric of prometheus-adapter.
const kedaMetricExplanation = "the value the HPA reads is not the Deployment's rate Prometheus holds, over its replicas, as the model computes it: the ScaledObject's query (its window or selector, or keda.query), its metricType (AverageValue divides by the replicas), or the HPA's metric name"

// noValueExplanation is what a metric without value where the model has one says, naming what
// serves the metric on the path: KEDA's metrics server, or the metrics API (the adapter's).
func noValueExplanation(path Path) string {
	if path == PathKEDA {
		return "the HPA has no value for its External metric where the model has one: KEDA's metrics server (external.metrics.k8s.io) does not serve it, " +
			"or the ScaledObject's query answers nothing and its ignoreNullValues is false (run anyroute doctor: the keda-query, scaledobject and external-metric links)"
	}
	return "the HPA has no value for its metric where the model has one: the metrics API does not serve it (run anyroute doctor for the link)"
}

// targetKey is the values' key of the HPA's target on the path.
func targetKey(path Path) string {
	if path == PathCPU {
		return "cpu averageUtilization (hpa.extraMetrics)"
	}
	return "hpa.metric.targetAverageValue"
}

// explanation is what the link says when it disagrees, on the prediction's path.
func (l link) explanation(path Path) string {
	if l.name == "metric" && path == PathCPU {
		return cpuMetricExplanation
	}
	if l.name == "metric" && path == PathKEDA {
		return kedaMetricExplanation
	}
	return l.explain
}

func nearRows(rows []Row, t, within time.Duration) []Row {
	var out []Row
	for _, r := range rows {
		if r.T >= t-within && r.T <= t+within {
			out = append(out, r)
		}
	}
	return out
}

func allValues(rows []Row) bool {
	for _, r := range rows {
		if !r.HasValue {
			return false
		}
	}
	return true
}

func spanOf(rows []Row, value func(Row) (float64, bool)) (span, bool) {
	s, ok := span{math.Inf(1), math.Inf(-1)}, false
	for _, r := range rows {
		if v, has := value(r); has {
			s.lo, s.hi, ok = min(s.lo, v), max(s.hi, v), true
		}
	}
	return s, ok
}
