package predict

import (
	"testing"
	"time"

	"github.com/anyroute/anyroute/transport/load/stages"
)

func demoAutoscaler(t *testing.T, extra ...string) Autoscaler {
	t.Helper()
	a, err := ReadValues(append([]string{"../../deployments/helm/anyroute/values.yaml", "../../deployments/helm/values-demo.yaml"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// firstAt is when the timeline first has n replicas (or -1).
func firstAt(tl Timeline, pred func(Row) bool) time.Duration {
	for _, r := range tl.Rows {
		if pred(r) {
			return r.T
		}
	}
	return -1
}

// The e2e's recorded run of the demo (docs/autoscaling.md, "The timeline the test recorded"):
// scrapes every 1 s, re-list every 5 s, HPA sync every 3 s, pods Ready within a second; siege's
// 17 requests/s for 90 s. It scaled to 2 at 45 s into the load, to 3 at 85 s, back to 2 at 166 s
// and to 1 at 196 s. The prediction must land within two syncs of each.
func TestDemoMatchesTheRecordedRun(t *testing.T) {
	a := demoAutoscaler(t)
	d := DefaultDelays()
	d.Scrape, d.Relist, d.Sync, d.PodStartup, d.After = time.Second, 5*time.Second, 3*time.Second, 300*time.Millisecond, 3*time.Minute
	load := loadOf(st{0, 17}, st{90 * time.Second, 17}, st{0, 0})
	tl, err := Simulate(a, load, Costs{}, d)
	if err != nil {
		t.Fatal(err)
	}
	recorded := []struct {
		what string
		at   time.Duration
		pred func(Row) bool
	}{
		{"2 replicas", 45 * sec, func(r Row) bool { return r.Replicas == 2 }},
		{"3 replicas", 85 * sec, func(r Row) bool { return r.Replicas == 3 }},
		{"back to 2", 166 * sec, func(r Row) bool { return r.T > 90*sec && r.Replicas == 2 }},
		{"back to 1", 196 * sec, func(r Row) bool { return r.T > 90*sec && r.Replicas == 1 }},
	}
	for _, r := range recorded {
		got := firstAt(tl, r.pred)
		if got < 0 || got < r.at-2*d.Sync || got > r.at+2*d.Sync {
			t.Errorf("%s: predicted at %s, recorded at %s", r.what, got, r.at)
		}
	}
	// Deterministic: the same inputs, the same timeline.
	again, _ := Simulate(a, load, Costs{}, d)
	if len(again.Rows) != len(tl.Rows) {
		t.Fatal("a second run differs")
	}
	for i := range tl.Rows {
		if again.Rows[i] != tl.Rows[i] {
			t.Fatalf("a second run differs at %s: %+v against %+v", tl.Rows[i].T, again.Rows[i], tl.Rows[i])
		}
	}
}

// A load held long enough settles where the target says: ceil(rate/target), within max; and it
// goes back to min once the load is gone. For each path and for a cpu target.
func TestSettlesAtTheTarget(t *testing.T) {
	hold := loadOf(st{30 * sec, 40}, st{10 * time.Minute, 40}, st{0, 0})
	d := DefaultDelays()
	d.After = 10 * time.Minute
	check := func(name string, a Autoscaler, costs Costs, want int) {
		t.Helper()
		tl, err := Simulate(a, hold, costs, d)
		if err != nil {
			t.Fatal(err)
		}
		var atEnd Row
		for _, r := range tl.Rows {
			if r.T <= hold.Duration() {
				atEnd = r
			}
		}
		if atEnd.Replicas != want {
			t.Errorf("%s: %d replicas at the end of the load, want %d", name, atEnd.Replicas, want)
		}
		if last := tl.Rows[len(tl.Rows)-1]; last.Replicas != a.Min {
			t.Errorf("%s: %d replicas 10 minutes after the load, want %d", name, last.Replicas, a.Min)
		}
	}
	a := demoAutoscaler(t)
	a.Max = 20
	check("adapter", a, Costs{}, 8) // 40/5
	k := a
	k.Path, k.KEDARateWindow = PathKEDA, 2*time.Minute
	check("keda", k, Costs{}, 8)
	c := a
	c.Target = 1000 * 1000 // out of reach: only cpu scales
	c.CPUTarget, c.CPURequest = 50, 100
	// 40/s at 5 ms each is 200 millicores: 4 pods of 100m at 50 %.
	check("cpu", c, Costs{CPU: func(time.Duration) float64 { return 0.005 }}, 4)
	co := a
	co.Path, co.Target, co.CPUTarget, co.CPURequest = PathCPU, 0, 50, 100
	check("cpu only", co, Costs{CPU: func(time.Duration) float64 { return 0.005 }}, 4)
}

// On the metrics-server path the cpu utilization is the HPA's metric: every row with a cpu value
// has it as the metric too, against the cpu target.
func TestCPUOnlyMetricIsTheUtilization(t *testing.T) {
	a := demoAutoscaler(t)
	a.Path, a.Target, a.CPUTarget, a.CPURequest = PathCPU, 0, 50, 100
	d := DefaultDelays()
	d.After = time.Minute
	tl, err := Simulate(a, loadOf(st{time.Minute, 20}), Costs{CPU: func(time.Duration) float64 { return 0.005 }}, d)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Target != 50 || tl.Path != PathCPU {
		t.Fatalf("target %v, path %s: want the cpu target 50 on the metrics-server path", tl.Target, tl.Path)
	}
	seen := 0
	for _, r := range tl.Rows {
		if r.HasValue != r.HasCPU || r.Metric != r.CPU {
			t.Fatalf("T+%s: metric %v (%v), cpu %v (%v): want the same", r.T, r.Metric, r.HasValue, r.CPU, r.HasCPU)
		}
		if r.HasCPU {
			seen++
		}
	}
	if seen == 0 {
		t.Error("no row has a cpu value")
	}
}

// st is one stage of a test's load: the rate reaches r at the end of d.
type st struct {
	d time.Duration
	r float64
}

// loadOf is the load of the stages given, spread evenly over the routes.
func loadOf(ss ...st) Load {
	var l Load
	for _, s := range ss {
		l.Stages = append(l.Stages, stages.Stage{Duration: stages.Duration(s.d), TargetRate: s.r})
	}
	return l
}

// An offset as long as its interval is refused with the offset and the interval named.
func TestDelaysCheckNamesTheOffset(t *testing.T) {
	scrape, sync := DefaultDelays(), DefaultDelays()
	scrape.ScrapeOffset = scrape.Scrape
	sync.SyncOffset = sync.Sync
	for _, c := range []struct {
		d    Delays
		want string
	}{
		{scrape, "scrape offset 15s: want less than the scrape interval, 15s"},
		{sync, "sync offset 15s: want less than the sync period, 15s"},
	} {
		if err := c.d.Check(); err == nil || err.Error() != c.want {
			t.Errorf("Check: %v, want %q", err, c.want)
		}
	}
	if err := DefaultDelays().Check(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}
