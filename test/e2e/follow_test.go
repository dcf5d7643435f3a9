//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anyroute/anyroute/instrumenting/doctor"
	"github.com/anyroute/anyroute/instrumenting/predict"
	"github.com/anyroute/anyroute/test/kit"
)

// This file holds a scenario's run to `anyroute predict`'s prediction, as the demo (adapter and
// KEDA) and the CPU scenario do: the prediction made before the install from the values the
// release installs, the chart's anyroute load started at T0, the chain read every 2 s from then,
// and predict.Compare over the readings.

// predictFrom runs `anyroute predict` on the chart with args (values files and delays), as a user
// would before the run, shows its table in the timeline, and makes the same prediction in process
// for Compare. The prediction must be of path.
func (d *demo) predictFrom(path predict.Path, args ...string) predict.Prediction {
	e := d.e
	e.t.Helper()
	args = append([]string{"-chart", filepath.Join(repoRoot, "deployments", "helm", "anyroute")}, args...)
	ctx, cancel := context.WithTimeout(e.t.Context(), time.Minute)
	defer cancel()
	out, err := e.run(ctx, nil, anyrouteBin, append([]string{"predict", "-o", "table"}, args...)...)
	if err != nil {
		e.t.Fatalf("anyroute predict: %v\n%s", err, out)
	}
	// The alerts' table says nothing of these scenarios (no errors, no latency): the replicas only.
	table, _, _ := strings.Cut(out, "alerts (")
	e.tl.mark("the prediction, before the run: anyroute predict %s\n%s", strings.Join(args, " "), indent(table))
	var in predict.Inputs
	fs := flag.NewFlagSet("predict", flag.ContinueOnError)
	in.Register(fs, "load")
	if err := fs.Parse(args); err != nil {
		e.t.Fatal(err)
	}
	p, err := in.Predict()
	if err != nil {
		e.t.Fatal(err)
	}
	if p.Timeline.Path != path {
		e.t.Fatalf("the values predict on the %s path, want %s", p.Timeline.Path, path)
	}
	return p
}

// startLoad scales the chart's load Deployment (at 0 replicas until now) to one pod and returns
// when its container started: the prediction's time 0 (the schedule starts as the process does).
func (d *demo) startLoad() time.Time {
	e := d.e
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 30*time.Second)
	defer cancel()
	if out, err := e.run(ctx, nil, kit.ProjectTool(e.t, "kubectl"), "--kubeconfig", d.cp.kubeconfig,
		"-n", namespace, "scale", "deploy/"+d.load, "--replicas=1"); err != nil {
		e.t.Fatalf("kubectl scale deploy/%s --replicas=1: %v\n%s", d.load, err, out)
	}
	var started time.Time
	d.until("the load pod's container running", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		items, err := d.pods.list(ctx, "load")
		if err != nil {
			return false, "", err
		}
		for _, p := range items {
			for _, cs := range p.Status.ContainerStatuses {
				if r := cs.State.Running; r != nil {
					started = r.StartedAt.Time
					return true, "", nil
				}
			}
		}
		return false, fmt.Sprintf("%d load pods, none running", len(items)), nil
	})
	e.tl.mark("kubectl scale deploy/%s --replicas=1: anyroute load started at %s, T0 of the prediction", d.load, started.UTC().Format("15:04:05"))
	return started
}

// reading is one reading of the live chain, with the HPA's state as the timeline prints it.
type reading struct {
	predict.Observed
	hpa string
}

// read reads the chain once: the load's achieved rate (its own /metrics, through Prometheus), the
// HPA's value of its metric, target and desired replicas, and the Ready app pods. A link that
// cannot be read is left unread (Has* false, -1).
func (d *demo) read(ctx context.Context, t0 time.Time) reading {
	r := reading{Observed: predict.Observed{T: time.Since(t0), Replicas: -1, Ready: -1}, hpa: "?"}
	q := fmt.Sprintf(`sum(rate(load_sent_requests_total{%s=%q}[5s]))`, d.prom.labels()[0], namespace)
	if v, ok, err := d.prom.Value(ctx, q, time.Time{}); err == nil && ok {
		r.Rate, r.HasRate = v, true
	}
	// DesiredReplicas is 0 until the controller's first reconcile.
	if h, err := d.getHPA(ctx); err == nil && h.Status.DesiredReplicas > 0 {
		r.Replicas, r.hpa = int(h.Status.DesiredReplicas), hpaState(h)
		v := doctor.HPAMetricOf(h)
		r.Target, r.Metric, r.HasMetric = v.Target, v.Current, v.HasCurrent
	}
	r.Ready = len(d.pods.running("server"))
	return r
}

