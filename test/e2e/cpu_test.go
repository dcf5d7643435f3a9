//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/anyroute/anyroute/instrumenting/predict"
	"github.com/anyroute/anyroute/test/kit"
)

// cpuStages is the load of the CPU scenario, in the chart's load.stages and in the file predict
// reads: a 20 s ramp to 6 requests/s, held for 40 s, then a step to nothing.
const cpuStages = `[{"duration": "20s", "target_rate": 6}, {"duration": "40s", "target_rate": 6}, {"duration": "0s", "target_rate": 0}]`

// cpuValues is a CPU-only HPA: the request-rate metric off (no prometheus-adapter runs), a
// Resource cpu target of 50 % of a 100m request, a route that burns 20 ms of CPU a request, and
// the chart's anyroute load at 0 replicas until the test starts it. 6/s × 20 ms is 120 millicores,
// plus the idle pod's 4: one pod at about 124 % of its request asks for ceil(2.5) = 3 pods, which
// then run at about 41 % (3 × 0.83 rounds up to 3 again): the peak is 3, away from the rounding
// edges (100 % and 150 % on one pod, 33 % on three), so the per-request overhead the model leaves
// out (HTTP, metrics: about 0.9 ms of CPU a request measured on this machine, 4 %) moves neither.
// A 15 s scale-down window keeps the scale-in short.
// The linger keeps the load's container up (sending nothing) past the test: the Deployment would
// start the schedule again when it exits.
var cpuValues = `hpa:
  enabled: true
  minReplicas: 1
  maxReplicas: 4
  metric:
    enabled: false
  extraMetrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies: [{type: Percent, value: 100, periodSeconds: 15}, {type: Pods, value: 4, periodSeconds: 15}]
    scaleDown:
      stabilizationWindowSeconds: 15
      selectPolicy: Max
      policies: [{type: Percent, value: 100, periodSeconds: 15}]
resources:
  requests: {cpu: 100m, memory: 32Mi}
  limits: {memory: 128Mi}
config:
  routes:
    - name: burn
      match: /burn/*
      cpu: 20ms
load:
  enabled: true
  tool: anyroute
  replicas: 0
  paths: [/burn/x]
  linger: 10m
  stages: ` + cpuStages + "\n"

// The prediction's inputs beyond the values and the stages: the node's HPA sync period, a pod
// Ready about 3 s after the decision that made it (measured here: scheduling, the sandbox, the
// first readiness probe), the CPU an idle pod burns (probes, Prometheus' 1 s scrapes, the
// flusher: 4 millicores, measured on bin/anyroute scraped every second), and 80 s after the load
// for the scale-in (predicted back at the minimum about 30 s after it; the time tolerance on top).
var cpuPredictFlags = []string{"-sync", hpaSyncPeriod.String(), "-pod-startup", "3s", "-cpu-idle", "4m", "-after", "80s"}

// cpuTimeTolerance is how far in time a reading may be from the prediction and agree: the model
// samples the pods' CPU fresh at multiples of metrics-server's resolution from the load's start,
// a cluster at its own phase (up to a resolution off) and from the kubelet's stats, which are up
// to a cAdvisor housekeeping interval (about a resolution) old; plus a sync.
func cpuTimeTolerance(p predict.Prediction) time.Duration {
	return 2*p.Delays.MetricsResolution + p.Delays.Sync
}

