//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/anyroute/anyroute/instrumenting/doctor"
	"github.com/anyroute/anyroute/instrumenting/predict"
	"github.com/anyroute/anyroute/test/kit"
)

// The demo as the chart's values-demo.yaml describes it, in its own namespace.
const (
	namespace    = "demo"
	release      = "anyroute"
	customMetric = "avg_requests"
)

// TestAutoscalingDemo is the demo as an experiment, on the real node: `anyroute predict` on the
// README's values (values-demo.yaml with values-demo-load.yaml: the chart's anyroute load in place
// of siege) says beforehand what the HPA will do; the chart goes in with helm, and, printing a
// timeline, the test checks that prometheus-adapter serves avg_requests for every app pod under
// the load, that the real HPA controller scales the Deployment out and the new pods get traffic,
// and that after the load's last stage the Deployment comes back to the minimum; the replicas
// read every 2 s from the load's start follow the prediction (follow_test.go).
//
// anyroute doctor must find the chain whole at the peak; then, back at the minimum, the test
// breaks one link at a time in the running control plane and repairs it, and the doctor must name
// the broken link each time (breakages_test.go), a wrong target also against the prediction.
func TestAutoscalingDemo(t *testing.T) {
	e := newEnv(t)
	n := startNode(e)
	cp := n.cp
	prom := startPrometheus(e, cp)
	ad := startAdapter(e, cp, prom)
	d := &demo{e: e, cp: cp, prom: prom, ad: ad, pods: &pods{n: n, ns: namespace}, values: demoLoadValues(), sets: demoSets()}
	p := d.predictFrom(predict.PathAdapter, d.predictArgs()...)

	d.helmInstall()
	d.findObjects()
	d.startSampler()

	initial := d.waitServerPods()
	d.scaleOutAndIn(p, initial, func() { d.waitMetricPerPod(initial) })
	d.breakages(adapterBreakages)
}

// demoLoadValues are the values files the demo lays over values-demo.yaml: the experiment's.
func demoLoadValues() []string {
	return []string{filepath.Join(repoRoot, "deployments", "helm", "values-demo-load.yaml")}
}

// demoSets are the images make images built, and the load at 0 replicas until the test starts it
// (startLoad), so that T0 is known and the app pods are Ready before the first request.
func demoSets() []string {
	return append(imageSets(), "load.replicas=0")
}

// predictArgs are the demo's values and the node's delays, for `anyroute predict` and the doctor:
// Prometheus scrapes every second, the adapter re-lists every adapterRelist with the shipped rule,
// the HPA controller syncs every hpaSyncPeriod, and a new pod is Ready about 3 s after the decision
// that made it (measured here: scheduling, the sandbox, the first readiness probe). The
// prediction runs 3 minutes past the load: back at the minimum about 2 minutes after it, plus
// the time tolerance.
func (d *demo) predictArgs() []string {
	args := []string{"-f", filepath.Join(repoRoot, "deployments", "helm", "values-demo.yaml")}
	for _, v := range d.values {
		args = append(args, "-f", v)
	}
	return append(args, "-adapter", filepath.Join(repoRoot, "deployments", "helm", "prometheus-adapter-rules.yaml"),
		"-scrape-interval", "1s", "-relist", adapterRelist.String(), "-sync", hpaSyncPeriod.String(), "-pod-startup", "3s", "-after", "3m")
}

// demoTimeTolerance is how far in time a reading may be from the prediction and agree: two syncs
// (the controller's phase is not known beforehand), a re-list (a new pod's series reaches the
// adapter at its next one) and a scrape.
func demoTimeTolerance(p predict.Prediction) time.Duration {
	return 2*p.Delays.Sync + p.Delays.Relist + p.Delays.Scrape
}