// metricUnit shows a metric's values: in percent for a Resource utilization (the CPU path), else
// as a number per pod.
type metricUnit struct{ percent bool }

func (u metricUnit) format(x float64, ok bool) string {
	switch {
	case !ok:
		return "<unknown>"
	case u.percent:
		return fmt.Sprintf("%.0f%%", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// follow reads the chain every 2 s from t0 and hands each reading to each (nil: none). It stops
// once the replicas are back at the minimum after the prediction's own return there, or at the
// prediction's end; mark marks every change of the HPA in the timeline.
func (d *demo) follow(p predict.Prediction, t0 time.Time, mark bool, each func(reading)) ([]predict.Observed, error) {
	back, end := backAtMin(p), p.Timeline.End
	var obs []predict.Observed
	var last string
	peak := 0
	for {
		if err := d.pods.err(); err != nil {
			return obs, fmt.Errorf("following the HPA: %w", err)
		}
		ctx, cancel := context.WithTimeout(d.e.t.Context(), 10*time.Second)
		r := d.read(ctx, t0)
		cancel()
		obs = append(obs, r.Observed)
		if mark && r.hpa != last {
			d.e.tl.mark("T0+%5.1fs hpa: %s; ready %d", r.T.Seconds(), r.hpa, r.Ready)
			last = r.hpa
		}
		peak = max(peak, r.Replicas)
		if each != nil {
			each(r)
		}
		if r.T >= end || (r.T >= back && r.Replicas == int(d.min) && r.Ready == int(d.min) && peak > int(d.min)) {
			return obs, nil
		}
		select {
		case <-d.e.t.Context().Done():
			return obs, d.e.t.Context().Err()
		case <-time.After(time.Until(t0.Add(r.T + 2*time.Second))):
		}
	}
}

// followBehind runs follow in the background while the test goes on checking the chain; wait
// returns its readings.
func (d *demo) followBehind(p predict.Prediction, t0 time.Time) (wait func() []predict.Observed) {
	done := make(chan struct{})
	var obs []predict.Observed
	var err error
	go func() {
		defer close(done)
		obs, err = d.follow(p, t0, false, nil)
	}()
	d.e.t.Cleanup(func() { <-done })
	return func() []predict.Observed {
		d.e.t.Helper()
		<-done
		if err != nil {
			d.e.t.Fatal(err)
		}
		return obs
	}
}

// scaledOutAndBack fails the test unless the readings went above the minimum and ended at it.
func (d *demo) scaledOutAndBack(p predict.Prediction, obs []predict.Observed) {
	e := d.e
	e.t.Helper()
	peak := 0
	for _, o := range obs {
		peak = max(peak, o.Replicas)
	}
	if peak <= int(d.min) {
		e.t.Fatalf("the HPA never scaled out under the load: %d replicas at most (the prediction: %d)", peak, maxReplicas(p))
	}
	if l := obs[len(obs)-1]; l.Replicas != int(d.min) {
		e.t.Fatalf("the HPA did not scale back in: %d replicas at T0+%s, the prediction's end (it was back at %d at T0+%s)",
			l.Replicas, l.T.Round(time.Second), d.min, backAtMin(p))
	}
}

// backAtMin is when the prediction has the replicas back at the minimum for good after its peak.
func backAtMin(p predict.Prediction) time.Duration {
	rows := p.Timeline.Rows
	at := p.Timeline.End
	for i := len(rows) - 1; i >= 0 && rows[i].Replicas == rows[len(rows)-1].Replicas; i-- {
		at = rows[i].T
	}
	return at
}

func maxReplicas(p predict.Prediction) int {
	m := 0
	for _, r := range p.Timeline.Rows {
		m = max(m, r.Replicas)
	}
	return m
}

// compareTimeline holds the readings to the prediction: Compare with one replica and the time
// tolerance given, and the peak within one replica of the predicted one. Both timelines go into
// the test's, and the prediction with the readings over it into timeline.svg in the run's
// directory.
func (d *demo) compareTimeline(p predict.Prediction, obs []predict.Observed, within time.Duration) {
	e := d.e
	e.t.Helper()
	tol := predict.ToleranceFor(p)
	tol.Time = within
	unit := metricUnit{percent: p.Timeline.Path == predict.PathCPU}
	var pic bytes.Buffer
	if err := p.WriteSVGObserved(&pic, obs); err != nil {
		e.t.Fatal(err)
	}
	file := e.path("timeline.svg")
	if err := os.WriteFile(file, pic.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.tl.mark("the prediction with the readings over it: %s (kept with E2E_KEEP=1)", file)
	e.tl.mark("predicted replicas (every change):\n%s", indent(replicaChanges(p.Timeline.Rows, unit)))
	e.tl.mark("observed (every change of desired replicas, Ready pods or a tenth of the target in %s):\n%s",
		p.Timeline.MetricName, indent(observedChanges(obs, p.Timeline.Target/10, unit)))
	peak, want := 0, maxReplicas(p)
	for _, o := range obs {
		peak = max(peak, o.Replicas)
	}
	if peak < want-tol.Replicas || peak > want+tol.Replicas {
		e.t.Errorf("peak of %d replicas, predicted %d (±%d)", peak, want, tol.Replicas)
	}
	if div, ok := predict.Compare(p, obs, tol); ok {
		e.t.Errorf("the observed timeline leaves the prediction (tolerance: %s in time, %d replica, %.0f%% of a rate, %.0f%% of the metric):\n  %s",
			tol.Time, tol.Replicas, 100*tol.Rate, 100*tol.Metric, div)
		return
	}
	e.tl.mark("the observed timeline follows the prediction: %d readings, each within %d replica, %.0f%% of %s "+
		"(at least %s) and %.0f%% of the load's rate of the predicted values within %s; peak %d, predicted %d",
		len(obs), tol.Replicas, 100*tol.Metric, p.Timeline.MetricName, unit.format(tol.MetricFloor, true), 100*tol.Rate, tol.Time, peak, want)
}

// replicaChanges lists the predicted rows where the replicas or the Ready pods changed.
func replicaChanges(rows []predict.Row, unit metricUnit) string {
	var b strings.Builder
	prev := predict.Row{Replicas: -1}
	for _, r := range rows {
		if r.Replicas == prev.Replicas && r.Ready == prev.Ready {
			continue
		}
		fmt.Fprintf(&b, "T0+%5.1fs  rate %5.1f/s  metric %9s  replicas %d  ready %d  %s\n",
			r.T.Seconds(), r.Rate, unit.format(r.Metric, r.HasValue), r.Replicas, r.Ready, r.Reason)
		prev = r
	}
	return b.String()
}

// observedChanges lists the readings where something a reader watches changed: the replicas, the
// Ready pods, or the metric by step or more.
func observedChanges(obs []predict.Observed, step float64, unit metricUnit) string {
	var b strings.Builder
	var prev *predict.Observed
	for i, o := range obs {
		if prev != nil && o.Replicas == prev.Replicas && o.Ready == prev.Ready && o.HasMetric == prev.HasMetric &&
			o.Metric-prev.Metric < step && prev.Metric-o.Metric < step && i != len(obs)-1 {
			continue
		}
		fmt.Fprintf(&b, "T0+%5.1fs  rate %5.1f/s  metric %9s  replicas %d  ready %d\n",
			o.T.Seconds(), o.Rate, unit.format(o.Metric, o.HasMetric), o.Replicas, o.Ready)
		prev = &obs[i]
	}
	return b.String()
}
