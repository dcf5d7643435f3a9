package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

func TestQuantity(t *testing.T) {
	for raw, want := range map[string]string{
		"3604m":  "3604m = 3.604",
		"17151m": "17151m = 17.151",
		"1k":     "1k = 1000",
		"5":      "5",
		"500m":   "500m = 0.5",
		"0":      "0",
		"2500u":  "2500u = 0.0025",
		"bogus":  "bogus",
	} {
		if got := Quantity(raw); got != want {
			t.Errorf("Quantity(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestAdapterRule(t *testing.T) {
	// the chart's rule (the fixture's), then others
	cfg, err := ParseAdapterConfig([]byte(rules + `- seriesQuery: '{__name__="http_requests_total",kubernetes_namespace!=""}'
  resources:
    overrides:
      kubernetes_namespace: {resource: namespace}
      kubernetes_pod_name: {resource: pods}
  name: {matches: ^(.*)_total$}
- seriesQuery: 'kube_thing'
  resources: {template: <<.Resource>>}
`))
	if err != nil {
		t.Fatal(err)
	}
	r0, r1, r2 := cfg.Rules[0], cfg.Rules[1], cfg.Rules[2]
	if r0.SeriesName() != "app_requests_total" || r1.SeriesName() != "http_requests_total" || r2.SeriesName() != "kube_thing" {
		t.Errorf("series names %q %q %q", r0.SeriesName(), r1.SeriesName(), r2.SeriesName())
	}
	if n, err := r0.MetricName("app_requests_total"); n != "avg_requests" || err != nil {
		t.Errorf("rule 0 serves %q (%v)", n, err)
	}
	if n, err := r1.MetricName("http_requests_total"); n != "http_requests" || err != nil {
		t.Errorf("rule 1 serves %q (%v), want the adapter's default $1", n, err)
	}
	if _, err := r0.MetricName("anyroute_requests_total"); err == nil {
		t.Error("name.matches accepted another series")
	}
	if r1.ResourceLabel("namespace") != "kubernetes_namespace" || r1.ResourceLabel("pod") != "kubernetes_pod_name" {
		t.Errorf("rule 1 labels %q %q", r1.ResourceLabel("namespace"), r1.ResourceLabel("pod"))
	}
	if r2.ResourceLabel("pod") != "pod" {
		t.Errorf("template rule: %q", r2.ResourceLabel("pod"))
	}
	if got := fmt.Sprint(r0.Labels()); got != "[namespace pod]" {
		t.Errorf("labels %s", got)
	}
}

func TestParseAdapterArgs(t *testing.T) {
	a, err := parseAdapterArgs([]string{"/adapter", "--secure-port=6443", "--config", "/etc/adapter/config.yaml",
		"--metrics-relist-interval=30s", "--prometheus-url=http://prometheus-server.default.svc:80/"})
	if err != nil {
		t.Fatal(err)
	}
	if a.configPath != "/etc/adapter/config.yaml" || a.relist != 30*time.Second || !a.relistSet || a.prometheusURL != "http://prometheus-server.default.svc:80/" {
		t.Errorf("%+v", a)
	}
	if a, _ := parseAdapterArgs([]string{"--config=/c.yaml"}); a.relist != defaultRelist || a.relistSet {
		t.Errorf("default relist: %+v", a)
	}
	if _, err := parseAdapterArgs([]string{"--metrics-relist-interval=often"}); err == nil {
		t.Error("a bad duration passed")
	}
}

func TestParsePromDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"15s": 15 * time.Second, "1m": time.Minute, "1d": 24 * time.Hour, "1m30s": 90 * time.Second} {
		if got, err := parsePromDuration(s); got != want || err != nil {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
}

func TestScanCounter(t *testing.T) {
	text := "# HELP app_requests_total x\n# TYPE app_requests_total counter\n" +
		`app_requests_total{code="200",method="GET",route="hello"} 10` + "\n" +
		`app_requests_total{code="500",method="GET",route="hello"} 2.5` + "\n" +
		`other_requests_total 3` + "\n" + `app_build_info{version="dev"} 1` + "\n"
	n, total, prefixes := scanCounter(text, "app_requests_total")
	if n != 2 || total != 12.5 || fmt.Sprint(prefixes) != "[app]" {
		t.Errorf("%d %v %v", n, total, prefixes)
	}
}

// fixture is a healthy prometheus-adapter chain: the release's Deployment with two Ready pods,
// the chart's HPA, the adapter's APIService, Service, Deployment and ConfigMap, the pod proxy's
// and the custom metrics API's answers, and a Prometheus.
type fixture struct {
	objects    []runtime.Object  // beside the healthy chain's
	store      []runtime.Object  // every object the API server holds, once chain has run
	raw        map[string]string // API server path → body; missing: 404
	podLabel   string            // the label Prometheus puts the pod name in
	series     string            // the counter's name in Prometheus
	scrape     string
	rules      string
	hpaMetric  string
	so         *scaledObject
	soQueryHit bool
	// ranges answers a range query's point at a time (compare_test.go); nil answers none.
	ranges func(query string, at time.Time) (float64, bool)
	// loadStart is the load generator's load_start_time_seconds in Unix seconds; 0 none.
	loadStart float64
}

const rules = `rules:
- seriesQuery: 'app_requests_total{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: ^app_requests_total$, as: avg_requests}
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)
`

func newFixture() *fixture {
	return &fixture{podLabel: "pod", series: "app_requests_total", scrape: "15s", rules: rules, hpaMetric: "avg_requests", soQueryHit: true,
		raw: map[string]string{
			"/api/v1/namespaces/demo/pods/anyroute-abc-1:8081/proxy/metrics": `app_build_info{version="dev"} 1` + "\n" + `app_requests_total{code="200",method="GET",route="hello"} 100` + "\n",
			"/api/v1/namespaces/demo/pods/anyroute-abc-2:8081/proxy/metrics": `app_build_info{version="dev"} 1` + "\n" + `app_requests_total{code="200",method="GET",route="hello"} 50` + "\n",
			"/apis/apiregistration.k8s.io/v1/apiservices/" + customMetricsAPI: `{"spec":{"service":{"namespace":"monitoring","name":"prometheus-adapter"}},
				"status":{"conditions":[{"type":"Available","status":"True","reason":"Passed"}]}}`,
			"/apis/custom.metrics.k8s.io/v1beta1": `{"kind":"APIResourceList","groupVersion":"custom.metrics.k8s.io/v1beta1","resources":[{"name":"pods/avg_requests","namespaced":true,"kind":"MetricValueList","verbs":["get"]}]}`,
			"/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/pods/*/avg_requests": `{"items":[
				{"describedObject":{"kind":"Pod","name":"anyroute-abc-1"},"value":"3604m"},
				{"describedObject":{"kind":"Pod","name":"anyroute-abc-2"},"value":"4"}]}`,
		}}
}

func pod(name string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo", Labels: map[string]string{"app": "anyroute"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8081"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func (f *fixture) chain(t *testing.T) *Chain {
	t.Helper()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "anyroute", Namespace: "demo", Labels: map[string]string{
			"app.kubernetes.io/instance": "anyroute", "app.kubernetes.io/component": "server"}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "anyroute"}}},
	}
	objs := []runtime.Object{dep, pod("anyroute-abc-1", true), pod("anyroute-abc-2", true)}
	if f.so == nil {
		objs = append(objs, f.hpa("anyroute", autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: f.hpaMetric},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("5"))}}},
			autoscalingv2.MetricStatus{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{
				Metric: autoscalingv2.MetricIdentifier{Name: f.hpaMetric}, Current: autoscalingv2.MetricValueStatus{AverageValue: ptr.To(resource.MustParse("3802m"))}}}))
		objs = append(objs,
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-adapter", Namespace: "monitoring"},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "prometheus-adapter"}}},
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-adapter", Namespace: "monitoring"},
				Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "prometheus-adapter"}},
					Spec: corev1.PodSpec{
						Containers: []corev1.Container{{Name: "adapter", Args: []string{"--config=/etc/adapter/config.yaml", "--metrics-relist-interval=30s"},
							VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/adapter/"}}}},
						Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: "prometheus-adapter"}}}}},
					}}}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-adapter", Namespace: "monitoring"}, Data: map[string]string{"config.yaml": f.rules}},
		)
	} else {
		objs = append(objs, f.hpa("keda-hpa-anyroute", autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "s0-prometheus"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("5"))}}},
			autoscalingv2.MetricStatus{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
				Metric: autoscalingv2.MetricIdentifier{Name: "s0-prometheus"}, Current: autoscalingv2.MetricValueStatus{AverageValue: ptr.To(resource.MustParse("3802m"))}}}))
	}
	f.store = append(objs, f.objects...)
	prom := httptest.NewServer(http.HandlerFunc(f.prometheus))
	t.Cleanup(prom.Close)
	raw := func(_ context.Context, p string) ([]byte, error) {
		if body, ok := f.raw[p]; ok {
			return []byte(body), nil
		}
		if body, ok := f.serve(t, p); ok {
			return body, nil
		}
		return nil, fmt.Errorf("GET %s: 404 Not Found: the server could not find the requested resource", p)
	}
	cluster := Cluster{Raw: raw}
	return &Chain{Cluster: cluster, Namespace: "demo", Release: "anyroute", PrometheusURL: prom.URL,
		Prometheus: PrometheusGetter(cluster, prom.Client())}
}