// TestCPUAutoscaling is the CPU path on the real node: metrics-server deployed as its manifests
// deploy it, the chart installed with helm with an HPA on CPU alone, and the chart's anyroute load
// on a route with a cpu cost. The metrics API (and `kubectl top pods`) must show each pod's CPU,
// the HPA scale out under the load and back in after it, and its replicas follow the timeline
// `anyroute predict` computed beforehand from the same values and stages: Compare finds no
// reading (every 2 s) outside one replica of the prediction within cpuTimeTolerance.
func TestCPUAutoscaling(t *testing.T) {
	e := newEnv(t)
	n := startNode(e)
	n.metricsServer()
	prom := startPrometheus(e, n.cp)
	d := &demo{e: e, cp: n.cp, prom: prom, pods: &pods{n: n, ns: namespace}, sets: imageSets()}

	values := e.path("values-cpu.yaml")
	loadFile := e.path("load-cpu.json")
	if err := os.WriteFile(values, []byte(cpuValues), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loadFile, []byte(`{"stages": `+cpuStages+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := d.predictCPU(values, loadFile)

	d.helmInstallValues(values)
	load := d.findCPUObjects()
	initial := d.waitServerPods()
	d.waitPodCPU(initial)
	d.waitHPAActive()

	t0 := d.startCPULoad(load)
	obs := d.followCPU(p, t0)
	d.compareCPU(p, obs)
}

// metricsServer deploys metrics-server on the node (scripts/node.sh metrics-server: the pinned
// module's manifests with the image node.sh builds) and waits for metrics.k8s.io to be Available.
func (n *node) metricsServer() {
	e := n.e
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := e.run(ctx, []string{"NODE_DIR=" + n.dir}, nodeScript(), "metrics-server"); err != nil {
		e.t.Fatalf("scripts/node.sh metrics-server: %v\n%s", err, out)
	}
	e.tl.mark("scripts/node.sh metrics-server: APIService v1beta1.metrics.k8s.io Available after %v", time.Since(start).Round(time.Second))
}

// predictCPU runs `anyroute predict` on the scenario's values and stages, as a user would before
// the run, shows its table in the timeline, and makes the same prediction in process for Compare.
func (d *demo) predictCPU(values, loadFile string) predict.Prediction {
	e := d.e
	e.t.Helper()
	args := append([]string{"-chart", filepath.Join(repoRoot, "deployments", "helm", "anyroute"), "-f", values, "-load", loadFile}, cpuPredictFlags...)
	ctx, cancel := context.WithTimeout(e.t.Context(), time.Minute)
	defer cancel()
	out, err := e.run(ctx, nil, anyrouteBin, append([]string{"predict", "-o", "table"}, args...)...)
	if err != nil {
		e.t.Fatalf("anyroute predict: %v\n%s", err, out)
	}
	// The alerts' table says nothing of this scenario (no errors, no latency): the replicas only.
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
	if p.Timeline.Path != predict.PathCPU {
		e.t.Fatalf("the values predict on the %s path, want %s", p.Timeline.Path, predict.PathCPU)
	}
	return p
}

// findCPUObjects reads the HPA and the load Deployment the chart made, and checks the HPA is on
// CPU alone.
func (d *demo) findCPUObjects() (load string) {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	h := d.findHPA(ctx)
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		e.t.Fatalf("HPA %s metrics %+v: want a Resource cpu metric alone (hpa.metric.enabled false)", h.Name, h.Spec.Metrics)
	}
	loads, err := d.cp.client.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=load"})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(loads.Items) != 1 || ptrOr(loads.Items[0].Spec.Replicas, 1) != 0 {
		e.t.Fatalf("want one load Deployment at 0 replicas (load.enabled, load.replicas 0), got %d", len(loads.Items))
	}
	e.tl.mark("HPA %s scales deploy/%s from %d to %d on cpu %d%% of the request alone; load from deploy/%s",
		d.hpa, d.deployment, d.min, h.Spec.MaxReplicas, ptrOr(h.Spec.Metrics[0].Resource.Target.AverageUtilization, 0), loads.Items[0].Name)
	return loads.Items[0].Name
}

// podMetricsPath is what `kubectl top pods -n demo` reads.
var podMetricsPath = fmt.Sprintf("/apis/metrics.k8s.io/v1beta1/namespaces/%s/pods", namespace)