// scaleOutAndIn is the demo's run: the chart's load starts at T0 and the chain is read every 2 s
// behind the checks, the same whichever autoscaler feeds the HPA: the metric reaches it (served,
// what the path serves it with), the HPA acts, scales out, the new pods take traffic, the doctor
// finds the chain healthy at the peak, and after the load's last stage the HPA scales back in.
// Then the readings must follow the prediction p, and the load is scaled to zero for the
// breakages.
func (d *demo) scaleOutAndIn(p predict.Prediction, initial []string, served func()) {
	t0 := d.startLoad()
	readings := d.followBehind(p, t0)
	served()
	d.waitHPAActive()
	d.waitScaleOut()
	d.waitNewPodTraffic(initial)
	// The prediction's peak, or one below it: the bar Compare holds the run to.
	d.holdLoad(max(d.min+1, int32(maxReplicas(p)-predict.ToleranceFor(p).Replicas)))
	d.showPeak()
	d.waitDoctorHealthy("at the peak")
	obs := readings()
	d.scaledOutAndBack(p, obs)
	d.compareTimeline(p, obs, demoTimeTolerance(p))
	d.stopLoad()
	d.waitScaleIn()
}

// demo is the installed chart and what the test watches of it.
type demo struct {
	e    *env
	cp   *controlPlane
	prom *prometheus
	ad   *adapter
	pods *pods // the demo's pods as the kubelet reports them

	keda   bool     // KEDA instead of prometheus-adapter
	values []string // values files laid over values-demo.yaml
	sets   []string // helm --set arguments of the scenario

	hpa            string // the HPA's name (KEDA's, on the KEDA path)
	so             string // the ScaledObject's name (KEDA path)
	externalMetric string // the external metric KEDA serves (KEDA path)
	deployment     string // the Deployment it scales
	load           string // the chart's load Deployment
	min            int32
	loadStopped    bool // the load scaled to zero: an upgrade must keep it there
}

// helmInstall installs the real chart with the demo values and the scenario's; E2E_HELM_SET adds
// --set arguments (separated by ';') to try a broken spec.
func (d *demo) helmInstall() {
	e := d.e
	e.t.Helper()
	args := []string{"install", release, filepath.Join(repoRoot, "deployments", "helm", "anyroute"),
		"--namespace", namespace, "--create-namespace",
		"-f", filepath.Join(repoRoot, "deployments", "helm", "values-demo.yaml"),
		"--timeout", "2m"}
	files := []string{"values-demo.yaml"}
	for _, v := range d.values {
		args = append(args, "-f", v)
		files = append(files, filepath.Base(v))
	}
	var sets []string
	for _, s := range append(append([]string{}, d.sets...), strings.Split(os.Getenv("E2E_HELM_SET"), ";")...) {
		if s = strings.TrimSpace(s); s != "" {
			args = append(args, "--set", s)
			sets = append(sets, "--set "+s)
		}
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 3*time.Minute)
	defer cancel()
	out, err := e.run(ctx, d.helmEnv(), kit.ProjectTool(e.t, "helm"), args...)
	if err != nil {
		e.t.Fatal(err)
	}
	status := "?"
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, "STATUS: "); ok {
			status = s
		}
	}
	e.tl.mark("helm install %s deployments/helm/anyroute -n %s -f %s%s: %s",
		release, namespace, strings.Join(files, " -f "), strings.Join(append([]string{""}, sets...), " "), status)
}

// helmEnv is helm's environment: the control plane's kubeconfig, state in the run's directory.
func (d *demo) helmEnv() []string {
	helmHome := d.e.mkdir("helm")
	return []string{
		"KUBECONFIG=" + d.cp.kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME=" + filepath.Join(helmHome, "data"),
	}
}

