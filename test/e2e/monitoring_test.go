//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/anyroute/anyroute/test/kit"
)

// prometheus is Prometheus (scripts/tools.sh's build: Debian's has no Kubernetes discovery) on
// this machine, discovering the pods through its Kubernetes service discovery against the node's
// API server (the pod IPs on the node's bridge are reachable from here), with the
// prometheus-community chart's kubernetes-pods job: the pods annotated prometheus.io/scrape, at
// their prometheus.io/port and prometheus.io/path, relabelled into namespace and pod.
type prometheus struct {
	*kit.Prometheus
	kubeconfig string
	configFile string

	mu        sync.Mutex
	podLabels [2]string // the label names namespace and pod land in
}

func (p *prometheus) labels() [2]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.podLabels
}

// config is prometheus.yml: a 1s scrape of the demo namespace's annotated pods, relabelled into
// podLabels.
func (p *prometheus) config() string {
	l := p.labels()
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: %q
        namespaces: {names: [%s]}
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_phase]
        action: keep
        regex: Running
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        action: replace
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        action: replace
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: $1:$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: %s
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: %s
`, p.kubeconfig, namespace, l[0], l[1])
}

// relabel rewrites the config to put namespace and pod into other labels and reloads it (SIGHUP),
// as a changed scrape config on a cluster would.
func (p *prometheus) relabel(ns, pod string) error {
	p.mu.Lock()
	p.podLabels = [2]string{ns, pod}
	p.mu.Unlock()
	if err := os.WriteFile(p.configFile, []byte(p.config()), 0o600); err != nil {
		return err
	}
	return p.Proc.Signal(syscall.SIGHUP)
}

func startPrometheus(e *env, cp *controlPlane) *prometheus {
	e.t.Helper()
	p := &prometheus{kubeconfig: cp.kubeconfig, podLabels: [2]string{"namespace", "pod"}}
	// E2E_POD_LABELS=kubernetes_namespace,kubernetes_pod_name scrapes as older Prometheus charts
	// did: the adapter rule must then disagree, and the test says so.
	if v := os.Getenv("E2E_POD_LABELS"); v != "" {
		ns, pod, ok := strings.Cut(v, ",")
		if !ok {
			e.t.Fatalf("E2E_POD_LABELS=%q: want NAMESPACE_LABEL,POD_LABEL", v)
		}
		p.podLabels = [2]string{ns, pod}
	}
	dir := e.mkdir("prometheus")
	p.configFile = filepath.Join(dir, "prometheus.yml")
	p.Prometheus = kit.StartPrometheus(e.t, kit.PrometheusOptions{
		Config: p.config(), Dir: dir, LogFile: e.path("logs", "prometheus.log"),
		Bin: kit.ProjectTool(e.t, "prometheus")})
	e.tl.mark("prometheus ready on %s (pods of %s by Kubernetes service discovery; labels %s, %s)", p.Addr, namespace, p.podLabels[0], p.podLabels[1])
	return p
}

// requestsByPod evaluates a query that sums by the pod label, and returns its values by pod.
func (p *prometheus) requestsByPod(ctx context.Context, format string) (map[string]float64, error) {
	l := p.labels()
	return p.ByLabel(ctx, fmt.Sprintf(format, l[1], l[0], namespace), l[1])
}

// adapter is prometheus-adapter with the chart's rule file, serving custom.metrics.k8s.io behind
// the aggregator from the node's address.
type adapter struct {
	e        *env
	cp       *controlPlane
	proc     *kit.Proc
	rules    string
	original string   // the rule file before a breakage
	args     []string // without --config
}

// adapterNamespace and adapterService are where the APIService points, as in the
// prometheus-adapter chart.
const (
	adapterNamespace = "monitoring"
	adapterService   = "prometheus-adapter"
	customMetricsAPI = "v1beta1.custom.metrics.k8s.io"
	adapterRelist    = 5 * time.Second
)

func startAdapter(e *env, cp *controlPlane, prom *prometheus) *adapter {
	e.t.Helper()
	rules := filepath.Join(repoRoot, "deployments", "helm", "prometheus-adapter-rules.yaml")
	if v := os.Getenv("E2E_ADAPTER_RULES"); v != "" {
		rules = v
	}
	if _, err := os.Stat(rules); err != nil {
		e.t.Fatalf("adapter rule file: %v", err)
	}
	logLevel := "2"
	if v := os.Getenv("E2E_ADAPTER_V"); v != "" {
		logLevel = v
	}
	port := mustFreePort(e, nodeIP)
	a := &adapter{e: e, cp: cp, args: []string{
		"--prometheus-url=" + prom.URL + "/",
		"--metrics-relist-interval=" + adapterRelist.String(),
		"--bind-address=" + nodeIP, "--secure-port=" + port,
		"--cert-dir=" + e.mkdir("adapter", "certs"),
		"--lister-kubeconfig=" + cp.kubeconfig,
		"--authentication-kubeconfig=" + cp.kubeconfig,
		"--authorization-kubeconfig=" + cp.kubeconfig,
		"--v=" + logLevel}}
	a.start(rules)
	e.tl.mark("prometheus-adapter ready on %s:%s with %s", nodeIP, port, relPath(rules))
	registerAdapter(e, cp, nodeIP, port)
	a.record()
	waitAPIServiceAvailable(e, cp, a)
	return a
}

// start runs the adapter with a rule file and waits for it to be ready.
func (a *adapter) start(rules string) {
	e := a.e
	e.t.Helper()
	a.rules = rules
	a.proc = e.start("prometheus-adapter", nil, kit.ProjectTool(e.t, "prometheus-adapter"), append([]string{"--config=" + rules}, a.args...)...)
	var addr, port string
	for _, arg := range a.args {
		if v, ok := strings.CutPrefix(arg, "--bind-address="); ok {
			addr = v
		}
		if v, ok := strings.CutPrefix(arg, "--secure-port="); ok {
			port = v
		}
	}
	kit.WaitHTTP(e.t, a.proc, "https://"+addr+":"+port+"/readyz", nil, 30*time.Second)
}

// restart runs the adapter again with another rule file, and records it as a changed ConfigMap
// would on a cluster.
func (a *adapter) restart(rules string) {
	a.e.t.Helper()
	a.proc.Stop(5 * time.Second)
	a.start(rules)
	a.record()
	waitAPIServiceAvailable(a.e, a.cp, a)
}

// adapterConfigDir is where the recorded Deployment mounts the adapter's ConfigMap, as the
// prometheus-adapter chart does.
const adapterConfigDir = "/etc/adapter"

// record writes what the prometheus-adapter chart would make beside the Service: the ConfigMap
// holding the rules and the Deployment running the adapter with its args (0 replicas: the test
// runs the process itself). anyroute doctor reads the rules and the re-list interval from them.
func (a *adapter) record() {
	e := a.e
	e.t.Helper()
	ctx := context.Background()
	rules, err := os.ReadFile(a.rules)
	if err != nil {
		e.t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: adapterService, Namespace: adapterNamespace},
		Data: map[string]string{"config.yaml": string(rules)}}
	cms := a.cp.client.CoreV1().ConfigMaps(adapterNamespace)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
	} else if err != nil {
		e.t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "prometheus-adapter"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: adapterService, Namespace: adapterNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: "prometheus-adapter", Image: "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0",
						Args:         append([]string{"--config=" + adapterConfigDir + "/config.yaml"}, a.args...),
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: adapterConfigDir}},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: adapterService}}}}},
				},
			},
		},
	}
	deps := a.cp.client.AppsV1().Deployments(adapterNamespace)
	if _, err := deps.Get(ctx, adapterService, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := deps.Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// relPath shows a path relative to the repository when it is inside it.
func relPath(p string) string {
	if r, err := filepath.Rel(repoRoot, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// registerAdapter makes the objects the prometheus-adapter chart makes for the aggregator: a
// Service (here without a selector, with a hand-made EndpointSlice: there is no adapter pod) and
// the APIService.
func registerAdapter(e *env, cp *controlPlane, ip, port string) {
	registerAPIService(e, cp, adapterNamespace, adapterService, ip, port, "custom.metrics.k8s.io", customMetricsAPI)
}

// registerAPIService registers a metrics server listening on ip:port for an API group through a
// selector-less Service with a hand-made EndpointSlice.
func registerAPIService(e *env, cp *controlPlane, ns, service, ip, port, group, name string) {
	e.t.Helper()
	ctx := context.Background()
	adapterNamespace, adapterService := ns, service
	portNum, _ := strconv.Atoi(port)
	core := cp.client.CoreV1()
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: adapterNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		e.t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: adapterService, Namespace: adapterNamespace},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(portNum)), Protocol: corev1.ProtocolTCP,
		}}},
	}
	if _, err := core.Services(adapterNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: adapterService + "-e2e", Namespace: adapterNamespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: adapterService,
			discoveryv1.LabelManagedBy:   "anyroute-e2e",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(portNum)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := cp.client.DiscoveryV1().EndpointSlices(adapterNamespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"service":               map[string]any{"name": adapterService, "namespace": adapterNamespace, "port": int64(443)},
			"group":                 group,
			"version":               "v1beta1",
			"insecureSkipTLSVerify": true,
			"groupPriorityMinimum":  int64(100),
			"versionPriority":       int64(100),
		},
	}}
	if _, err := cp.dynamic.Resource(apiServiceGVR).Create(ctx, apiService, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// waitAPIServiceAvailable waits for the aggregator to mark the APIService Available: it has
// reached the adapter through the endpoint address with the front-proxy certificate.
func waitAPIServiceAvailable(e *env, cp *controlPlane, a *adapter) {
	waitAPIService(e, cp, customMetricsAPI, a.proc)
}

// waitAPIService waits for an APIService to be Available, failing at once when its server ends.
func waitAPIService(e *env, cp *controlPlane, name string, server *kit.Proc) {
	e.t.Helper()
	kit.WaitUntil(e.t, 60*time.Second, "APIService "+name+" Available", func() (bool, string, error) {
		if err := server.UnexpectedExit(); err != nil {
			return false, "", err
		}
		cond := apiServiceCondition(cp, name)
		return strings.HasPrefix(cond, "True"), cond, nil
	})
	e.tl.mark("APIService %s Available", name)
}

// apiServiceCondition returns the Available condition of an APIService as
// "STATUS REASON: MESSAGE".
func apiServiceCondition(cp *controlPlane, name string) string {
	obj, err := cp.dynamic.Resource(apiServiceGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" {
			return fmt.Sprintf("%v %v: %v", m["status"], m["reason"], m["message"])
		}
	}
	return "no Available condition yet"
}