// apiPath splits an API path of namespaced objects: group version, namespace, resource, name ("" for
// a list).
var apiPath = regexp.MustCompile(`^/apis?/(.+)/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?$`)

// serve answers a GET of the objects in the store as the API server does: a list of a namespace's
// objects of one kind (with a label selector), or one object by name.
func (f *fixture) serve(t *testing.T, p string) ([]byte, bool) {
	p, query, _ := strings.Cut(p, "?")
	m := apiPath.FindStringSubmatch(p)
	if m == nil {
		return nil, false
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		t.Fatal(err)
	}
	items := []runtime.Object{}
	for _, obj := range f.store {
		var gv, resource string
		switch obj.(type) {
		case *appsv1.Deployment:
			gv, resource = "apps/v1", "deployments"
		case *autoscalingv2.HorizontalPodAutoscaler:
			gv, resource = "autoscaling/v2", "horizontalpodautoscalers"
		case *corev1.Pod:
			gv, resource = "v1", "pods"
		case *corev1.Service:
			gv, resource = "v1", "services"
		case *corev1.ConfigMap:
			gv, resource = "v1", "configmaps"
		default:
			t.Fatalf("no API path for %T", obj)
		}
		meta := obj.(metav1.Object)
		if gv != m[1] || meta.GetNamespace() != m[2] || resource != m[3] {
			continue
		}
		if m[4] == meta.GetName() {
			body, err := json.Marshal(obj)
			return body, err == nil
		}
		if m[4] == "" && sel.Matches(labels.Set(meta.GetLabels())) {
			items = append(items, obj)
		}
	}
	if m[4] != "" {
		return nil, false
	}
	body, err := json.Marshal(map[string]any{"items": items})
	return body, err == nil
}