// helmUpgrade changes the release's values, keeping the others, as a user's `helm upgrade
// --reuse-values --set` would.
func (d *demo) helmUpgrade(sets ...string) {
	e := d.e
	e.t.Helper()
	args := []string{"upgrade", release, filepath.Join(repoRoot, "deployments", "helm", "anyroute"),
		"--namespace", namespace, "--reuse-values", "--timeout", "2m"}
	if d.loadStopped {
		// helm's three-way merge would restore the release's load replicas over the scale to zero.
		args = append(args, "--set", "load.replicas=0")
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := e.run(ctx, d.helmEnv(), kit.ProjectTool(e.t, "helm"), args...); err != nil {
		e.t.Fatal(err)
	}
	e.tl.mark("helm upgrade %s --reuse-values --set %s", release, strings.Join(sets, " --set "))
}

// findHPA reads the one HorizontalPodAutoscaler the chart made (hpa.enabled): its name, the
// Deployment it scales and its minimum.
func (d *demo) findHPA(ctx context.Context) autoscalingv2.HorizontalPodAutoscaler {
	e := d.e
	e.t.Helper()
	hpas, err := d.cp.client.AutoscalingV2().HorizontalPodAutoscalers(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(hpas.Items) != 1 {
		e.t.Fatalf("the chart made %d HorizontalPodAutoscalers in %s, want 1 (hpa.enabled)", len(hpas.Items), namespace)
	}
	h := hpas.Items[0]
	d.hpa, d.deployment, d.min = h.Name, h.Spec.ScaleTargetRef.Name, ptrOr(h.Spec.MinReplicas, 1)
	return h
}

// findObjects reads the names of what the chart made: the HPA, its Deployment and the load
// Deployment.
func (d *demo) findObjects() {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	if d.keda {
		d.findScaledObject()
		return
	}
	h := d.findHPA(ctx)
	d.findLoad()
	e.tl.mark("HPA %s scales deploy/%s from %d to %d on %s; load from deploy/%s",
		d.hpa, d.deployment, d.min, h.Spec.MaxReplicas, describeMetrics(h.Spec.Metrics), d.load)
}

// findScaledObject reads the chart's ScaledObject (KEDA path): the chart must have made no HPA.
func (d *demo) findScaledObject() {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	hpas, err := d.cp.client.AutoscalingV2().HorizontalPodAutoscalers(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range hpas.Items {
		if h.Labels["app.kubernetes.io/managed-by"] == "Helm" {
			e.t.Fatalf("with keda.enabled the chart made the HPA %s", h.Name)
		}
	}
	list, err := d.cp.dynamic.Resource(scaledObjectGVR).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(list.Items) != 1 {
		e.t.Fatalf("the chart made %d ScaledObjects in %s, want 1 (keda.enabled)", len(list.Items), namespace)
	}
	so := list.Items[0].Object
	d.so = list.Items[0].GetName()
	d.deployment, _, _ = unstructured.NestedString(so, "spec", "scaleTargetRef", "name")
	lo, _, _ := unstructured.NestedInt64(so, "spec", "minReplicaCount")
	hi, _, _ := unstructured.NestedInt64(so, "spec", "maxReplicaCount")
	d.min = int32(lo)
	triggers, _, _ := unstructured.NestedSlice(so, "spec", "triggers")
	d.findLoad()
	e.tl.mark("ScaledObject %s scales deploy/%s from %d to %d on %v; load from deploy/%s", d.so, d.deployment, lo, hi, triggers, d.load)
}

// findLoad reads the chart's load Deployment: one, at 0 replicas until the test starts it.
func (d *demo) findLoad() {
	e := d.e
	e.t.Helper()
	loads, err := d.cp.client.AppsV1().Deployments(namespace).List(e.t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=load"})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(loads.Items) != 1 || ptrOr(loads.Items[0].Spec.Replicas, 1) != 0 {
		e.t.Fatalf("want one load Deployment at 0 replicas (load.enabled, load.replicas 0), got %d", len(loads.Items))
	}
	d.load = loads.Items[0].Name
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func describeMetrics(ms []autoscalingv2.MetricSpec) string {
	var out []string
	for _, m := range ms {
		switch {
		case m.Pods != nil:
			out = append(out, fmt.Sprintf("Pods metric %s (target average %s)", m.Pods.Metric.Name, m.Pods.Target.AverageValue))
		case m.External != nil:
			out = append(out, fmt.Sprintf("External metric %s (target average %s)", m.External.Metric.Name, m.External.Target.AverageValue))
		default:
			out = append(out, string(m.Type)+" metric")
		}
	}
	return strings.Join(out, ", ")
}

// until polls cond until it reports done. It fails the test at once when a node component stops
// or a pod cannot run, and after timeout with cond's last state and a diagnosis of the metrics
// pipeline.
func (d *demo) until(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	e := d.e
	e.t.Helper()
	if dl, ok := e.t.Deadline(); ok && time.Until(dl)-time.Minute < timeout {
		timeout = max(time.Until(dl)-time.Minute, 10*time.Second)
	}
	ctx := e.t.Context()
	start := time.Now()
	var state string
	for {
		if err := d.pods.err(); err != nil {
			e.t.Fatalf("%s: %v", what, err)
		}
		done, s, err := cond(ctx)
		if err != nil {
			s = "error: " + err.Error()
		}
		state = s
		if done {
			return
		}
		if time.Since(start) > timeout {
			e.t.Fatalf("%s: not within %v.\nlast seen: %s\n%s", what, timeout, state, d.doctorText(ctx))
		}
		time.Sleep(time.Second)
	}
}

// waitServerPods waits for the Deployment's first pods to run and be ready.
func (d *demo) waitServerPods() []string {
	var pods []string
	d.until("the app pods running", 3*time.Minute, func(context.Context) (bool, string, error) {
		pods = d.pods.running("server")
		return len(pods) >= int(d.min), fmt.Sprintf("app pods %v", pods), nil
	})
	return pods
}

// metricValue is one item of a custom metrics API answer.
type metricValue struct {
	DescribedObject struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"describedObject"`
	Metric struct {
		Name string `json:"name"`
	} `json:"metric"`
	Value resource.Quantity `json:"value"`
}

// getRaw is `kubectl get --raw PATH`, as a user would ask an aggregated API, within 15 s; its
// error is kubectl's first line.
func (d *demo) getRaw(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := d.e.run(ctx, nil, kit.ProjectTool(d.e.t, "kubectl"), "--kubeconfig", d.cp.kubeconfig, "get", "--raw", path)
	if err != nil {
		return "", fmt.Errorf("%s", firstLine(err.Error(), out))
	}
	return out, nil
}

// customMetricPath is what `kubectl get --raw` asks for: avg_requests of every pod in the namespace.
var customMetricPath = fmt.Sprintf("/apis/custom.metrics.k8s.io/v1beta1/namespaces/%s/pods/*/%s", namespace, customMetric)

// podMetrics asks the custom metrics API, with kubectl as a user would, for every pod's value.
func (d *demo) podMetrics(ctx context.Context) (map[string]float64, error) {
	out, err := d.getRaw(ctx, customMetricPath)
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []metricValue `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", customMetricPath, err)
	}
	values := map[string]float64{}
	for _, it := range list.Items {
		values[it.DescribedObject.Name] = it.Value.AsApproximateFloat64()
	}
	return values, nil
}

func firstLine(err, out string) string {
	if s := strings.TrimSpace(out); s != "" {
		return strings.Split(s, "\n")[0]
	}
	return strings.Split(err, "\n")[0]
}

// waitMetricPerPod waits until the custom metrics API has avg_requests for every running app pod.
func (d *demo) waitMetricPerPod(pods []string) {
	var values map[string]float64
	d.until("custom metric "+customMetric+" for every app pod", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		v, err := d.podMetrics(ctx)
		if err != nil {
			return false, "", err
		}
		values = v
		for _, p := range pods {
			if _, ok := v[p]; !ok {
				return false, fmt.Sprintf("values %v, none yet for %s", v, p), nil
			}
		}
		return true, "", nil
	})
	d.e.tl.mark("kubectl get --raw %s: %s", customMetricPath, formatValues(values))
}

func formatValues(v map[string]float64) string {
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%.2f", n, v[n]))
	}
	return strings.Join(parts, " ")
}

func (d *demo) getHPA(ctx context.Context) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	return d.cp.client.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, d.hpa, metav1.GetOptions{})
}

