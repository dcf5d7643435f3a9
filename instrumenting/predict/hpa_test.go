package predict

import (
	"testing"
	"time"
)

const sec = time.Second

func podsWith(values ...int64) []PodState {
	var ps []PodState
	for _, v := range values {
		ps = append(ps, PodState{Ready: true, HasMetric: v >= 0, Value: v})
	}
	return ps
}

var defaultTol = tolerances{DefaultTolerance, DefaultTolerance}

// The algorithm's ratio (kubernetes.io, "Horizontal Pod Autoscaling", algorithm details): a
// metric of 200m against 100m doubles the replicas, 50m halves them, and a ratio within the
// tolerance (0.9 to 1.1) changes nothing.
func TestPodsMetricRatioAndTolerance(t *testing.T) {
	cases := []struct {
		name    string
		current int
		values  []int64
		target  int64
		want    int
	}{
		{"200m against 100m doubles", 2, []int64{200, 200}, 100, 4},
		{"50m against 100m halves", 4, []int64{50, 50, 50, 50}, 100, 2},
		{"1.05 is within the tolerance", 4, []int64{10500, 10500, 10500, 10500}, 10000, 4},
		{"0.91 is within the tolerance", 4, []int64{9100, 9100, 9100, 9100}, 10000, 4},
		{"1.15 is not", 4, []int64{11500, 11500, 11500, 11500}, 10000, 5},
		{"0.85 is not", 4, []int64{8500, 8500, 8500, 8500}, 10000, 4}, // ceil(0.85*4) = 4
		{"0.7 is not", 4, []int64{7000, 7000, 7000, 7000}, 10000, 3},
		{"the average of the pods", 2, []int64{17000, 0}, 5000, 4}, // 8.5/5 = 1.7 of 2 pods: ceil(3.4)
	}
	for _, c := range cases {
		got, _, err := PodsMetricReplicas(c.current, podsWith(c.values...), c.target, defaultTol)
		if err != nil || got != c.want {
			t.Errorf("%s: got %d (%v), want %d", c.name, got, err, c.want)
		}
	}
}

// Pods without a value count as the target on a scale-down and as 0 on a scale-up, and a change
// they would reverse is none; pending pods count as 0 on a scale-up.
func TestPodsMetricMissingAndPendingPods(t *testing.T) {
	// Two pods at 20 against 10, two without a value: [20 20 0 0] averages 10, within tolerance.
	pods := podsWith(20000, 20000, -1, -1)
	if got, _, _ := PodsMetricReplicas(4, pods, 10000, defaultTol); got != 4 {
		t.Errorf("scale-up with missing pods: got %d, want 4 (they count as 0)", got)
	}
	// Two pods at 2 against 10, two without: [2 2 10 10] is 0.6: ceil(0.6*4) = 3.
	pods = podsWith(2000, 2000, -1, -1)
	if got, _, _ := PodsMetricReplicas(4, pods, 10000, defaultTol); got != 3 {
		t.Errorf("scale-down with missing pods: got %d, want 3 (they count as the target)", got)
	}
	// One pod at 30 against 10 and one pending: [30 0] is 1.5: ceil(1.5*2) = 3.
	pods = append(podsWith(30000), PodState{Pending: true})
	if got, _, _ := PodsMetricReplicas(2, pods, 10000, defaultTol); got != 3 {
		t.Errorf("scale-up with a pending pod: got %d, want 3", got)
	}
	// Without the pending pod it would be ceil(3*1) = 3 as well, but from one pod: 3.
	if got, _, _ := PodsMetricReplicas(1, podsWith(30000), 10000, defaultTol); got != 3 {
		t.Errorf("one pod at 3 times the target: got %d, want 3", got)
	}
	if _, _, err := PodsMetricReplicas(1, podsWith(-1), 10000, defaultTol); err == nil {
		t.Error("no pod with a value: want no proposal")
	}
}

// KEDA's HPA divides the total by the target, against the status replicas.
func TestExternalPerPod(t *testing.T) {
	if n, per := ExternalPerPodReplicas(1, 17000, 5000, defaultTol); n != 4 || per != 17000 {
		t.Errorf("17/s against 5 from 1: got %d (%v per replica), want 4", n, per)
	}
	if n, _ := ExternalPerPodReplicas(4, 21000, 5000, defaultTol); n != 4 {
		t.Errorf("21/s on 4 against 5 (1.05): got %d, want 4 (tolerance)", n)
	}
	if n, _ := ExternalPerPodReplicas(4, 0, 5000, defaultTol); n != 0 {
		t.Errorf("no traffic: got %d, want 0 (min replicas clamp it later)", n)
	}
}