func (f *fixture) hpa(name string, spec autoscalingv2.MetricSpec, status autoscalingv2.MetricStatus) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "demo"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "anyroute", APIVersion: "apps/v1"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 5, Metrics: []autoscalingv2.MetricSpec{spec}},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, DesiredReplicas: 2,
			CurrentMetrics: []autoscalingv2.MetricStatus{status},
			Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
				{Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, Reason: "ReadyForNewScale"},
				{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionTrue, Reason: "ValidMetricFound"}}},
	}
}

// prometheus answers the instant queries the doctor makes, from the fixture's series.
func (f *fixture) prometheus(w http.ResponseWriter, r *http.Request) {
	type result struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	var res []result
	switch r.URL.Path {
	case "/api/v1/status/config":
		cfg := fmt.Sprintf("global:\n  scrape_interval: 1m\nscrape_configs:\n- job_name: kubernetes-pods\n  scrape_interval: %s\n", f.scrape)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{"yaml": cfg}})
		return
	case "/api/v1/query":
	case "/api/v1/query_range":
		f.queryRange(w, r)
		return
	default:
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query().Get("query")
	nsLabel := "namespace"
	if f.podLabel != "pod" {
		nsLabel = "kubernetes_namespace"
	}
	series := func() {
		for _, p := range []string{"anyroute-abc-1", "anyroute-abc-2"} {
			res = append(res, result{Metric: map[string]string{"__name__": f.series, nsLabel: "demo", f.podLabel: p, "job": "kubernetes-pods", "code": "200"}, Value: [2]any{1.0, "7"}})
		}
	}
	switch {
	case q == f.series:
		series()
	case q == `app_requests_total{namespace!="",pod!=""}` && f.series == "app_requests_total" && f.podLabel == "pod":
		series()
	case q == loadStart("demo") && f.loadStart > 0:
		res = append(res, result{Metric: map[string]string{}, Value: [2]any{1.0, strconv.FormatFloat(f.loadStart, 'f', -1, 64)}})
	case strings.HasPrefix(q, "sum(rate(") && f.soQueryHit:
		res = append(res, result{Metric: map[string]string{}, Value: [2]any{1.0, "7.604"}})
	}
	if res == nil {
		res = []result{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}})
}