func condition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range h.Status.Conditions {
		if h.Status.Conditions[i].Type == typ {
			return &h.Status.Conditions[i]
		}
	}
	return nil
}

// waitHPAActive waits for the HPA controller to read the metric (ScalingActive=True): a metric
// name or type the adapter does not serve stops here, with the controller's own message.
func (d *demo) waitHPAActive() {
	d.until("HPA "+d.hpa+" reading its metric (condition ScalingActive)", 45*time.Second, func(ctx context.Context) (bool, string, error) {
		h, err := d.getHPA(ctx)
		if err != nil {
			return false, "", err
		}
		c := condition(h, autoscalingv2.ScalingActive)
		if c == nil {
			return false, "no ScalingActive condition yet", nil
		}
		return c.Status == corev1.ConditionTrue, fmt.Sprintf("ScalingActive=%s %s: %s", c.Status, c.Reason, c.Message), nil
	})
	d.e.tl.mark("HPA %s ScalingActive: the controller reads its metric", d.hpa)
}

// waitScaleOut waits for the HPA to ask for more than its minimum, and for the new pods to run.
func (d *demo) waitScaleOut() {
	d.until("HPA desired replicas above the minimum under load", 180*time.Second, func(ctx context.Context) (bool, string, error) {
		h, err := d.getHPA(ctx)
		if err != nil {
			return false, "", err
		}
		return h.Status.DesiredReplicas > d.min, hpaState(h), nil
	})
	h, _ := d.getHPA(d.e.t.Context())
	d.e.tl.mark("scale out: %s", hpaState(h))
	d.until("new app pods running", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		dep, err := d.cp.client.AppsV1().Deployments(namespace).Get(ctx, d.deployment, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		running := d.pods.running("server")
		return len(running) > int(d.min), fmt.Sprintf("deploy/%s %s; running %v", d.deployment, deploymentState(dep), running), nil
	})
}

