package predict

import (
	"strings"
	"testing"
	"time"
)

// compareSetup is the demo under 20 requests/s for 6 minutes: the prediction, and a run of the
// model with one thing changed standing in for the live chain (a simulation of the chain is the
// one chain whose breakage is known exactly).
func compareSetup(t *testing.T) (Autoscaler, Load, Delays, Prediction) {
	t.Helper()
	a := demoAutoscaler(t)
	load := loadOf(st{time.Minute, 20}, st{5 * time.Minute, 20}, st{0, 0})
	d := DefaultDelays()
	tl, err := Simulate(a, load, Costs{}, d)
	if err != nil {
		t.Fatal(err)
	}
	return a, load, d, Prediction{Timeline: tl, Delays: d, Load: load}
}

// observe reads a simulated run as the doctor would read the live one, every 10 s.
func observe(t *testing.T, a Autoscaler, load Load, d Delays, edit func(*Observed)) []Observed {
	t.Helper()
	tl, err := Simulate(a, load, Costs{}, d)
	if err != nil {
		t.Fatal(err)
	}
	var out []Observed
	for at := time.Duration(0); at <= tl.End; at += 10 * time.Second {
		var last Row
		for _, r := range tl.Rows {
			if r.T <= at {
				last = r
			}
		}
		o := Observed{T: at, Rate: load.RateAt(at), HasRate: true, Served: last.Served, HasServed: true,
			Metric: last.Metric, HasMetric: last.HasValue, Target: float64(a.Target) / 1000, Replicas: last.Replicas, Ready: last.Ready}
		if edit != nil {
			edit(&o)
		}
		out = append(out, o)
	}
	return out
}

// The prediction agrees with itself read every 10 s, and with a run whose syncs and scrapes fall
// elsewhere in their periods (within two syncs).
func TestCompareAgrees(t *testing.T) {
	a, load, d, p := compareSetup(t)
	if div, found := Compare(p, observe(t, a, load, d, nil), ToleranceFor(p)); found {
		t.Errorf("the prediction against itself: %s", div)
	}
	shifted := d
	shifted.SyncOffset, shifted.ScrapeOffset = 7*time.Second, 4*time.Second
	if div, found := Compare(p, observe(t, a, load, shifted, nil), ToleranceFor(p)); found {
		t.Errorf("syncs and scrapes at other phases: %s", div)
	}
}

// Each breakage alone is named by its own link.
func TestCompareNamesTheLink(t *testing.T) {
	a, load, d, p := compareSetup(t)
	tol := ToleranceFor(p)
	cases := []struct {
		name string
		obs  []Observed
		link string
	}{
		{"the load at half its stages", observe(t, a, load, d, func(o *Observed) { o.Rate /= 2 }), "load"},
		{"Prometheus scraping one pod in two", observe(t, a, load, d, func(o *Observed) { o.Served /= 2 }), "prometheus"},
		{"the HPA's target changed on the cluster", func() []Observed {
			w := a
			w.Target = 1000 * 1000
			return observe(t, w, load, d, nil)
		}(), "hpa"},
		{"the HPA's target changed, the target not read", func() []Observed {
			w := a
			w.Target = 1000 * 1000
			return observe(t, w, load, d, func(o *Observed) { o.Target = 0 })
		}(), "hpa"},
		{"the HPA's target changed, read now only (the doctor's readings)", func() []Observed {
			w := a
			w.Target = 1000 * 1000
			obs := observe(t, w, load, d, func(o *Observed) { o.Target, o.Replicas = 0, -1 })
			last := &obs[len(obs)-1]
			last.Target, last.Replicas = 1000, 1
			return obs
		}(), "hpa"},
		{"another behavior: scale-up held for 3 minutes", func() []Observed {
			w := a
			b := *a.Behavior
			b.ScaleUp.Stabilization = 3 * time.Minute
			w.Behavior = &b
			return observe(t, w, load, d, nil)
		}(), "hpa"},
		{"an adapter rule over 10 minutes", func() []Observed {
			slow := d
			slow.RateWindow = 10 * time.Minute
			return observe(t, a, load, slow, func(o *Observed) { o.Served, o.HasServed = 0, false })
		}(), "metric"},
		{"no metric served", observe(t, a, load, d, func(o *Observed) { o.HasMetric = false; o.Replicas = 1; o.Ready = 1 }), "metric"},
		{"pods Ready after 90 s", func() []Observed {
			slow := d
			slow.PodStartup = 90 * time.Second
			// The doctor reads the live HPA: its count is the model's, only Ready lags.
			return observe(t, a, load, slow, nil)
		}(), "pods"},
	}
	for _, c := range cases {
		div, found := Compare(p, c.obs, tol)
		if !found {
			t.Errorf("%s: no divergence found", c.name)
			continue
		}
		t.Logf("%s: %s", c.name, div)
		if div.Link != c.link {
			t.Errorf("%s: named %s (%s), want %s", c.name, div.Link, div, c.link)
		}
		if strings.HasPrefix(c.name, "the HPA's target changed") && c.obs[len(c.obs)-1].Target != 0 && !strings.Contains(div.Explanation, "targetAverageValue") {
			t.Errorf("%s: %s does not say the target differs", c.name, div)
		}
	}
}