// podCPU asks the metrics API, with kubectl as a user would, for each pod's CPU in millicores.
func (d *demo) podCPU(ctx context.Context) (map[string]float64, error) {
	out, err := d.getRaw(ctx, podMetricsPath)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata   struct{ Name string } `json:"metadata"`
			Containers []struct {
				Usage map[string]resource.Quantity `json:"usage"`
			} `json:"containers"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", podMetricsPath, err)
	}
	cpu := map[string]float64{}
	for _, it := range list.Items {
		for _, c := range it.Containers {
			q := c.Usage["cpu"]
			cpu[it.Metadata.Name] += float64(q.MilliValue())
		}
	}
	return cpu, nil
}

// waitPodCPU waits until the metrics API has the CPU of every given pod (metrics-server needs two
// of the kubelet's samples of a pod, a resolution apart).
func (d *demo) waitPodCPU(pods []string) {
	var cpu map[string]float64
	d.until("the metrics API to show the CPU of every app pod "+strings.Join(pods, ", "), 90*time.Second, func(ctx context.Context) (bool, string, error) {
		v, err := d.podCPU(ctx)
		if err != nil {
			return false, "", err
		}
		cpu = v
		for _, p := range pods {
			if _, ok := v[p]; !ok {
				return false, fmt.Sprintf("millicores %s, none yet for %s", formatValues(v), p), nil
			}
		}
		return true, "", nil
	})
	d.e.tl.mark("kubectl get --raw %s: millicores %s", podMetricsPath, formatValues(cpu))
}

// kubectlTop runs the real `kubectl top pods` and checks it lists every given pod with its CPU.
func (d *demo) kubectlTop(pods []string) {
	e := d.e
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 15*time.Second)
	defer cancel()
	out, err := e.run(ctx, nil, kit.ProjectTool(e.t, "kubectl"), "--kubeconfig", d.cp.kubeconfig, "-n", namespace, "top", "pods")
	if err != nil {
		e.t.Fatalf("kubectl top pods: %v\n%s", err, out)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 {
			listed[f[0]] = f[1]
		}
	}
	for _, p := range pods {
		if cpu, ok := listed[p]; !ok || !strings.HasSuffix(cpu, "m") {
			e.t.Fatalf("kubectl top pods does not list %s with its CPU:\n%s", p, out)
		}
	}
	e.tl.mark("kubectl top pods -n %s:\n%s", namespace, indent(out))
}

// startCPULoad scales the load Deployment to one pod and returns when its container started: the
// prediction's time 0 (the schedule starts as the process does).
func (d *demo) startCPULoad(load string) time.Time {
	e := d.e
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 30*time.Second)
	defer cancel()
	if out, err := e.run(ctx, nil, kit.ProjectTool(e.t, "kubectl"), "--kubeconfig", d.cp.kubeconfig,
		"-n", namespace, "scale", "deploy/"+load, "--replicas=1"); err != nil {
		e.t.Fatalf("kubectl scale deploy/%s --replicas=1: %v\n%s", load, err, out)
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
	e.tl.mark("kubectl scale deploy/%s --replicas=1: anyroute load started at %s, T0 of the prediction", load, started.UTC().Format("15:04:05"))
	return started
}

// cpuReading is one reading of the live chain, with what it showed.
type cpuReading struct {
	predict.Observed
	hpa string
}

// followCPU reads the chain every 2 s from the load's start: the load's achieved rate (its own
// /metrics, through Prometheus), the HPA's cpu utilization, target and desired replicas, and the
// Ready app pods. It marks every change of the HPA, checks the metrics API and kubectl top once
// the scale-out's pods run, and stops once the replicas are back at the minimum after the
// prediction's own return there, or at the prediction's end.
func (d *demo) followCPU(p predict.Prediction, t0 time.Time) []predict.Observed {
	e := d.e
	e.t.Helper()
	back := backAtMin(p)
	end := p.Timeline.End
	var obs []predict.Observed
	var last string
	peak, toppedOut := int32(0), false
	for {
		if err := d.pods.err(); err != nil {
			e.t.Fatalf("following the HPA: %v", err)
		}
		ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
		r := d.readCPU(ctx, t0)
		cancel()
		obs = append(obs, r.Observed)
		if r.hpa != last {
			e.tl.mark("T0+%5.1fs hpa: %s; ready %d", r.T.Seconds(), r.hpa, r.Ready)
			last = r.hpa
		}
		peak = max(peak, int32(r.Replicas))
		if !toppedOut && r.Replicas > int(d.min) && r.Ready == r.Replicas {
			// Every pod of the scale-out runs: once the metrics API has each one's CPU (two of
			// the kubelet's samples of a new pod), kubectl top must list them all.
			running := d.pods.running("server")
			ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
			cpu, err := d.podCPU(ctx)
			cancel()
			if err == nil && len(running) == r.Ready && hasAll(cpu, running) {
				e.tl.mark("kubectl get --raw %s: millicores %s", podMetricsPath, formatValues(cpu))
				d.kubectlTop(running)
				toppedOut = true
			}
		}
		if r.T >= end || (r.T >= back && r.Replicas == int(d.min) && r.Ready == int(d.min) && peak > d.min) {
			break
		}
		time.Sleep(time.Until(t0.Add(r.T + 2*time.Second)))
	}
	if peak <= d.min {
		e.t.Fatalf("the HPA never scaled out under the load: %d replicas at most (the prediction: %d)", peak, maxReplicas(p))
	}
	if l := obs[len(obs)-1]; l.Replicas != int(d.min) {
		e.t.Fatalf("the HPA did not scale back in: %d replicas at T0+%s, the prediction's end (it was back at %d at T0+%s)",
			l.Replicas, l.T.Round(time.Second), d.min, back)
	}
	if !toppedOut {
		e.t.Fatal("the metrics API never had the CPU of every pod of the scale-out while they ran: kubectl top was not checked")
	}
	return obs
}

// readCPU reads the chain once; a link that cannot be read is left unread (Has* false, -1).
func (d *demo) readCPU(ctx context.Context, t0 time.Time) cpuReading {
	r := cpuReading{Observed: predict.Observed{T: time.Since(t0), Replicas: -1, Ready: -1}, hpa: "?"}
	q := fmt.Sprintf(`sum(rate(load_sent_requests_total{%s=%q}[5s]))`, d.prom.labels()[0], namespace)
	if v, ok, err := d.prom.Value(ctx, q, time.Time{}); err == nil && ok {
		r.Rate, r.HasRate = v, true
	}
	if h, err := d.getHPA(ctx); err == nil && h.Status.DesiredReplicas > 0 {
		r.Replicas, r.hpa = int(h.Status.DesiredReplicas), cpuHPAState(h)
		for _, m := range h.Spec.Metrics {
			if m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
				r.Target = float64(*m.Resource.Target.AverageUtilization)
			}
		}
		for _, m := range h.Status.CurrentMetrics {
			if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
				r.Metric, r.HasMetric = float64(*m.Resource.Current.AverageUtilization), true
			}
		}
	}
	r.Ready = len(d.pods.running("server"))
	return r
}

func cpuHPAState(h *autoscalingv2.HorizontalPodAutoscaler) string {
	current := "<unknown>"
	for _, m := range h.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
			current = fmt.Sprintf("%d%%", *m.Resource.Current.AverageUtilization)
		}
	}
	target := "?"
	for _, m := range h.Spec.Metrics {
		if m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
			target = fmt.Sprintf("%d%%", *m.Resource.Target.AverageUtilization)
		}
	}
	return fmt.Sprintf("replicas %d, desired %d, cpu %s/%s", h.Status.CurrentReplicas, h.Status.DesiredReplicas, current, target)
}

func hasAll(m map[string]float64, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
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

// compareCPU holds the readings to the prediction: Compare with one replica and cpuTimeTolerance,
// and the peak within one replica of the predicted one. Both timelines go into the test's.
func (d *demo) compareCPU(p predict.Prediction, obs []predict.Observed) {
	e := d.e
	e.t.Helper()
	tol := predict.ToleranceFor(p)
	tol.Time = cpuTimeTolerance(p)
	e.tl.mark("predicted replicas (every change):\n%s", indent(replicaChanges(p.Timeline.Rows)))
	e.tl.mark("observed (every change of desired replicas, Ready pods or a 10-point move of cpu):\n%s", indent(observedChanges(obs)))
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
	e.tl.mark("the observed timeline follows the prediction: %d readings, each within %d replica, %.0f%% of the cpu utilization "+
		"(at least %.0f points) and %.0f%% of the load's rate of the predicted values within %s; peak %d, predicted %d",
		len(obs), tol.Replicas, 100*tol.Metric, tol.MetricFloor, 100*tol.Rate, tol.Time, peak, want)
}

// replicaChanges lists the predicted rows where the replicas or the Ready pods changed.
func replicaChanges(rows []predict.Row) string {
	var b strings.Builder
	prev := predict.Row{Replicas: -1}
	for _, r := range rows {
		if r.Replicas == prev.Replicas && r.Ready == prev.Ready {
			continue
		}
		fmt.Fprintf(&b, "T0+%5.1fs  rate %5.1f/s  cpu %s  replicas %d  ready %d  %s\n", r.T.Seconds(), r.Rate, pct(r.CPU, r.HasCPU), r.Replicas, r.Ready, r.Reason)
		prev = r
	}
	return b.String()
}

// observedChanges lists the readings where something a reader watches changed.
func observedChanges(obs []predict.Observed) string {
	var b strings.Builder
	var prev *predict.Observed
	for i, o := range obs {
		if prev != nil && o.Replicas == prev.Replicas && o.Ready == prev.Ready && o.HasMetric == prev.HasMetric &&
			(o.Metric-prev.Metric) < 10 && (prev.Metric-o.Metric) < 10 && i != len(obs)-1 {
			continue
		}
		fmt.Fprintf(&b, "T0+%5.1fs  rate %5.1f/s  cpu %s  replicas %d  ready %d\n", o.T.Seconds(), o.Rate, pct(o.Metric, o.HasMetric), o.Replicas, o.Ready)
		prev = &obs[i]
	}
	return b.String()
}

func pct(v float64, ok bool) string {
	if !ok {
		return "   -"
	}
	return fmt.Sprintf("%3.0f%%", v)
}