func hpaState(h *autoscalingv2.HorizontalPodAutoscaler) string {
	if h == nil {
		return "?"
	}
	v := doctor.HPAMetricOf(h)
	u := metricUnit{percent: v.Percent}
	return fmt.Sprintf("replicas %d, desired %d, %s %s/%s", h.Status.CurrentReplicas, h.Status.DesiredReplicas,
		v.Name, u.format(v.Current, v.HasCurrent), u.format(v.Target, v.HasTarget))
}

func deploymentState(dep *appsv1.Deployment) string {
	return fmt.Sprintf("replicas %d, ready %d", ptrOr(dep.Spec.Replicas, 1), dep.Status.ReadyReplicas)
}

// waitNewPodTraffic waits until an app pod made by the scale-out has served the load's requests,
// as Prometheus scraped them under the pod's name.
func (d *demo) waitNewPodTraffic(initial []string) {
	var pod string
	var count float64
	d.until("a new app pod serving the load's requests", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		served, err := d.served(ctx)
		if err != nil {
			return false, "", err
		}
		for _, p := range d.pods.running("server") {
			if !slices.Contains(initial, p) && served[p] > 0 {
				pod, count = p, served[p]
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("running %v, initial %v, requests served %s", d.pods.running("server"), initial, formatValues(served)), nil
	})
	d.e.tl.mark("new pod %s has served %.0f requests (Prometheus, app_requests_total)", pod, count)
}

// served returns the requests each pod has served, as Prometheus last scraped them.
func (d *demo) served(ctx context.Context) (map[string]float64, error) {
	return d.prom.requestsByPod(ctx, `sum by (%s) (app_requests_total{%s=%q})`)
}

// holdLoad waits, while the load's stages run, for the HPA to go on scaling out as the new pods'
// rates fill in, until it asks for peak pods and they run; the peak must come within 90s, or the
// test fails. Then every running app pod must have served requests.
func (d *demo) holdLoad(peak int32) {
	ctx := d.e.t.Context()
	d.until(fmt.Sprintf("the HPA asking for %d pods (the peak) and them running", peak), 90*time.Second, func(ctx context.Context) (bool, string, error) {
		h, err := d.getHPA(ctx)
		if err != nil {
			return false, "", err
		}
		running := d.pods.running("server")
		return h.Status.DesiredReplicas >= peak && len(running) >= int(h.Status.DesiredReplicas),
			fmt.Sprintf("%s; running %v", hpaState(h), running), nil
	})
	h, _ := d.getHPA(ctx)
	d.e.tl.mark("load held: %s", hpaState(h))
	d.until("every app pod serving the load's requests", 30*time.Second, func(ctx context.Context) (bool, string, error) {
		served, err := d.served(ctx)
		if err != nil {
			return false, "", err
		}
		running := d.pods.running("server")
		for _, p := range running {
			if served[p] == 0 {
				return false, fmt.Sprintf("running %v, requests served %s", running, formatValues(served)), nil
			}
		}
		d.e.tl.mark("requests served per pod: %s", formatValues(served))
		return true, "", nil
	})
}

// showPeak logs what a user would look at while the demo is scaled out.
func (d *demo) showPeak() {
	ctx := d.e.t.Context()
	if v, err := d.podMetrics(ctx); err == nil {
		d.e.tl.mark("custom metric at the peak: %s", formatValues(v))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := d.e.run(ctx, nil, kit.ProjectTool(d.e.t, "kubectl"), "--kubeconfig", d.cp.kubeconfig,
		"-n", namespace, "describe", "hpa", d.hpa)
	if err != nil {
		out = err.Error()
	}
	d.e.t.Logf("kubectl describe hpa %s:\n%s", d.hpa, out)
}

// stopLoad scales the load to zero once its stages have run (its container lingers, sending
// nothing), and waits for its pod to stop.
func (d *demo) stopLoad() {
	ctx, cancel := context.WithTimeout(d.e.t.Context(), 30*time.Second)
	defer cancel()
	d.e.tl.mark("stopping the load: kubectl scale deploy/%s --replicas=0", d.load)
	d.loadStopped = true
	if _, err := d.e.run(ctx, nil, kit.ProjectTool(d.e.t, "kubectl"), "--kubeconfig", d.cp.kubeconfig,
		"-n", namespace, "scale", "deploy/"+d.load, "--replicas=0"); err != nil {
		d.e.t.Fatal(err)
	}
	d.until("the load stopped", 60*time.Second, func(context.Context) (bool, string, error) {
		s := d.pods.running("load")
		return len(s) == 0, fmt.Sprintf("load pods %v", s), nil
	})
}

// waitScaleIn waits for the HPA, the Deployment and the running pods to be back at the minimum.
func (d *demo) waitScaleIn() {
	d.until("replicas back to the minimum after the load stopped", 300*time.Second, func(ctx context.Context) (bool, string, error) {
		h, err := d.getHPA(ctx)
		if err != nil {
			return false, "", err
		}
		dep, err := d.cp.client.AppsV1().Deployments(namespace).Get(ctx, d.deployment, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		running := d.pods.running("server")
		done := h.Status.DesiredReplicas == d.min && h.Status.CurrentReplicas == d.min && ptrOr(dep.Spec.Replicas, 1) == d.min &&
			dep.Status.ReadyReplicas == d.min && len(running) == int(d.min)
		return done, fmt.Sprintf("%s; deploy/%s %s; running %v", hpaState(h), d.deployment, deploymentState(dep), running), nil
	})
	h, _ := d.getHPA(d.e.t.Context())
	d.e.tl.mark("scale in: %s", hpaState(h))
}

// startSampler marks the HPA's state whenever it changes, and every 15s each app pod's request
// rate as Prometheus sees it, when that changed.
func (d *demo) startSampler() {
	stop := make(chan struct{})
	done := make(chan struct{})
	d.e.t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var lastHPA, lastRates string
		ratesAt := time.Time{}
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
			// DesiredReplicas is 0 until the controller's first reconcile.
			if h, err := d.getHPA(ctx); err == nil && h.Status.DesiredReplicas > 0 {
				if s := hpaState(h); s != lastHPA {
					d.e.tl.mark("hpa: %s", s)
					lastHPA = s
				}
			}
			if time.Since(ratesAt) >= 15*time.Second {
				ratesAt = time.Now()
				if r := d.observedRates(ctx); r != "" && r != lastRates {
					d.e.tl.mark("requests/s per pod over 10s: %s", r)
					lastRates = r
				}
			}
		}
	}()
}

func (d *demo) observedRates(ctx context.Context) string {
	v, err := d.prom.requestsByPod(ctx, `sum by (%s) (rate(app_requests_total{%s=%q}[10s]))`)
	if err != nil || len(v) == 0 {
		return ""
	}
	return formatValues(v)
}