// A count not read (-1) holds the reading to nothing: the readings of a run whose pods start
// late diverge at the pods link, and at neither count's link once neither is read (the doctor's
// readings from Prometheus' history); the load, Prometheus and metric links are still held.
func TestCompareCountsNotRead(t *testing.T) {
	a, load, d, p := compareSetup(t)
	slow := d
	slow.PodStartup = 90 * time.Second
	unread := func(o *Observed) { o.Replicas, o.Ready = -1, -1 }
	if div, found := Compare(p, observe(t, a, load, slow, nil), ToleranceFor(p)); !found || div.Link != "pods" {
		t.Fatalf("late pods, counted: %v %s, want the pods link", found, div)
	}
	if div, found := Compare(p, observe(t, a, load, slow, unread), ToleranceFor(p)); found && (div.Link == "pods" || div.Link == "hpa") {
		t.Errorf("late pods, counts not read: %s", div)
	}
	if div, found := Compare(p, observe(t, a, load, d, unread), ToleranceFor(p)); found {
		t.Errorf("the prediction against itself, counts not read: %s", div)
	}
	half := func(o *Observed) { unread(o); o.Rate /= 2 }
	if div, found := Compare(p, observe(t, a, load, d, half), ToleranceFor(p)); !found || div.Link != "load" {
		t.Errorf("half the load, counts not read: %v %s, want the load link", found, div)
	}
}

// On the metrics-server path the prediction agrees with its own run, and a run whose requests
// cost more CPU than the model was told (or whose idle pods burn more) is named by the metric link
// with the cpu explanation, not the adapter's.
func TestCompareCPU(t *testing.T) {
	a := demoAutoscaler(t)
	a.Path, a.Target, a.CPUTarget, a.CPURequest = PathCPU, 0, 50, 100
	load := loadOf(st{20 * time.Second, 6}, st{40 * time.Second, 6}, st{0, 0})
	d := DefaultDelays()
	d.Sync, d.After = 3*time.Second, 80*time.Second
	costs := func(cpu float64) Costs { return Costs{CPU: func(time.Duration) float64 { return cpu }, IdleCPU: 0.004} }
	tl, err := Simulate(a, load, costs(0.020), d)
	if err != nil {
		t.Fatal(err)
	}
	p := Prediction{Timeline: tl, Delays: d, Load: load}
	run := func(cpu float64) []Observed {
		live, err := Simulate(a, load, costs(cpu), d)
		if err != nil {
			t.Fatal(err)
		}
		var out []Observed
		for _, r := range live.Rows {
			out = append(out, Observed{T: r.T, Metric: r.Metric, HasMetric: r.HasValue, Target: 50, Replicas: r.Replicas, Ready: r.Ready})
		}
		return out
	}
	if div, found := Compare(p, run(0.020), ToleranceFor(p)); found {
		t.Errorf("the prediction against its own run: %s", div)
	}
	div, found := Compare(p, run(0.040), ToleranceFor(p))
	if !found || div.Link != "metric" || div.Explanation != cpuMetricExplanation {
		t.Errorf("requests at twice the CPU: %v %+v, want the metric link with the cpu explanation", found, div)
	}
}
