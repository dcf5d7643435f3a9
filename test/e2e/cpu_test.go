//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/anyroute/anyroute/instrumenting/predict"
	"github.com/anyroute/anyroute/test/kit"
)

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
  # A 20 s ramp to 6 requests/s, held for 40 s, then a step to nothing.
  stages: [{"duration": "20s", "target_rate": 6}, {"duration": "40s", "target_rate": 6}, {"duration": "0s", "target_rate": 0}]
`

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
	kit.ProjectTool(t, "metrics-server") // built first, or waited for, as KEDA's tools are
	e := newEnv(t)
	n := startNode(e)
	n.metricsServer()
	prom := startPrometheus(e, n.cp)
	d := &demo{e: e, cp: n.cp, prom: prom, pods: &pods{n: n, ns: namespace}, sets: imageSets()}

	values := e.path("values-cpu.yaml")
	if err := os.WriteFile(values, []byte(cpuValues), 0o600); err != nil {
		t.Fatal(err)
	}
	// predict reads the load's stages from the values, as the chart's load pod will run them.
	p := d.predictFrom(predict.PathCPU, append([]string{"-f", values}, cpuPredictFlags...)...)

	d.helmInstallValues(values)
	d.findCPUObjects()
	initial := d.waitServerPods()
	d.waitPodCPU(initial)
	d.waitHPAActive()

	t0 := d.startLoad()
	obs := d.followCPU(p, t0)
	d.compareTimeline(p, obs, cpuTimeTolerance(p))
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

// findCPUObjects reads the HPA and the load Deployment the chart made, and checks the HPA is on
// CPU alone.
func (d *demo) findCPUObjects() {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	h := d.findHPA(ctx)
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		e.t.Fatalf("HPA %s metrics %+v: want a Resource cpu metric alone (hpa.metric.enabled false)", h.Name, h.Spec.Metrics)
	}
	d.findLoad()
	e.tl.mark("HPA %s scales deploy/%s from %d to %d on cpu %d%% of the request alone; load from deploy/%s",
		d.hpa, d.deployment, d.min, h.Spec.MaxReplicas, ptrOr(h.Spec.Metrics[0].Resource.Target.AverageUtilization, 0), d.load)
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

// followCPU follows the chain from the load's start (follow), marking every change of the HPA,
// and checks the metrics API and kubectl top once the scale-out's pods run.
func (d *demo) followCPU(p predict.Prediction, t0 time.Time) []predict.Observed {
	e := d.e
	e.t.Helper()
	toppedOut := false
	obs, err := d.follow(p, t0, true, func(r reading) {
		if toppedOut || r.Replicas <= int(d.min) || r.Ready != r.Replicas {
			return
		}
		// Every pod of the scale-out runs: once the metrics API has each one's CPU (two of the
		// kubelet's samples of a new pod), kubectl top must list them all.
		running := d.pods.running("server")
		ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
		cpu, err := d.podCPU(ctx)
		cancel()
		if err == nil && len(running) == r.Ready && hasAll(cpu, running) {
			e.tl.mark("kubectl get --raw %s: millicores %s", podMetricsPath, formatValues(cpu))
			d.kubectlTop(running)
			toppedOut = true
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	d.scaledOutAndBack(p, obs)
	if !toppedOut {
		e.t.Fatal("the metrics API never had the CPU of every pod of the scale-out while they ran: kubectl top was not checked")
	}
	return obs
}

func hasAll(m map[string]float64, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}