func run(t *testing.T, f *fixture) *Report {
	t.Helper()
	r := f.chain(t).Run(context.Background())
	var b bytes.Buffer
	r.writeText(&b)
	t.Log("\n" + b.String())
	return r
}

func linkOf(r *Report, name string) Link {
	for _, l := range r.Links {
		if l.Name == name {
			return l
		}
	}
	return Link{}
}

func TestChainHealthy(t *testing.T) {
	r := run(t, newFixture())
	if !r.Healthy || r.FirstProblem != "" || r.Path != PathAdapter {
		t.Fatalf("healthy chain: %+v", r)
	}
	want := []string{LinkRelease, LinkPods, LinkExporter, LinkPrometheus, LinkAPIService, LinkAdapterRule, LinkRelist, LinkCustomMetric, LinkHPA}
	var got []string
	for _, l := range r.Links {
		got = append(got, l.Name)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("links %v, want %v", got, want)
	}
	if ev := linkOf(r, LinkCustomMetric).Evidence; !strings.Contains(ev, "anyroute-abc-1 3604m = 3.604") {
		t.Errorf("custom-metric evidence %q lacks the decimal beside the quantity", ev)
	}
	if ev := linkOf(r, LinkHPA).Evidence; !strings.Contains(ev, "avg_requests 3802m = 3.802 against target 5") || !strings.Contains(ev, "ScalingActive=True") {
		t.Errorf("hpa evidence %q", ev)
	}
}

