package predict

import (
	"math"
	"time"
)

// This file is the HorizontalPodAutoscaler controller's arithmetic (k8s.io/kubernetes
// pkg/controller/podautoscaler, autoscaling/v2), written again over plain values: the replica
// calculators that turn a metric into a proposal, and the normalisation that turns proposals into
// the replicas the controller sets (stabilization windows, scaling policies, min and max). Time is
// the prediction's clock, so that the same inputs give the same answer.

// DefaultTolerance is the controller's --horizontal-pod-autoscaler-tolerance: a usage ratio within
// 10 % of 1 changes nothing.
const DefaultTolerance = 0.1

// DefaultDownscaleStabilization is the controller's --horizontal-pod-autoscaler-downscale-stabilization,
// the scale-down window of an HPA without behavior, and of a scaleDown without its own window.
const DefaultDownscaleStabilization = 5 * time.Minute

// Policy is one HPAScalingPolicy: at most Value pods, or Value percent, per Period.
type Policy struct {
	Type   string // Pods or Percent
	Value  int
	Period time.Duration
}

// Rules is one direction's HPAScalingRules, defaults filled in.
type Rules struct {
	Stabilization time.Duration
	SelectPolicy  string // Max, Min or Disabled
	Policies      []Policy
	Tolerance     float64
}

// Behavior is an HPA's spec.behavior; nil Behavior is an HPA without one, which the controller
// scales by its older fixed rules.
type Behavior struct {
	ScaleUp, ScaleDown Rules
}

// DefaultScaleUp and DefaultScaleDown are the API's defaults for a behavior that leaves a
// direction out (autoscaling/v2 GenerateHPAScaleUpRules, GenerateHPAScaleDownRules).
func DefaultScaleUp() Rules {
	return Rules{SelectPolicy: "Max", Tolerance: DefaultTolerance, Policies: []Policy{
		{Type: "Pods", Value: 4, Period: 15 * time.Second},
		{Type: "Percent", Value: 100, Period: 15 * time.Second},
	}}
}

func DefaultScaleDown() Rules {
	return Rules{Stabilization: DefaultDownscaleStabilization, SelectPolicy: "Max", Tolerance: DefaultTolerance,
		Policies: []Policy{{Type: "Percent", Value: 100, Period: 15 * time.Second}}}
}

// tolerances is the band of usage ratios that change nothing: [1-down, 1+up].
type tolerances struct{ down, up float64 }

func (t tolerances) within(ratio float64) bool { return 1-t.down <= ratio && ratio <= 1+t.up }

// PodState is what the replica calculator knows of one pod at a sync.
type PodState struct {
	Pending bool // created, not yet running: counted unready
	Ready   bool
	// HasMetric and Value: the metric the metrics API answered for the pod (milli-units, as the
	// controller reads quantities).
	HasMetric bool
	Value     int64
	// CPUUnready: for a resource metric, the pod counts as unready (not Ready, or within its
	// initialisation period with a sample taken before readiness plus one metric window).
	CPUUnready bool
	// Request is the pod's CPU request in millicores (resource metrics).
	Request int64
}

// errNoMetrics is the controller's "did not receive metrics for targeted pods": no proposal.
type errNoMetrics struct{}

func (errNoMetrics) Error() string { return "no metrics for the targeted pods" }

// groupPods sorts pods as the controller's groupPods does: pending and (for CPU) unready pods,
// pods without a metric, and the count of the others; metrics holds the values of the pods that
// count.
func groupPods(pods []PodState, resource bool) (ready int, unready, missing []int, metrics map[int]int64) {
	metrics = map[int]int64{}
	for i, p := range pods {
		if p.Pending {
			unready = append(unready, i)
			continue
		}
		if !p.HasMetric {
			missing = append(missing, i)
			continue
		}
		if resource && p.CPUUnready {
			unready = append(unready, i)
			continue
		}
		metrics[i] = p.Value
		ready++
	}
	return ready, unready, missing, metrics
}

// plainRatio is GetMetricUsageRatio: the average of the values (an integer division of
// milli-units, as the controller's) against the target.
func plainRatio(metrics map[int]int64, target int64) float64 {
	var sum int64
	for _, v := range metrics {
		sum += v
	}
	return float64(sum/int64(len(metrics))) / float64(target)
}

// PodsMetricReplicas is the controller's calcPlainMetricReplicas for a Pods metric of target
// type AverageValue (target in milli-units): the replicas it proposes and the average it saw.
func PodsMetricReplicas(current int, pods []PodState, target int64, tol tolerances) (int, float64, error) {
	ready, unready, missing, metrics := groupPods(pods, false)
	full := func(int) int64 { return target }
	return calcPlain(current, ready, unready, missing, metrics, target, tol, plainRatio, full)
}