func behavior(up, down Rules) *Behavior { return &Behavior{ScaleUp: up, ScaleDown: down} }

// The documentation's scale-up example: from 1 pod to a proposal of 10 with the default policies
// (4 pods or 100 % per 15 s, the larger): 5 at once, no more within the period, then on.
func TestScaleUpLimitedByPolicies(t *testing.T) {
	c := &Controller{Min: 1, Max: 20, Behavior: behavior(DefaultScaleUp(), DefaultScaleDown())}
	steps := []struct {
		at       time.Duration
		current  int
		proposal int
		want     int
	}{
		{0, 1, 10, 5},          // max(1+4, 1*2)
		{10 * sec, 5, 10, 5},   // within the period: it started at 1, so the limit is still 5
		{15 * sec, 5, 10, 10},  // the period has passed: max(5+4, 10)
		{30 * sec, 10, 30, 20}, // max(14, 20), and max replicas 20
	}
	for _, s := range steps {
		if got, why := c.Decide(s.at, s.current, s.proposal); got != s.want {
			t.Fatalf("at %s from %d proposing %d: got %d (%s), want %d", s.at, s.current, s.proposal, got, why, s.want)
		}
	}
	// selectPolicy Min picks the smaller change: min(10+4, 20).
	up := DefaultScaleUp()
	up.SelectPolicy = "Min"
	c = &Controller{Min: 1, Max: 100, Behavior: behavior(up, DefaultScaleDown())}
	if got, why := c.Decide(0, 10, 50); got != 14 || why != "ScaleUpLimit" {
		t.Errorf("selectPolicy Min: got %d (%s), want 14 (ScaleUpLimit)", got, why)
	}
}

// The documentation's scale-down example: 4 pods or 10 % per minute, selectPolicy Max (the larger
// change): from 80, 8 go (10 %), then from 72, 8 again (7.2 rounded up in what goes), then 4 pods
// is larger than 10 % of 40 and below.
func TestScaleDownLimitedByPolicies(t *testing.T) {
	down := Rules{SelectPolicy: "Max", Tolerance: DefaultTolerance, Policies: []Policy{
		{Type: "Pods", Value: 4, Period: 60 * sec}, {Type: "Percent", Value: 10, Period: 60 * sec},
	}}
	c := &Controller{Min: 1, Max: 100, Behavior: behavior(DefaultScaleUp(), down)}
	cur := 80
	want := []int{72, 64, 57, 51, 45, 40, 36, 32}
	for i, w := range want {
		at := time.Duration(i) * 61 * sec
		got, _ := c.Decide(at, cur, 10)
		if got != w {
			t.Fatalf("step %d from %d: got %d, want %d", i, cur, got, w)
		}
		if again, _ := c.Decide(at+30*sec, got, 10); again != got {
			t.Fatalf("step %d: a second scale-down within the minute went to %d", i, again)
		}
		cur = got
	}
	// Disabled: never down.
	down.SelectPolicy = "Disabled"
	c = &Controller{Min: 1, Max: 100, Behavior: behavior(DefaultScaleUp(), down)}
	if got, _ := c.Decide(0, 10, 1); got != 10 {
		t.Errorf("scale-down Disabled: got %d, want 10", got)
	}
}

// The scale-down stabilization window holds the highest recommendation of its span: proposals
// that flap between 4 and 2 keep 4 pods, and the count falls only once the window holds no 4.
func TestStabilizationPreventsFlapping(t *testing.T) {
	down := DefaultScaleDown()
	down.Stabilization = 60 * sec
	c := &Controller{Min: 1, Max: 10, Behavior: behavior(DefaultScaleUp(), down)}
	cur := 4
	for i, p := range []int{4, 2, 4, 2, 4, 2, 2, 2, 2, 2} {
		at := time.Duration(i) * 15 * sec
		got, why := c.Decide(at, cur, p)
		want := 4
		if i >= 8 { // the last 4 was at 60 s: at 120 s it is a whole window old, out of it
			want = 2
		}
		if got != want {
			t.Fatalf("at %s proposing %d: got %d (%s), want %d", at, p, got, why, want)
		}
		cur = got
	}
	// The scale-up window holds the lowest: a spike of one sync does not scale up.
	up := DefaultScaleUp()
	up.Stabilization = 30 * sec
	c = &Controller{Min: 1, Max: 10, Behavior: behavior(up, DefaultScaleDown())}
	if got, _ := c.Decide(0, 2, 2); got != 2 {
		t.Fatal(got)
	}
	if got, why := c.Decide(15*sec, 2, 8); got != 2 || why != "ScaleUpStabilized" {
		t.Errorf("a spike within the scale-up window: got %d (%s), want 2 (ScaleUpStabilized)", got, why)
	}
	// At 30 s the 2 has left the window: 8 is its lowest, which the policies cut to 2+4 = 6.
	if got, why := c.Decide(30*sec, 2, 8); got != 6 || why != "ScaleUpLimit" {
		t.Errorf("a sustained rise: got %d (%s), want 6 (ScaleUpLimit)", got, why)
	}
}