// TestChainBreakages breaks one link at a time, as the e2e does for real, and checks the doctor
// names it.
func TestChainBreakages(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(f *fixture)
		link    string
		want    string // in the evidence or hint
		state   Status
	}{
		{"adapter rule with the original's labels", func(f *fixture) {
			f.rules = strings.NewReplacer("namespace: {", "kubernetes_namespace: {", "pod: {", "kubernetes_pod_name: {").Replace(rules)
		}, LinkAdapterRule, "series have no kubernetes_namespace", Fail},
		{"metric name", func(f *fixture) {
			f.series = "anyroute_requests_total"
			for k, v := range f.raw {
				f.raw[k] = strings.ReplaceAll(v, "app_", "anyroute_")
			}
		}, LinkExporter, `config.metrics.namespace is "anyroute"`, Fail},
		{"no request yet", func(f *fixture) {
			f.raw["/api/v1/namespaces/demo/pods/anyroute-abc-2:8081/proxy/metrics"] = `app_build_info{version="dev"} 1` + "\n"
		}, LinkExporter, "anyroute-abc-2 export app_build_info but no app_requests_total yet", Warn},
		{"pod labels", func(f *fixture) { f.podLabel = "kubernetes_pod_name" }, LinkPrometheus, `pod name in label "kubernetes_pod_name"`, Fail},
		{"HPA metric name", func(f *fixture) { f.hpaMetric = "avg_request" }, LinkHPA, "asks for the Pods metric avg_request; the adapter serves pods/avg_requests", Fail},
		{"relist shorter than scrape", func(f *fixture) { f.scrape = "1m" }, LinkRelist, "re-lists every 30s", Fail},
		{"no adapter", func(f *fixture) { delete(f.raw, "/apis/apiregistration.k8s.io/v1/apiservices/"+customMetricsAPI) }, LinkAPIService, "install prometheus-adapter", Fail},
		{"pods not ready", func(f *fixture) { f.objects = append(f.objects, pod("anyroute-abc-3", false)) }, LinkPods, "not Ready: anyroute-abc-3", Warn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture()
			c.breakIt(f)
			r := run(t, f)
			l := linkOf(r, c.link)
			if r.FirstProblem != c.link || l.Status != c.state {
				t.Fatalf("first problem %q (%s), want %s %s", r.FirstProblem, l.Status, c.link, c.state)
			}
			if !strings.Contains(l.Evidence+" "+l.Hint, c.want) {
				t.Errorf("%s: %q / %q lacks %q", c.link, l.Evidence, l.Hint, c.want)
			}
			if (c.state == Fail) == r.Healthy {
				t.Errorf("healthy %v with a %s link", r.Healthy, c.state)
			}
		})
	}
}

func TestChainTargetOutOfReach(t *testing.T) {
	f := newFixture()
	r := f.chain(t)
	for _, obj := range f.store {
		if h, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			h.Spec.Metrics[0].Pods.Target.AverageValue = ptr.To(resource.MustParse("1k"))
			h.Status.CurrentReplicas = 1
		}
	}
	rep := r.Run(context.Background())
	if l := linkOf(rep, LinkHPA); rep.FirstProblem != LinkHPA || l.Status != Warn || !strings.Contains(l.Evidence, "target 1k = 1000") {
		t.Fatalf("%+v", rep)
	}
	if !rep.Healthy {
		t.Error("a warning is not a broken link")
	}
}

func kedaFixture() *fixture {
	f := newFixture()
	f.so = &scaledObject{}
	raw := `{"items":[{"metadata":{"name":"anyroute"},
		"spec":{"scaleTargetRef":{"name":"anyroute"},"triggers":[{"type":"prometheus","metricType":"AverageValue",
			"metadata":{"serverAddress":"http://prometheus-server.default.svc","threshold":"5",
				"query":"sum(rate(app_requests_total{namespace=\"demo\",pod=~\"anyroute-[a-z0-9]+-[a-z0-9]+\"}[2m]))"}}]},
		"status":{"hpaName":"keda-hpa-anyroute","externalMetricNames":["s0-prometheus"],
			"conditions":[{"type":"Ready","status":"True","reason":"ScaledObjectReady"},{"type":"Active","status":"True","reason":"ScalerActive"}]}}]}`
	f.raw["/apis/keda.sh/v1alpha1/namespaces/demo/scaledobjects"] = raw
	f.raw["/apis/apiregistration.k8s.io/v1/apiservices/"+externalMetricsAPI] = `{"spec":{"service":{"namespace":"keda","name":"keda-operator-metrics-apiserver"}},"status":{"conditions":[{"type":"Available","status":"True","reason":"Passed"}]}}`
	f.raw["/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/s0-prometheus?labelSelector=scaledobject.keda.sh%2Fname%3Danyroute"] = `{"items":[{"metricName":"s0-prometheus","value":"7604m"}]}`
	return f
}