// calcPlain is the body calcPlainMetricReplicas and GetResourceReplicas share: missing pods count
// as full (the target; for a resource, their whole request) on a scale-down and as 0 on a
// scale-up, unready pods as 0 on a scale-up, and a change that those pods would reverse, or that
// lies within the tolerance, is none.
func calcPlain(current, ready int, unready, missing []int, metrics map[int]int64, target int64, tol tolerances,
	ratioOf func(map[int]int64, int64) float64, full func(pod int) int64) (int, float64, error) {
	if len(metrics) == 0 {
		return 0, 0, errNoMetrics{}
	}
	ratio := ratioOf(metrics, target)
	seen := ratio * float64(target)
	scaleUpWithUnready := len(unready) > 0 && ratio > 1
	if !scaleUpWithUnready && len(missing) == 0 {
		if tol.within(ratio) {
			return current, seen, nil
		}
		return int(math.Ceil(ratio * float64(ready))), seen, nil
	}
	for _, i := range missing {
		if ratio < 1 {
			metrics[i] = full(i)
		} else {
			metrics[i] = 0
		}
	}
	if scaleUpWithUnready {
		for _, i := range unready {
			metrics[i] = 0
		}
	}
	newRatio := ratioOf(metrics, target)
	if tol.within(newRatio) || (ratio > 1 && newRatio < 1) || (ratio < 1 && newRatio > 1) {
		return current, seen, nil
	}
	n := int(math.Ceil(newRatio * float64(len(metrics))))
	if (newRatio < 1 && n > current) || (newRatio > 1 && n < current) {
		return current, seen, nil
	}
	return n, seen, nil
}

// ExternalPerPodReplicas is GetExternalPerPodMetricReplicas, the HPA KEDA makes (an External
// metric of target type AverageValue): the total the metric answered (milli-units) divided by the
// target, against the Deployment's status replicas; it also returns the per-replica usage shown.
func ExternalPerPodReplicas(statusReplicas int, total, target int64, tol tolerances) (int, float64) {
	n := statusReplicas
	ratio := float64(total) / (float64(target) * float64(statusReplicas))
	if !tol.within(ratio) {
		n = int(math.Ceil(float64(total) / float64(target)))
	}
	return n, math.Ceil(float64(total) / float64(statusReplicas))
}

// CPUUtilizationReplicas is GetResourceReplicas for cpu with target type Utilization (percent of
// the pods' requests): values are millicores used, Request the pods' requests.
func CPUUtilizationReplicas(current int, pods []PodState, targetPercent int64, tol tolerances) (int, float64, error) {
	ready, unready, missing, metrics := groupPods(pods, true)
	requests := map[int]int64{}
	for i, p := range pods {
		requests[i] = p.Request
	}
	// GetResourceUtilizationRatio: the sum of usage over the sum of the requests of the same pods,
	// in whole percent (an integer division, as the controller's).
	ratioOf := func(m map[int]int64, target int64) float64 {
		var used, req int64
		for i, v := range m {
			used += v
			req += requests[i]
		}
		util := used * 100 / req
		return float64(util) / float64(target)
	}
	full := func(i int) int64 { return requests[i] }
	return calcPlain(current, ready, unready, missing, metrics, targetPercent, tol, ratioOf, full)
}

// Controller is one HPA's memory between syncs: its recommendations and scale events.
type Controller struct {
	Min, Max int
	Behavior *Behavior // nil: the controller's fixed rules

	recs       []stamped
	ups, downs []stamped
}

type stamped struct {
	at time.Duration
	n  int
}

// Tolerances is the band of the controller: the behavior's per-direction tolerance, else 0.1.
func (c *Controller) Tolerances() tolerances {
	if c.Behavior == nil {
		return tolerances{DefaultTolerance, DefaultTolerance}
	}
	return tolerances{down: c.Behavior.ScaleDown.Tolerance, up: c.Behavior.ScaleUp.Tolerance}
}

// Decide is one reconcile's end: given the replicas the Deployment has (spec) and the largest
// proposal of the metrics, the replicas the controller sets at now, and why.
func (c *Controller) Decide(now time.Duration, current, proposal int) (int, string) {
	if current == 0 && c.Min != 0 {
		return 0, "ScalingDisabled"
	}
	if current > c.Max {
		return c.Max, "TooManyReplicas"
	}
	if current < c.Min {
		return c.Min, "TooFewReplicas"
	}
	if c.Behavior == nil {
		return c.fixedRules(now, current, proposal)
	}
	stabilized, why := c.stabilize(now, current, proposal)
	n, limit := c.rateLimit(now, current, stabilized)
	if limit != "" {
		why = limit
	}
	if n != current {
		if n > current {
			c.ups = append(c.ups, stamped{now, n - current})
		} else {
			c.downs = append(c.downs, stamped{now, current - n})
		}
	}
	return n, why
}