// Without behavior the controller's older rules apply: up to twice the pods (at least 4) per
// sync, down only to the highest recommendation of the last 5 minutes.
func TestFixedRulesWithoutBehavior(t *testing.T) {
	c := &Controller{Min: 1, Max: 50}
	if got, _ := c.Decide(0, 1, 20); got != 4 {
		t.Errorf("from 1: got %d, want 4", got)
	}
	if got, _ := c.Decide(15*sec, 4, 20); got != 8 {
		t.Errorf("from 4: got %d, want 8", got)
	}
	if got, _ := c.Decide(30*sec, 8, 2); got != 16 {
		t.Errorf("the recommendation of 20 is within 5 minutes, twice 8 the limit: got %d, want 16", got)
	}
	if got, _ := c.Decide(45*sec, 16, 2); got != 20 {
		t.Errorf("still within 5 minutes of 20: got %d, want 20", got)
	}
	if got, _ := c.Decide(45*sec+DefaultDownscaleStabilization, 20, 2); got != 2 {
		t.Errorf("5 minutes later: got %d, want 2", got)
	}
}

// Min and max bound the count; a count outside them is brought in at once.
func TestMinMax(t *testing.T) {
	c := &Controller{Min: 2, Max: 5, Behavior: behavior(DefaultScaleUp(), DefaultScaleDown())}
	if got, _ := c.Decide(0, 4, 40); got != 5 {
		t.Errorf("up to max: got %d, want 5", got)
	}
	if got, why := c.Decide(0, 7, 7); got != 5 || why != "TooManyReplicas" {
		t.Errorf("above max: got %d (%s)", got, why)
	}
	if got, why := c.Decide(0, 1, 1); got != 2 || why != "TooFewReplicas" {
		t.Errorf("below min: got %d (%s)", got, why)
	}
}

// CPU: a pod still initialising whose sample predates its readiness is unready, and counts as 0
// on a scale-up: its start-up burn does not scale the Deployment (here [100m, 0] of 200m is 50 %,
// the target: 2 stays 2, where counting it would give 4). Missing pods count as their request on
// a scale-down.
func TestCPUUtilization(t *testing.T) {
	a := PodState{Ready: true, HasMetric: true, Value: 100, Request: 100}
	starting := PodState{Ready: true, HasMetric: true, Value: 100, Request: 100, CPUUnready: true}
	if got, _, _ := CPUUtilizationReplicas(2, []PodState{a, starting}, 50, defaultTol); got != 2 {
		t.Errorf("with a pod initialising: got %d, want 2", got)
	}
	counted := starting
	counted.CPUUnready = false
	if got, _, _ := CPUUtilizationReplicas(2, []PodState{a, counted}, 50, defaultTol); got != 4 {
		t.Errorf("both counted: got %d, want 4", got)
	}
	// 20m of 100m against 50 %: 0.4; a pod without a sample counts as 100m: [20 100]/200 = 60 %,
	// 1.2, the other direction: no change.
	low := PodState{Ready: true, HasMetric: true, Value: 20, Request: 100}
	if got, _, _ := CPUUtilizationReplicas(2, []PodState{low, {Ready: true, Request: 100}}, 50, defaultTol); got != 2 {
		t.Errorf("scale-down with a pod missing: got %d, want 2", got)
	}
	if got, _, _ := CPUUtilizationReplicas(2, []PodState{low, low}, 50, defaultTol); got != 1 {
		t.Errorf("both at 20 %%: got %d, want 1", got)
	}
}