func TestChainKEDA(t *testing.T) {
	f := kedaFixture()
	r := run(t, f)
	if !r.Healthy || r.FirstProblem != "" || r.Path != PathKEDA {
		t.Fatalf("healthy KEDA chain: %+v", r)
	}
	if ev := linkOf(r, LinkExternalMetric).Evidence; !strings.Contains(ev, "s0-prometheus = 7604m = 7.604") {
		t.Errorf("external-metric evidence %q", ev)
	}
	if ev := linkOf(r, LinkKEDAQuery).Evidence; !strings.Contains(ev, "= 7.604, 3.802 per Ready pod") {
		t.Errorf("keda-query evidence %q", ev)
	}

	f = kedaFixture()
	f.raw["/apis/keda.sh/v1alpha1/namespaces/demo/scaledobjects"] = strings.Replace(f.raw["/apis/keda.sh/v1alpha1/namespaces/demo/scaledobjects"],
		`{"type":"Ready","status":"True","reason":"ScaledObjectReady"}`,
		`{"type":"Ready","status":"False","reason":"ScaledObjectCheckFailed","message":"Triggers defined in ScaledObject are not working correctly"}`, 1)
	if r := run(t, f); r.FirstBroken != LinkScaledObject {
		t.Errorf("ScaledObject not Ready: first broken %q", r.FirstBroken)
	}

	f = kedaFixture()
	f.soQueryHit = false
	if r := run(t, f); r.FirstBroken != LinkKEDAQuery {
		t.Errorf("empty query: first broken %q", r.FirstBroken)
	}
}

func TestChainNoRelease(t *testing.T) {
	f := newFixture()
	c := f.chain(t)
	c.Release = "other"
	r := c.Run(context.Background())
	if r.FirstBroken != LinkRelease || len(r.Links) != 1 {
		t.Fatalf("%+v", r)
	}
}

func TestReportJSON(t *testing.T) {
	r := run(t, kedaFixture())
	var b bytes.Buffer
	if err := r.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Path != PathKEDA || len(back.Links) != len(r.Links) || !back.Healthy {
		t.Fatalf("%v %s", err, b.String())
	}
}

func TestPrometheusGetter(t *testing.T) {
	var asked string
	cluster := Cluster{Raw: func(_ context.Context, p string) ([]byte, error) { asked = p; return []byte("{}"), nil }}
	get := PrometheusGetter(cluster, http.DefaultClient)
	if _, err := get("http://prometheus-server.default.svc")(context.Background(), "/api/v1/query?query=up"); err != nil {
		t.Fatal(err)
	}
	if asked != "/api/v1/namespaces/default/services/http:prometheus-server:80/proxy/api/v1/query?query=up" {
		t.Errorf("service proxy path %q", asked)
	}
	get("https://prom.monitoring.svc.cluster.local:9091/prom/")(context.Background(), "/x") //nolint:errcheck // only the path matters
	if asked != "/api/v1/namespaces/monitoring/services/https:prom:9091/proxy/prom/x" {
		t.Errorf("service proxy path %q", asked)
	}
}