// stabilize is stabilizeRecommendationWithBehaviors: the current count is raised to the lowest
// recommendation of the scale-up window and lowered to the highest of the scale-down window
// (both including this one); a recommendation exactly a window old has left it (the controller's
// syncs come a little later than their period).
func (c *Controller) stabilize(now time.Duration, current, proposal int) (int, string) {
	up, down := proposal, proposal
	b := c.Behavior
	for _, r := range c.recs {
		age := now - r.at
		if age < b.ScaleUp.Stabilization {
			up = min(up, r.n)
		}
		if age < b.ScaleDown.Stabilization {
			down = max(down, r.n)
		}
	}
	c.recs = append(c.recs, stamped{now, proposal})
	n := max(current, up)
	n = min(n, down)
	switch {
	case n > proposal:
		return n, "ScaleDownStabilized"
	case n < proposal:
		return n, "ScaleUpStabilized"
	}
	return n, "DesiredWithinRange"
}

// periodStart is the replicas there were period before now: current, less those added since, plus
// those removed since.
func (c *Controller) periodStart(now time.Duration, current int, period time.Duration) int {
	return current - changed(c.ups, now, period) + changed(c.downs, now, period)
}

// changed is getReplicasChangePerPeriod: the replicas added (or removed) within period of now.
func changed(events []stamped, now, period time.Duration) int {
	n := 0
	for _, e := range events {
		if now-e.at < period {
			n += e.n
		}
	}
	return n
}

// rateLimit is convertDesiredReplicasWithBehaviorRate: the policies' limit on the change from the
// replicas at the start of each policy's period, selectPolicy picking among them, then min and max.
func (c *Controller) rateLimit(now time.Duration, current, desired int) (int, string) {
	b := c.Behavior
	switch {
	case desired > current:
		limit := c.scaleUpLimit(now, current, b.ScaleUp)
		limit = max(limit, current)
		most, why := c.Max, "TooManyReplicas"
		if most > limit {
			most, why = limit, "ScaleUpLimit"
		}
		if desired > most {
			return most, why
		}
	case desired < current:
		limit := c.scaleDownLimit(now, current, b.ScaleDown)
		limit = min(limit, current)
		least, why := c.Min, "TooFewReplicas"
		if least < limit {
			least, why = limit, "ScaleDownLimit"
		}
		if desired < least {
			return least, why
		}
	}
	return desired, ""
}

// scaleUpLimit is calculateScaleUpLimitWithScalingRules: the most replicas the scale-up policies
// allow, each counted from the replicas at the start of its period. It stays apart from
// scaleDownLimit, as upstream's two functions do, because the two differ in three places at once:
// the sense of selectPolicy, the sign of the change and the rounding (up here, down there).
func (c *Controller) scaleUpLimit(now time.Duration, current int, r Rules) int {
	if r.SelectPolicy == "Disabled" {
		return current
	}
	pick, result := maxInt, math.MinInt32
	if r.SelectPolicy == "Min" {
		pick, result = minInt, math.MaxInt32
	}
	for _, p := range r.Policies {
		start := c.periodStart(now, current, p.Period)
		var proposed int
		if p.Type == "Pods" {
			proposed = start + p.Value
		} else {
			proposed = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is calculateScaleDownLimitWithBehaviors: the fewest replicas the scale-down
// policies allow, each counted from the replicas at the start of its period.
func (c *Controller) scaleDownLimit(now time.Duration, current int, r Rules) int {
	if r.SelectPolicy == "Disabled" {
		return current
	}
	pick, result := minInt, math.MaxInt32
	if r.SelectPolicy == "Min" {
		pick, result = maxInt, math.MinInt32
	}
	for _, p := range r.Policies {
		start := c.periodStart(now, current, p.Period)
		var proposed int
		if p.Type == "Pods" {
			proposed = start - p.Value
		} else {
			proposed = int(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// fixedRules is normalizeDesiredReplicas, for an HPA without behavior: the highest recommendation
// of the last 5 minutes, at most twice the current count (at least 4), within min and max.
func (c *Controller) fixedRules(now time.Duration, current, proposal int) (int, string) {
	n := proposal
	for _, r := range c.recs {
		if now-r.at < DefaultDownscaleStabilization && r.n > n {
			n = r.n
		}
	}
	c.recs = append(c.recs, stamped{now, proposal})
	why := "DesiredWithinRange"
	if n > proposal {
		why = "ScaleDownStabilized"
	}
	most := min(c.Max, max(2*current, 4))
	switch {
	case n < c.Min:
		return c.Min, "TooFewReplicas"
	case n > most:
		if most < c.Max {
			return most, "ScaleUpLimit"
		}
		return most, "TooManyReplicas"
	}
	return n, why
}

func minInt(a, b int) int { return min(a, b) }
func maxInt(a, b int) int { return max(a, b) }