// TestClusterErrors: an error answer of the API server reads "GET path: status: its Status
// message", the path said once, and a link that fails on it does not say the path again.
func TestClusterErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind": "Status", "status": "Failure", "message": "the server could not find the metric avg_requests for pods", "code": 404}`)
	}))
	defer srv.Close()
	cluster, err := NewCluster(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	const p = "/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/pods/*/avg_requests"
	_, err = cluster.Raw(context.Background(), p)
	if want := "GET " + p + ": 404 Not Found: the server could not find the metric avg_requests for pods"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	c := &Chain{Cluster: cluster, Namespace: "demo", served: "avg_requests"}
	l := c.checkCustomMetric(context.Background())
	if l.Status != Fail || strings.Count(l.Evidence, p) != 1 {
		t.Errorf("custom-metric link %+v: want a failure naming the path once", l)
	}
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run([]string{"-o", "yaml"}, &out, &errb); code != exitBadUsage {
		t.Errorf("-o yaml: exit %d", code)
	}
	// -since is the start of the load to compare from; a bad input is refused before any cluster.
	for _, args := range [][]string{{"-since", "10m"}, {"-svg", "timeline.svg"}, {"-predict-load", "load.json", "-since", "yesterday"}} {
		if code := Run(args, &out, &errb); code != exitBadUsage {
			t.Errorf("%v: exit %d", args, code)
		}
	}
	errb.Reset()
	t.Chdir("../..") // the chart's values, as from the repository's root
	if code := Run([]string{"-predict-load", "/nonexistent/load.json", "-since", "10m"}, &out, &errb); code != exitBadUsage || !strings.Contains(errb.String(), "/nonexistent/load.json") {
		t.Errorf("a missing load file: exit %d, %s", code, errb.String())
	}
	// -predict takes the load from the values: the chart's own have none (load.enabled false).
	errb.Reset()
	if code := Run([]string{"-predict", "-since", "10m"}, &out, &errb); code != exitBadUsage || !strings.Contains(errb.String(), "no load file given, and the values run no anyroute load") {
		t.Errorf("-predict without a load in the values: exit %d, %s", code, errb.String())
	}
	t.Setenv("KUBECONFIG", t.TempDir()+"/none")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if code := Run(nil, &out, &errb); code != exitBadUsage || !strings.Contains(errb.String(), "no cluster") {
		t.Errorf("no cluster: exit %d, %s", code, errb.String())
	}
	// With the demo's load in the values, -predict predicts and goes on to the cluster.
	errb.Reset()
	demo := []string{"-predict", "-f", "deployments/helm/values-demo.yaml", "-f", "deployments/helm/values-demo-load.yaml", "-since", "10m"}
	if code := Run(demo, &out, &errb); code != exitBadUsage || !strings.Contains(errb.String(), "no cluster") {
		t.Errorf("%v: exit %d, %s; want the prediction made and no cluster found", demo, code, errb.String())
	}
}

// kedaHPA is the HPA KEDA made in a kedaFixture's store, once chain has run.
func kedaHPA(f *fixture) *autoscalingv2.HorizontalPodAutoscaler {
	for _, obj := range f.store {
		if h, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler); ok && h.Name == "keda-hpa-anyroute" {
			return h
		}
	}
	panic("no KEDA HPA in the store")
}

// An HPA is KEDA's when a ScaledObject owns it or it reads External metrics and no Pods or Object
// one: the doctor then walks the KEDA path though it read no ScaledObject.
func TestKEDAMade(t *testing.T) {
	external := autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "s0-prometheus"}}}
	pods := autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "avg_requests"}}}
	object := autoscalingv2.MetricSpec{Type: autoscalingv2.ObjectMetricSourceType}
	cpu := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType}
	owned := []metav1.OwnerReference{{Kind: "ScaledObject", Name: "anyroute"}}
	for _, c := range []struct {
		name    string
		metrics []autoscalingv2.MetricSpec
		owners  []metav1.OwnerReference
		want    bool
	}{
		{"External", []autoscalingv2.MetricSpec{external}, nil, true},
		{"External and cpu", []autoscalingv2.MetricSpec{external, cpu}, nil, true},
		{"Pods", []autoscalingv2.MetricSpec{pods}, nil, false},
		{"Object", []autoscalingv2.MetricSpec{object}, nil, false},
		{"Pods and External", []autoscalingv2.MetricSpec{pods, external}, nil, false},
		{"cpu only", []autoscalingv2.MetricSpec{cpu}, nil, false},
		{"owned by a ScaledObject", []autoscalingv2.MetricSpec{cpu}, owned, true},
	} {
		h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{OwnerReferences: c.owners},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{Metrics: c.metrics}}
		if got := kedaMade(h); got != c.want {
			t.Errorf("%s: kedaMade %v, want %v", c.name, got, c.want)
		}
	}
}
