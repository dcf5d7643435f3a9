//go:build external

package test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/test/kit"
	"github.com/anyroute/anyroute/transport/load/stages"
)

// The chart is rendered with the real helm binary that scripts/tools.sh builds, for the Kubernetes
// version the end-to-end test runs (TestHelmKnowsItsKubernetes shows it renders without one too).
const (
	helmKubeVersion = "1.37.2"
	demoValues      = helmDir + "/values-demo.yaml"
	testNamespace   = "demo"
)

// helmCase is one value set the chart is rendered with, and what must hold of the result beyond
// the checks every rendering gets.
type helmCase struct {
	name    string
	release string
	args    []string // helm template flags: -f FILE, --set K=V
	check   func(t *testing.T, r *rendered)
}

// TestHelmChartRenders renders the chart for several value sets, decodes every manifest strictly
// into the Kubernetes API types and checks the server Deployment, its config, the HPA, the PDB,
// the siege load generator and the monitors.
func TestHelmChartRenders(t *testing.T) {
	fullConfig := fullConfigValues(t)
	cases := []helmCase{
		{name: "default", release: "anyroute", check: func(t *testing.T, r *rendered) {
			r.wantKinds(t, "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
			checkHPA(t, r, hpaWant{min: 1, max: 10, target: "10", upWindow: 0, downWindow: 300})
			checkScrapeAnnotations(t, r, true)
			checkGracePeriod(t, r, 20) // drain_delay 5s + grace 10s + the 5s margin
			checkTLSMount(t, r, "")
			if r.config.HTTP.TLS != nil {
				t.Errorf("http.tls set without tls.enabled: %+v", r.config.HTTP.TLS)
			}
		}},
		{name: "tls", release: "anyroute", args: []string{"--set", "tls.enabled=true,tls.secretName=anyroute-tls"}, check: func(t *testing.T, r *rendered) {
			checkTLSMount(t, r, "anyroute-tls")
			want := config.TLS{CertFile: "/etc/anyroute-tls/tls.crt", KeyFile: "/etc/anyroute-tls/tls.key"}
			if got := r.config.HTTP.TLS; got == nil || *got != want {
				t.Errorf("http.tls %+v, want %+v", got, want)
			}
			checkScrapeAnnotations(t, r, true) // the admin port, plain
		}},
		{name: "mtls with siege", release: "anyroute", args: []string{"-f", demoValues, "--set",
			"tls.enabled=true,tls.secretName=anyroute-tls,tls.clientAuth=optional,config.http.addr=:9000"},
			check: func(t *testing.T, r *rendered) {
				checkTLSMount(t, r, "anyroute-tls")
				want := config.TLS{CertFile: "/etc/anyroute-tls/tls.crt", KeyFile: "/etc/anyroute-tls/tls.key",
					ClientCAFile: "/etc/anyroute-tls/ca.crt", ClientAuth: "optional"}
				if got := r.config.HTTP.TLS; got == nil || *got != want {
					t.Errorf("http.tls %+v, want %+v", got, want)
				}
				if r.config.HTTP.Addr != ":9000" || len(r.config.Routes) == 0 {
					t.Errorf("the rest of config.http or the routes lost beside http.tls: %+v", r.config.HTTP)
				}
				checkSiege(t, r, []string{"/api/hello", "/orders/42", "/slow/report"}, "10", "1")
			}},
		{name: "long shutdown", release: "anyroute", args: []string{"--set",
			"config.shutdown.drain_delay=2.5s,config.shutdown.grace=1m,config.shutdown.metrics_linger=15s"},
			check: func(t *testing.T, r *rendered) {
				checkGracePeriod(t, r, 83) // ceil(2.5s + 60s + 15s) + 5
			}},
		{name: "demo", release: "anyroute", args: []string{"-f", demoValues}, check: func(t *testing.T, r *rendered) {
			r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
			checkHPA(t, r, hpaWant{min: 1, max: 5, target: "5", upWindow: 0, downWindow: 30})
			checkSiege(t, r, []string{"/api/hello", "/orders/42", "/slow/report"}, "10", "1")
			if routes := r.config.Routes; len(routes) == 0 {
				t.Error("demo config.json has no routes")
			}
		}},
		{name: "siege off", release: "anyroute", args: []string{"-f", demoValues, "--set", "siege.enabled=false"}, check: func(t *testing.T, r *rendered) {
			r.wantKinds(t, "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
			checkHPA(t, r, hpaWant{min: 1, max: 5, target: "5", upWindow: 0, downWindow: 30})
		}},
		{name: "load anyroute", release: "web", args: []string{"--set", "load.enabled=true,metrics.podMonitor.enabled=true,metrics.scrapeAnnotations=true"},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "PodMonitor", "PodMonitor", "Service", "ServiceAccount")
				if r.siege != nil {
					t.Error("load.tool anyroute also rendered the siege Deployment")
				}
				checkLoad(t, r, []string{"/"}, stages.List{{Duration: stages.Duration(time.Minute), TargetRate: 20},
					{Duration: stages.Duration(3 * time.Minute), TargetRate: 20}, {Duration: stages.Duration(time.Minute), TargetRate: 0}})
			}},
		{name: "load stages from values", release: "anyroute", args: []string{"-f", demoValues, "--set", "siege.enabled=false,load.enabled=true,metrics.scrapeAnnotations=false",
			"--set-json", `load.stages=[{"duration":"30s","target_rate":500},{"duration":"0s","target_rate":50},{"duration":"1m","target_rate":50}]`,
			"--set-json", `load.paths=["/api/a","/slow/b"]`},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
				checkLoad(t, r, []string{"/api/a", "/slow/b"}, stages.List{{Duration: stages.Duration(30 * time.Second), TargetRate: 500},
					{Duration: 0, TargetRate: 50}, {Duration: stages.Duration(time.Minute), TargetRate: 50}})
			}},
		{name: "demo as an experiment", release: "anyroute", args: []string{"-f", demoValues, "-f", helmDir + "/values-demo-load.yaml"},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
				if r.siege != nil {
					t.Error("values-demo-load.yaml left siege on beside the anyroute load")
				}
				checkHPA(t, r, hpaWant{min: 1, max: 5, target: "5", upWindow: 0, downWindow: 30})
				checkLoad(t, r, []string{"/api/hello", "/orders/42", "/slow/report"}, stages.List{{Duration: stages.Duration(10 * time.Second), TargetRate: 25},
					{Duration: stages.Duration(time.Minute), TargetRate: 25}, {Duration: 0, TargetRate: 0}})
			}},
		{name: "load siege", release: "anyroute", args: []string{"--set", "load.enabled=true,load.tool=siege", "--set-json", `siege.paths=["/x"]`},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
				if r.load != nil {
					t.Error("load.tool siege also rendered anyroute load")
				}
				checkSiege(t, r, []string{"/x"}, "5", "1")
			}},
		{name: "hpa off", release: "anyroute", args: []string{"--set", "hpa.enabled=false,replicaCount=3"}, check: func(t *testing.T, r *rendered) {
			r.wantKinds(t, "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount")
			if got := r.server.Spec.Replicas; got == nil || *got != 3 {
				t.Errorf("without the HPA the Deployment must set replicas 3, got %v", got)
			}
			checkPDB(t, r)
		}},
		{name: "cpu only", release: "anyroute", args: []string{"--set", "hpa.metric.enabled=false", "--set-json",
			`hpa.extraMetrics=[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}}]`},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Service", "ServiceAccount")
				// The request-rate metric gone: an HPA with a metric nobody serves never scales down.
				ms := r.hpa(t).Spec.Metrics
				if len(ms) != 1 || ms[0].Type != autoscalingv2.ResourceMetricSourceType || ms[0].Resource == nil ||
					ms[0].Resource.Name != corev1.ResourceCPU || ms[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType ||
					!ptrIs32(ms[0].Resource.Target.AverageUtilization, 50) {
					t.Errorf("metrics %+v, want only a Resource cpu Utilization 50%%", ms)
				}
				if r.server.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().IsZero() {
					t.Error("a cpu Utilization target needs the pods' cpu request")
				}
			}},
		{name: "pdb on", release: "anyroute", args: []string{"-f", demoValues, "--set", "hpa.minReplicas=2"}, check: func(t *testing.T, r *rendered) {
			r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount")
			checkHPA(t, r, hpaWant{min: 2, max: 5, target: "5", upWindow: 0, downWindow: 30})
			checkPDB(t, r)
		}},
		{name: "monitors", release: "web", args: []string{"--set",
			"metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true,metrics.scrapeAnnotations=false"},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodMonitor", "Service", "ServiceAccount", "ServiceMonitor")
				checkMonitors(t, r)
				checkScrapeAnnotations(t, r, false)
			}},
		{name: "reload by restart", release: "anyroute", args: []string{"-f", demoValues, "--set", "configReload=restart"}, check: func(t *testing.T, r *rendered) {}},
		{name: "dashboard and alerts", release: "web", args: []string{"--set", "dashboards.enabled=true,prometheusRule.enabled=true"},
			check: func(t *testing.T, r *rendered) {
				r.wantKinds(t, "ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PrometheusRule", "Service", "ServiceAccount")
				checkDashboardConfigMap(t, r, map[string]string{"grafana_dashboard": "1"}, nil)
				checkPrometheusRule(t, r, nil)
			}},
		{name: "dashboard for another sidecar", release: "anyroute", args: []string{"--set-json",
			`dashboards={"enabled": true, "labels": {"dashboards": "grafana"}, "annotations": {"grafana_folder": "anyroute"}}`,
			"--set-json", `prometheusRule={"enabled": true, "labels": {"release": "kube-prometheus-stack"}}`},
			check: func(t *testing.T, r *rendered) {
				checkDashboardConfigMap(t, r, map[string]string{"dashboards": "grafana"}, map[string]string{"grafana_folder": "anyroute"})
				checkPrometheusRule(t, r, map[string]string{"release": "kube-prometheus-stack"})
			}},
		{name: "full config", release: "anyroute", args: []string{"-f", fullConfig, "--set", "terminationGracePeriodSeconds=60"}, check: func(t *testing.T, r *rendered) {
			want := readJSONFile(t, "../config/examples/full.json")
			if got := parseJSON(t, r.configJSON); !reflect.DeepEqual(got, want) {
				t.Errorf("config.json differs from config/examples/full.json given as values:\n%s", r.configJSON)
			}
			checkGracePeriod(t, r, 60) // as given
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := renderChart(t, c.release, c.args...)
			checkLabelsAndNamespace(t, r)
			checkServer(t, r)
			checkConfig(t, r)
			checkService(t, r)
			c.check(t, r)
		})
	}
}

// TestHelmValuesSchemaRejects shows that values.schema.json (and the chart's own guards) stop a
// bad value at render time, with helm's message naming the key.
func TestHelmValuesSchemaRejects(t *testing.T) {
	schemaErr := "values don't meet the specifications of the schema(s) in the following chart(s)"
	cases := []struct {
		name   string
		values string
		want   []string
	}{
		{"maxReplicas not a number", "hpa:\n  maxReplicas: \"ten\"\n",
			[]string{schemaErr, "at '/hpa/maxReplicas': got string, want integer"}},
		{"misspelt key", "hpa:\n  maxReplica: 3\n",
			[]string{schemaErr, "at '/hpa': additional properties 'maxReplica' not allowed"}},
		{"unknown policy type", "hpa:\n  behavior:\n    scaleUp:\n      policies: [{type: Seconds, value: 1, periodSeconds: 15}]\n",
			[]string{schemaErr, "/hpa/behavior/scaleUp/policies/0/type"}},
		{"config duration", "config:\n  shutdown:\n    grace: soon\n",
			[]string{schemaErr, "/config/shutdown/grace"}},
		{"config unknown key", "config:\n  routes:\n    - {name: a, match: /a, colour: red}\n",
			[]string{schemaErr, "at '/config/routes/0': additional properties 'colour' not allowed"}},
		{"siege url", "siege:\n  enabled: true\n  urls: [\"ftp://x\"]\n",
			[]string{schemaErr, "/siege/urls/0"}},
		{"load tool", "load:\n  enabled: true\n  tool: wrk\n",
			[]string{schemaErr, "/load/tool"}},
		{"load rate above the cap", "load:\n  enabled: true\n  stages: [{duration: 1m, target_rate: 50000}]\n",
			[]string{schemaErr, "/load/stages/0/target_rate"}},
		{"load stage without a unit", "load:\n  enabled: true\n  stages: [{duration: \"30\", target_rate: 5}]\n",
			[]string{schemaErr, "/load/stages/0/duration"}},
		{"load stage misspelt", "load:\n  enabled: true\n  stages: [{duration: 1m, rate: 5}]\n",
			[]string{schemaErr, "/load/stages/0"}},
		{"grace period too short", "terminationGracePeriodSeconds: 12\n",
			[]string{"terminationGracePeriodSeconds (12) must exceed config.shutdown drain_delay + grace + metrics_linger (15s)"}},
		{"min above max", "hpa:\n  minReplicas: 6\n  maxReplicas: 5\n",
			[]string{"hpa.minReplicas (6) must not exceed hpa.maxReplicas (5)"}},
		{"hpa without a metric", "hpa:\n  metric:\n    enabled: false\n",
			[]string{"hpa.metric.enabled=false leaves the HPA no metric: give one in hpa.extraMetrics"}},
		{"keda without the rate", "hpa:\n  enabled: false\n  metric:\n    enabled: false\nkeda:\n  enabled: true\n",
			[]string{"keda.enabled=true needs hpa.metric.enabled=true"}},
		{"availability as a percentage", "prometheusRule:\n  availability: 99.9\n",
			[]string{schemaErr, "at '/prometheusRule/availability'"}},
		{"dashboard without a sidecar label", "dashboards:\n  enabled: true\n  labels:\n    grafana_dashboard: null\n",
			[]string{schemaErr, "at '/dashboards/labels'"}},
		{"tls without a Secret", "tls:\n  enabled: true\n",
			[]string{schemaErr, "at '/tls/secretName'"}},
		{"tls client auth unknown", "tls:\n  clientAuth: always\n",
			[]string{schemaErr, "at '/tls/clientAuth'"}},
		{"memory limit ratio above 1", "memoryLimitRatio: 1.5\n",
			[]string{schemaErr, "at '/memoryLimitRatio'"}},
		{"latency bound not a bucket", "config:\n  metrics:\n    buckets: [0.1, 1, 10]\nprometheusRule:\n  enabled: true\n",
			[]string{"prometheusRule.latency.bound (0.5) must be one of config.metrics.buckets ([0.1 1 10])"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "values.yaml")
			if err := os.WriteFile(file, []byte(c.values), 0o600); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, err := runHelm(t, templateArgs("anyroute", "-f", file)...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("helm template accepted %q (err %v):\n%s", c.values, err, stdout)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("helm's error lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// adapterRule mirrors DiscoveryRule of sigs.k8s.io/prometheus-adapter v0.12.0 (pkg/config), whose
// loader also decodes strictly: a field it does not know fails the adapter at start.
type adapterRule struct {
	SeriesQuery   string              `json:"seriesQuery"`
	SeriesFilters []map[string]string `json:"seriesFilters,omitempty"`
	Resources     struct {
		Template  string `json:"template,omitempty"`
		Overrides map[string]struct {
			Group    string `json:"group,omitempty"`
			Resource string `json:"resource"`
		} `json:"overrides,omitempty"`
		Namespaced *bool `json:"namespaced,omitempty"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery,omitempty"`
}

// TestHelmAdapterRulesAgree checks that the adapter chart's values and the plain adapter config
// (which the end-to-end test feeds to a real prometheus-adapter) hold the same rule, and that the
// rule reads the service's counter under today's pod labels and serves the metric the HPA asks for.
func TestHelmAdapterRulesAgree(t *testing.T) {
	var plain struct {
		Rules []adapterRule `json:"rules"`
	}
	readStrictYAML(t, helmDir+"/prometheus-adapter-rules.yaml", &plain)

	var chartValues struct {
		Prometheus struct {
			URL  string `json:"url"`
			Port int    `json:"port"`
			Path string `json:"path"`
		} `json:"prometheus"`
		MetricsRelistInterval string `json:"metricsRelistInterval"`
		Rules                 struct {
			Default bool          `json:"default"`
			Custom  []adapterRule `json:"custom"`
		} `json:"rules"`
	}
	readStrictYAML(t, helmDir+"/prometheus-adapter-values.yaml", &chartValues)

	if !reflect.DeepEqual(plain.Rules, chartValues.Rules.Custom) {
		t.Fatalf("prometheus-adapter-rules.yaml and prometheus-adapter-values.yaml (rules.custom) disagree:\n%+v\n%+v",
			plain.Rules, chartValues.Rules.Custom)
	}
	if chartValues.Rules.Default {
		t.Error("prometheus-adapter-values.yaml: rules.default must be false (only our rule)")
	}
	if chartValues.Prometheus.URL == "" || chartValues.Prometheus.Port == 0 {
		t.Error("prometheus-adapter-values.yaml: prometheus.url and prometheus.port must be set")
	}
	if len(plain.Rules) != 1 {
		t.Fatalf("want exactly one adapter rule, got %d", len(plain.Rules))
	}
	rule := plain.Rules[0]

	// The series: the service's request counter under its default metric namespace.
	counter := config.Default().Metrics.Namespace + "_requests_total"
	if want := counter + `{namespace!="",pod!=""}`; rule.SeriesQuery != want {
		t.Errorf("seriesQuery = %q, want %q", rule.SeriesQuery, want)
	}
	if ok, err := regexp.MatchString(rule.Name.Matches, counter); err != nil || !ok {
		t.Errorf("name.matches %q does not match %s (%v)", rule.Name.Matches, counter, err)
	}
	// The labels: the prometheus-community prometheus chart's kubernetes-pods job writes namespace
	// and pod (the original's kubernetes_namespace is gone).
	for label, res := range map[string]string{"namespace": "namespace", "pod": "pod"} {
		if o, ok := rule.Resources.Overrides[label]; !ok || o.Resource != res || o.Group != "" {
			t.Errorf("resources.overrides[%s] = %+v, want resource %q", label, o, res)
		}
	}
	if len(rule.Resources.Overrides) != 2 {
		t.Errorf("resources.overrides = %+v, want only namespace and pod", rule.Resources.Overrides)
	}
	// The metric: what the chart's HPA asks for, in both value sets.
	for _, args := range [][]string{nil, {"-f", demoValues}} {
		r := renderChart(t, "anyroute", args...)
		if got := r.hpa(t).Spec.Metrics[0].Pods.Metric.Name; got != rule.Name.As {
			t.Errorf("HPA (values %v) asks for %q, the adapter serves %q", args, got, rule.Name.As)
		}
	}
	// The query, expanded the way the adapter expands it (text/template with << >>).
	tmpl, err := template.New("q").Delims("<<", ">>").Parse(rule.MetricsQuery)
	if err != nil {
		t.Fatalf("metricsQuery: %v", err)
	}
	var q strings.Builder
	err = tmpl.Execute(&q, map[string]string{
		"Series":        counter,
		"LabelMatchers": `namespace="demo",pod=~"anyroute-a|anyroute-b"`,
		"GroupBy":       "pod",
	})
	if err != nil {
		t.Fatalf("metricsQuery: %v", err)
	}
	want := `sum(rate(app_requests_total{namespace="demo",pod=~"anyroute-a|anyroute-b"}[2m])) by (pod)`
	if q.String() != want {
		t.Errorf("metricsQuery expands to\n  %s\nwant\n  %s", q.String(), want)
	}
}

// TestHelmNotes renders NOTES.txt (helm template skips it, and helm install --dry-run wants a
// cluster) through a copy of the chart, and checks it tells how to watch the HPA and stop the load,
// and where the dashboard and the alerts went.
func TestHelmNotes(t *testing.T) {
	text := renderNotes(t, "dashboards.enabled=true,prometheusRule.enabled=true")
	for _, want := range []string{
		"kubectl -n demo get hpa anyroute -w",
		`kubectl get --raw "/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/pods/*/avg_requests"`,
		"kubectl -n demo scale deploy/anyroute-siege --replicas=0",
		"http://anyroute.demo.svc:8080/api/hello",
		"anyroute doctor -namespace demo -release anyroute",
		"the ConfigMap anyroute-dashboard in namespace demo carries\nthe anyroute dashboard for the Grafana sidecar (labels grafana_dashboard=1)",
		"kubectl -n demo get prometheusrule anyroute",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, text)
		}
	}
}

// TestHelmNotesCPUOnly: an HPA on a cpu metric alone points at metrics-server (kubectl top, its
// APIService), not at the custom metric and the adapter it does not use.
func TestHelmNotesCPUOnly(t *testing.T) {
	text := renderNotes(t, "hpa.metric.enabled=false,hpa.extraMetrics[0].type=Resource,hpa.extraMetrics[0].resource.name=cpu,"+
		"hpa.extraMetrics[0].resource.target.type=Utilization,hpa.extraMetrics[0].resource.target.averageUtilization=50")
	for _, want := range []string{"kubectl -n demo get hpa anyroute -w", "kubectl -n demo top pods", "kubectl get apiservice v1beta1.metrics.k8s.io"} {
		if !strings.Contains(text, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "custom.metrics.k8s.io") {
		t.Errorf("NOTES.txt of a cpu-only HPA sends the user to the custom metric:\n%s", text)
	}
}

// TestHelmNotesLoad: with load.tool anyroute the notes give the stages, the URLs and how to follow
// and stop the load; with neither generator they say how to turn one on.
func TestHelmNotesLoad(t *testing.T) {
	text := renderNotes(t, "siege.enabled=false,load.enabled=true")
	for _, want := range []string{
		"Load: anyroute load (anyroute-load, 1 replica(s))",
		"1m to 20 requests/s\n  3m to 20 requests/s\n  1m to 0 requests/s",
		"http://anyroute.demo.svc:8080/",
		"kubectl -n demo logs -f deploy/anyroute-load",
		"kubectl -n demo scale deploy/anyroute-load --replicas=0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "siege") {
		t.Errorf("NOTES.txt with anyroute load speaks of siege:\n%s", text)
	}
	if text := renderNotes(t, "siege.enabled=false"); !strings.Contains(text, "No load generator: install with --set load.enabled=true") {
		t.Errorf("NOTES.txt without a load generator does not say how to turn one on:\n%s", text)
	}
}

// TestHelmNotesNativeHistograms: with config.metrics.native_histograms the notes say what each
// Prometheus major needs to store them (2.x a feature flag, 3.x a scrape setting, the flag a no-op
// since 3.9) and how to keep the classic buckets; without, they say nothing of it.
func TestHelmNotesNativeHistograms(t *testing.T) {
	text := renderNotes(t, "config.metrics.native_histograms=true")
	for _, want := range []string{
		"2.x with --enable-feature=native-histograms",
		"3.x with scrape_native_histograms: true",
		"since 3.9 the feature flag does nothing",
		"always_scrape_classic_histograms: true (3.x; scrape_classic_histograms on 2.45+)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("NOTES.txt with native histograms lacks %q:\n%s", want, text)
		}
	}
	if text := renderNotes(t, "config.metrics.native_histograms=false"); strings.Contains(text, "native") {
		t.Errorf("NOTES.txt without native histograms speaks of them:\n%s", text)
	}
}

// renderNotes renders NOTES.txt with the demo values and the given --set, through a copy of the
// chart whose extra template prints it into a ConfigMap.
func renderNotes(t *testing.T, set string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "anyroute")
	copyTree(t, chartDir, dir)
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	probe := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n" +
		"  notes: {{ tpl (.Files.Get \"notes.txt\") . | quote }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runHelm(t, "template", "anyroute", dir, "--kube-version", helmKubeVersion,
		"-n", testNamespace, "-f", demoValues, "--set", set,
		"--show-only", "templates/zz-notes.yaml")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(stdout), &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data["notes"]
}

// TestHelmKnowsItsKubernetes: the helm scripts/tools.sh builds is v3.22.0 and, as helm's own
// release builds do, assumes the Kubernetes version of the client-go it was built with (1.37 for
// v3.22.0) rather than its fallback 1.20, which the chart's kubeVersion refuses: the chart renders
// and lints without --kube-version.
func TestHelmKnowsItsKubernetes(t *testing.T) {
	const rebuild = "rebuild it with helm's version ldflags: rm .tools/stamps/helm-*; scripts/tools.sh helm"
	stdout, _, err := runHelm(t, "version", "--template", "{{.Version}}")
	if err != nil || stdout != "v3.22.0" {
		t.Fatalf("helm version: %q %v, want v3.22.0", stdout, err)
	}

	// The version helm assumes, printed by a template added to a copy of the chart.
	dir := filepath.Join(t.TempDir(), "anyroute")
	copyTree(t, chartDir, dir)
	probe := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-version\ndata:\n" +
		"  version: {{ .Capabilities.KubeVersion.Version | quote }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-kube-version.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = runHelm(t, "template", "anyroute", dir, "-n", testNamespace, "--show-only", "templates/zz-kube-version.yaml")
	if err != nil {
		t.Fatalf("helm template without --kube-version: %v\n%s", err, rebuild)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(stdout), &cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["version"]; got != "v1.37.0" {
		t.Fatalf("helm assumes Kubernetes %s, want v1.37.0 (its client-go's): %s", got, rebuild)
	}

	for _, args := range [][]string{
		{"template", "anyroute", chartDir, "-n", testNamespace},
		{"template", "anyroute", chartDir, "-n", testNamespace, "-f", demoValues},
		{"lint", "--strict", chartDir},
		{"lint", "--strict", chartDir, "-f", demoValues},
	} {
		if _, _, err := runHelm(t, args...); err != nil {
			t.Errorf("helm %s without --kube-version: %v", strings.Join(args, " "), err)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Rendering and strict decoding.

// rendered is one `helm template` output, every document decoded into its API type.
type rendered struct {
	release, fullname string
	args              []string // helm template's value arguments
	objects           []metav1.Object
	kinds             []string

	serviceAccounts []*corev1.ServiceAccount
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	deployments     []*appsv1.Deployment
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*monitoringv1.ServiceMonitor
	podMonitors     []*monitoringv1.PodMonitor
	scaledObjects   []*unstructured.Unstructured // checked against KEDA's CRD (helm_keda_test.go)
	prometheusRules []*monitoringv1.PrometheusRule

	server     *appsv1.Deployment // the anyroute Deployment
	siege      *appsv1.Deployment // the siege load generator, when rendered
	load       *appsv1.Deployment // the anyroute load generator, when rendered
	configJSON string
	config     config.Config
}

// runHelm runs the helm binary scripts/tools.sh builds, with its state in a temporary folder and
// no cluster to talk to. A missing helm fails the test: skipping would hide a chart nobody rendered.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, home := kit.ProjectTool(t, "helm"), t.TempDir()
	r, err := kit.Run(context.Background(), kit.Cmd{Path: bin, Args: args, Env: []string{
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
	}})
	return r.Stdout, r.Stderr, err
}

func templateArgs(release string, args ...string) []string {
	return append([]string{"template", release, chartDir, "--kube-version", helmKubeVersion, "-n", testNamespace}, args...)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// renderChart runs `helm template` and decodes every document strictly: a field the API type does not
// know is an error, as it would be for `kubectl apply --validate=strict`.
func renderChart(t *testing.T, release string, args ...string) *rendered {
	t.Helper()
	stdout, stderr, err := runHelm(t, templateArgs(release, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, stderr)
	}
	r := &rendered{release: release, fullname: release, args: args}
	if !strings.Contains(release, "anyroute") {
		r.fullname = release + "-anyroute"
	}
	for _, doc := range docSeparator.Split(stdout, -1) {
		if isBlankYAML(doc) {
			continue
		}
		if err := r.add([]byte(doc)); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
	}
	slices.Sort(r.kinds)
	for _, d := range r.deployments {
		switch d.Name {
		case r.fullname:
			r.server = d
		case r.fullname + "-siege":
			r.siege = d
		case r.fullname + "-load":
			r.load = d
		default:
			t.Fatalf("unexpected Deployment %q", d.Name)
		}
	}
	if r.server == nil {
		t.Fatalf("no Deployment %q rendered", r.fullname)
	}
	return r
}

func isBlankYAML(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
			return false
		}
	}
	return true
}

func (r *rendered) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	var err error
	switch gvk := tm.APIVersion + ", Kind=" + tm.Kind; gvk {
	case "v1, Kind=ServiceAccount":
		err = decodeInto(r, &r.serviceAccounts, doc)
	case "v1, Kind=ConfigMap":
		err = decodeInto(r, &r.configMaps, doc)
	case "v1, Kind=Service":
		err = decodeInto(r, &r.services, doc)
	case "apps/v1, Kind=Deployment":
		err = decodeInto(r, &r.deployments, doc)
	case "autoscaling/v2, Kind=HorizontalPodAutoscaler":
		err = decodeInto(r, &r.hpas, doc)
	case "policy/v1, Kind=PodDisruptionBudget":
		err = decodeInto(r, &r.pdbs, doc)
	case "monitoring.coreos.com/v1, Kind=ServiceMonitor":
		err = decodeInto(r, &r.serviceMonitors, doc)
	case "monitoring.coreos.com/v1, Kind=PodMonitor":
		err = decodeInto(r, &r.podMonitors, doc)
	case "keda.sh/v1alpha1, Kind=ScaledObject":
		var so *unstructured.Unstructured
		if so, err = validateScaledObject(doc); err == nil {
			r.scaledObjects = append(r.scaledObjects, so)
			r.objects = append(r.objects, so)
		}
	case "monitoring.coreos.com/v1, Kind=PrometheusRule":
		err = decodeInto(r, &r.prometheusRules, doc)
	default:
		return fmt.Errorf("rendered %s: add its API type to the decoder", gvk)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	r.kinds = append(r.kinds, tm.Kind)
	return nil
}

// decodeInto decodes doc strictly (unknown and duplicate fields are errors) and appends it.
func decodeInto[T any, PT interface {
	*T
	metav1.Object
}](r *rendered, list *[]PT, doc []byte) error {
	obj := PT(new(T))
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	r.objects = append(r.objects, obj)
	return nil
}

func (r *rendered) wantKinds(t *testing.T, kinds ...string) {
	t.Helper()
	if !slices.Equal(r.kinds, kinds) {
		t.Errorf("rendered kinds %v, want %v", r.kinds, kinds)
	}
}

// configMap returns the ConfigMap of that name, failing the test when there is none; a ConfigMap
// other than the config and the dashboard is an error.
func (r *rendered) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	var found *corev1.ConfigMap
	for _, cm := range r.configMaps {
		switch cm.Name {
		case name:
			found = cm
		case r.fullname, r.fullname + "-dashboard":
		default:
			t.Errorf("unexpected ConfigMap %q", cm.Name)
		}
	}
	if found == nil {
		t.Fatalf("no ConfigMap %q rendered", name)
	}
	return found
}

func (r *rendered) hpa(t *testing.T) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	if len(r.hpas) != 1 {
		t.Fatalf("want one HorizontalPodAutoscaler, got %d", len(r.hpas))
	}
	return r.hpas[0]
}

func readStrictYAML(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// fullConfigValues writes a values file whose config block is config/examples/full.json (JSON is
// YAML), so the whole config schema passes through values.schema.json and toPrettyJson.
func fullConfigValues(t *testing.T) string {
	t.Helper()
	full, err := os.ReadFile("../config/examples/full.json")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "full-config.yaml")
	if err := os.WriteFile(file, append([]byte(`{"config": `), append(full, '}')...), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------------
// Checks.

func serverSelector(r *rendered) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "anyroute",
		"app.kubernetes.io/instance":  r.release,
		"app.kubernetes.io/component": "server",
	}
}

// selectorMatches reports whether a matchLabels selector picks a pod with these labels.
func selectorMatches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkLabelsAndNamespace(t *testing.T, r *rendered) {
	for _, o := range r.objects {
		if o.GetNamespace() != testNamespace {
			t.Errorf("%s: namespace %q, want the release's %q", o.GetName(), o.GetNamespace(), testNamespace)
		}
		for _, k := range []string{"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
			"app.kubernetes.io/version", "app.kubernetes.io/managed-by"} {
			if o.GetLabels()[k] == "" {
				t.Errorf("%s: label %s missing", o.GetName(), k)
			}
		}
	}
}

// checkServer asserts the anyroute Deployment: selector, image, args, ports, env, probes,
// resources, security contexts and the config volume.
func checkServer(t *testing.T, r *rendered) {
	d := r.server
	sel := serverSelector(r)
	if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, sel) {
		t.Errorf("Deployment selector %v, want %v", d.Spec.Selector.MatchLabels, sel)
	}
	pod := d.Spec.Template
	if !selectorMatches(sel, pod.Labels) {
		t.Errorf("pod labels %v do not match the selector %v", pod.Labels, sel)
	}
	if r.siege != nil && selectorMatches(sel, r.siege.Spec.Template.Labels) {
		t.Error("the server selector also picks the siege pods")
	}
	if r.siege != nil && selectorMatches(r.siege.Spec.Selector.MatchLabels, pod.Labels) {
		t.Error("the siege selector also picks the server pods")
	}
	if r.load != nil && (selectorMatches(sel, r.load.Spec.Template.Labels) || selectorMatches(r.load.Spec.Selector.MatchLabels, pod.Labels)) {
		t.Error("the server and load selectors pick each other's pods")
	}
	if r.hpas != nil && d.Spec.Replicas != nil {
		t.Errorf("with the HPA on, the Deployment must leave replicas to it, got %d", *d.Spec.Replicas)
	}

	spec := pod.Spec
	if spec.ServiceAccountName != r.fullname || len(r.serviceAccounts) != 1 || r.serviceAccounts[0].Name != r.fullname {
		t.Errorf("serviceAccountName %q, want the chart's ServiceAccount %q", spec.ServiceAccountName, r.fullname)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken must be false: anyroute never calls the API")
	}
	checkPodSecurity(t, "server", spec.SecurityContext, 65532)
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if want := "anyroute:" + appVersion(t); c.Image != want || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q (%s), want %q (IfNotPresent)", c.Image, c.ImagePullPolicy, want)
	}
	wantArgs := []string{"-config=/etc/anyroute/config.json", "-http.addr=:8080", "-admin.addr=:8081"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %v, want %v", c.Args, wantArgs)
	}
	wantPorts := []corev1.ContainerPort{
		{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "admin", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
	}
	if !reflect.DeepEqual(c.Ports, wantPorts) {
		t.Errorf("ports %+v, want %+v", c.Ports, wantPorts)
	}
	checkDownwardEnv(t, c.Env)
	checkProbe(t, "liveness", c.LivenessProbe, "/healthz")
	checkProbe(t, "readiness", c.ReadinessProbe, "/readyz")
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[name]; !ok || q.IsZero() {
			t.Errorf("resources.requests.%s missing: the HPA and the scheduler need requests", name)
		}
	}
	checkContainerSecurity(t, "server", c.SecurityContext, 65532)

	// The config first; the TLS Secret's mount, when tls.enabled, is checkTLSMount's.
	if len(c.VolumeMounts) < 1 || c.VolumeMounts[0].MountPath != "/etc/anyroute" || !c.VolumeMounts[0].ReadOnly {
		t.Errorf("volumeMounts %+v, want the config read-only at /etc/anyroute", c.VolumeMounts)
	}
	if len(spec.Volumes) < 1 || spec.Volumes[0].ConfigMap == nil ||
		spec.Volumes[0].ConfigMap.Name != r.fullname || spec.Volumes[0].Name != c.VolumeMounts[0].Name {
		t.Errorf("volumes %+v, want the ConfigMap %q", spec.Volumes, r.fullname)
	}
}

// checkTLSMount checks the TLS Secret's volume: mounted read-only at /etc/anyroute-tls when
// secret is set, absent (the config's the only volume) when it is "".
func checkTLSMount(t *testing.T, r *rendered, secret string) {
	t.Helper()
	spec := r.server.Spec.Template.Spec
	mounts, volumes := spec.Containers[0].VolumeMounts, spec.Volumes
	if secret == "" {
		if len(mounts) != 1 || len(volumes) != 1 {
			t.Errorf("without tls.enabled: volumes %+v, mounts %+v, want the config's alone", volumes, mounts)
		}
		return
	}
	if len(mounts) != 2 || mounts[1].Name != "tls" || mounts[1].MountPath != "/etc/anyroute-tls" || !mounts[1].ReadOnly {
		t.Errorf("volumeMounts %+v, want the Secret read-only at /etc/anyroute-tls", mounts)
	}
	if len(volumes) != 2 || volumes[1].Name != "tls" || volumes[1].Secret == nil || volumes[1].Secret.SecretName != secret {
		t.Errorf("volumes %+v, want the Secret %q", volumes, secret)
	}
}

// TestHelmMemoryLimitRatio: the server gets memoryLimitRatio as ANYROUTE_MEMORY_LIMIT_RATIO, which
// it takes as the share of the cgroup's memory limit to set as GOMEMLIMIT (0.9 by default, 0 off),
// beside a memory limit in resources for it to read.
func TestHelmMemoryLimitRatio(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "0.9"},
		{[]string{"--set", "memoryLimitRatio=0"}, "0"},
		{[]string{"--set-json", "memoryLimitRatio=0.75"}, "0.75"},
	} {
		r := renderChart(t, "anyroute", tc.args...)
		c := r.server.Spec.Template.Spec.Containers[0]
		got, found := "", false
		for _, e := range c.Env {
			if e.Name == "ANYROUTE_MEMORY_LIMIT_RATIO" {
				got, found = e.Value, true
			}
		}
		if !found || got != tc.want {
			t.Errorf("%v: ANYROUTE_MEMORY_LIMIT_RATIO %q (set: %v), want %q", tc.args, got, found, tc.want)
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
			t.Errorf("%v: no memory limit for the ratio to apply to", tc.args)
		}
	}
}

func checkDownwardEnv(t *testing.T, env []corev1.EnvVar) {
	t.Helper()
	want := map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
	for _, e := range env {
		path, ok := want[e.Name]
		if !ok {
			continue
		}
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			t.Errorf("env %s = %+v, want the downward API's %s", e.Name, e, path)
		}
		delete(want, e.Name)
	}
	for name := range want {
		t.Errorf("env %s missing", name)
	}
}

func checkProbe(t *testing.T, which string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want an HTTP GET, got %+v", which, p)
		return
	}
	if p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("admin") {
		t.Errorf("%s probe GETs %s on port %s, want %s on the admin port", which, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
	}
	if p.HTTPGet.Scheme != "" && p.HTTPGet.Scheme != corev1.URISchemeHTTP { // the admin port stays plain with tls.enabled
		t.Errorf("%s probe scheme %s, want HTTP", which, p.HTTPGet.Scheme)
	}
	if p.PeriodSeconds < 1 || p.TimeoutSeconds < 1 || p.FailureThreshold < 1 {
		t.Errorf("%s probe timings %+v", which, p)
	}
}

func checkPodSecurity(t *testing.T, what string, sc *corev1.PodSecurityContext, uid int64) {
	t.Helper()
	if sc == nil {
		t.Errorf("%s: pod securityContext missing", what)
		return
	}
	if !ptrIsTrue(sc.RunAsNonRoot) || !ptrIs64(sc.RunAsUser, uid) || !ptrIs64(sc.RunAsGroup, uid) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v, want non-root %d:%d and seccomp RuntimeDefault", what, sc, uid, uid)
	}
}

func checkContainerSecurity(t *testing.T, what string, sc *corev1.SecurityContext, uid int64) {
	t.Helper()
	if sc == nil {
		t.Errorf("%s: container securityContext missing", what)
		return
	}
	if !ptrIsTrue(sc.RunAsNonRoot) || !ptrIs64(sc.RunAsUser, uid) || !ptrIs64(sc.RunAsGroup, uid) ||
		!ptrIsTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: container securityContext %+v, want non-root %d, read-only root, no escalation, drop ALL, seccomp RuntimeDefault",
			what, sc, uid)
	}
}

func ptrIsTrue(b *bool) bool            { return b != nil && *b }
func ptrIs64(p *int64, want int64) bool { return p != nil && *p == want }

func appVersion(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	data, err := os.ReadFile(chartDir + "/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q %v", chart.AppVersion, err)
	}
	return chart.AppVersion
}

// checkConfig feeds the ConfigMap's config.json to `anyroute check-config` and to the config
// package, then checks what depends on it: the checksum annotation that rolls the pods, and a
// termination grace period longer than the shutdown.
func checkConfig(t *testing.T, r *rendered) {
	cm := r.configMap(t, r.fullname)
	data, ok := cm.Data["config.json"]
	if !ok {
		t.Fatal("ConfigMap has no config.json")
	}
	r.configJSON = data
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runBinary(t, "check-config", file); code != 0 {
		t.Fatalf("anyroute check-config rejects the chart's config.json: exit %d\n%s\nconfig.json:\n%s", code, out, data)
	}
	cfg, err := config.Parse("config.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	r.config = cfg

	// The checksum that rolls the pods: of config.json with configReload restart; with inPlace
	// (the default) of its keys a reload cannot apply, so a change of the routes alone reloads.
	want, of := configChecksum(t, data, nil), "config.json"
	if !strings.Contains(strings.Join(r.args, " "), "configReload=restart") {
		want, of = configChecksum(t, data, config.Reloadable), "config.json without "+strings.Join(config.Reloadable, ", ")
	}
	if got := r.server.Spec.Template.Annotations["checksum/config"]; got != want {
		t.Errorf("checksum/config %q is not the sha256 of %s", got, of)
	}
	shutdown := cfg.Shutdown.DrainDelay.D() + cfg.Shutdown.Grace.D() + cfg.Shutdown.MetricsLinger.D()
	tgps := r.server.Spec.Template.Spec.TerminationGracePeriodSeconds
	if tgps == nil || time.Duration(*tgps)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %v must exceed shutdown drain_delay + grace + metrics_linger (%s)", tgps, shutdown)
	}
}

// configChecksum is the sha256 of the config document as the chart's toPrettyJson writes it, the
// keys omit left out: numbers kept as written, keys sorted, two spaces of indent.
func configChecksum(t *testing.T, doc string, omit []string) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	for _, k := range omit {
		delete(m, k)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func checkGracePeriod(t *testing.T, r *rendered, want int64) {
	t.Helper()
	if got := r.server.Spec.Template.Spec.TerminationGracePeriodSeconds; !ptrIs64(got, want) {
		t.Errorf("terminationGracePeriodSeconds = %v, want %d", got, want)
	}
}

func checkService(t *testing.T, r *rendered) {
	if len(r.services) != 1 || r.services[0].Name != r.fullname {
		t.Fatalf("want one Service %q, got %d", r.fullname, len(r.services))
	}
	s := r.services[0]
	if !reflect.DeepEqual(s.Spec.Selector, serverSelector(r)) {
		t.Errorf("Service selector %v, want the server pods' %v", s.Spec.Selector, serverSelector(r))
	}
	want := []corev1.ServicePort{
		{Name: "http", Port: 8080, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP},
		{Name: "admin", Port: 8081, TargetPort: intstr.FromString("admin"), Protocol: corev1.ProtocolTCP},
	}
	if !reflect.DeepEqual(s.Spec.Ports, want) {
		t.Errorf("Service ports %+v, want %+v", s.Spec.Ports, want)
	}
}

func checkScrapeAnnotations(t *testing.T, r *rendered, on bool) {
	t.Helper()
	a := r.server.Spec.Template.Annotations
	want := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8081", "prometheus.io/path": "/metrics"}
	for k, v := range want {
		if got, ok := a[k]; on && got != v || !on && ok {
			t.Errorf("pod annotation %s = %q (present %v), want %q when scrapeAnnotations is %v", k, got, ok, v, on)
		}
	}
}

type hpaWant struct {
	min, max             int32
	target               string
	upWindow, downWindow int32
}

// checkHPA asserts the autoscaling/v2 HPA: target, bounds, the one Pods metric avg_requests with
// an AverageValue target, and both behaviors with their windows and policies.
func checkHPA(t *testing.T, r *rendered, want hpaWant) {
	t.Helper()
	h := r.hpa(t)
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != r.server.Name {
		t.Errorf("scaleTargetRef %+v, want the Deployment %s", ref, r.server.Name)
	}
	if !ptrIs32(h.Spec.MinReplicas, want.min) || h.Spec.MaxReplicas != want.max {
		t.Errorf("replicas %v..%d, want %d..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas, want.min, want.max)
	}
	if len(h.Spec.Metrics) != 1 {
		t.Fatalf("want one metric, got %+v", h.Spec.Metrics)
	}
	m := h.Spec.Metrics[0]
	if m.Type != autoscalingv2.PodsMetricSourceType || m.Pods == nil {
		t.Fatalf("metric %+v, want type Pods", m)
	}
	if m.Pods.Metric.Name != "avg_requests" || m.Pods.Metric.Selector != nil {
		t.Errorf("metric %+v, want avg_requests", m.Pods.Metric)
	}
	tg := m.Pods.Target
	if tg.Type != autoscalingv2.AverageValueMetricType || tg.AverageValue == nil ||
		tg.AverageValue.Cmp(resource.MustParse(want.target)) != 0 || tg.Value != nil || tg.AverageUtilization != nil {
		t.Errorf("target %+v, want AverageValue %s", tg, want.target)
	}
	b := h.Spec.Behavior
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil {
		t.Fatalf("behavior %+v, want scaleUp and scaleDown", b)
	}
	for dir, rules := range map[string]struct {
		r      *autoscalingv2.HPAScalingRules
		window int32
	}{"scaleUp": {b.ScaleUp, want.upWindow}, "scaleDown": {b.ScaleDown, want.downWindow}} {
		if !ptrIs32(rules.r.StabilizationWindowSeconds, rules.window) {
			t.Errorf("%s.stabilizationWindowSeconds %v, want %d", dir, rules.r.StabilizationWindowSeconds, rules.window)
		}
		if len(rules.r.Policies) == 0 || rules.r.SelectPolicy == nil {
			t.Errorf("%s: want policies and a selectPolicy, got %+v", dir, rules.r)
		}
		for _, p := range rules.r.Policies {
			if p.Value < 1 || p.PeriodSeconds < 1 {
				t.Errorf("%s policy %+v", dir, p)
			}
		}
	}
}

func ptrIs32(p *int32, want int32) bool { return p != nil && *p == want }

func checkPDB(t *testing.T, r *rendered) {
	t.Helper()
	if len(r.pdbs) != 1 {
		t.Fatalf("want one PodDisruptionBudget, got %d", len(r.pdbs))
	}
	p := r.pdbs[0]
	if p.Spec.Selector == nil || !reflect.DeepEqual(p.Spec.Selector.MatchLabels, serverSelector(r)) {
		t.Errorf("PDB selector %+v, want the server pods'", p.Spec.Selector)
	}
	if p.Spec.MaxUnavailable == nil || *p.Spec.MaxUnavailable != intstr.FromInt32(1) || p.Spec.MinAvailable != nil {
		t.Errorf("PDB %+v, want maxUnavailable 1", p.Spec)
	}
}

// checkSiege asserts the load generator: its URLs point at the chart's Service, its settings reach
// the image's entrypoint through the environment, and it runs as locked down as the server.
func checkSiege(t *testing.T, r *rendered, paths []string, concurrency, delay string) {
	t.Helper()
	d := r.siege
	if d == nil {
		t.Fatal("no siege Deployment")
	}
	if !ptrIs32(d.Spec.Replicas, 1) {
		t.Errorf("siege replicas %v, want 1", d.Spec.Replicas)
	}
	if !selectorMatches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) ||
		d.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "siege" {
		t.Errorf("siege selector %v / pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if _, ok := d.Spec.Template.Annotations["prometheus.io/scrape"]; ok {
		t.Error("siege pods must not ask to be scraped: they serve no metrics")
	}
	spec := d.Spec.Template.Spec
	checkPodSecurity(t, "siege", spec.SecurityContext, 10001)
	if len(spec.Containers) != 1 {
		t.Fatalf("siege: want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	checkContainerSecurity(t, "siege", c.SecurityContext, 10001)
	if c.Image != "anyroute-siege:latest" {
		t.Errorf("siege image %q", c.Image)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["SIEGE_CONCURRENCY"] != concurrency || env["SIEGE_DELAY"] != delay {
		t.Errorf("siege env %v, want concurrency %s delay %s", env, concurrency, delay)
	}
	if _, ok := env["SIEGE_TIME"]; ok {
		t.Errorf("SIEGE_TIME %q set: the demo load runs until scaled to 0", env["SIEGE_TIME"])
	}
	svc := r.services[0]
	var got []string
	for _, u := range strings.Fields(env["SIEGE_URLS"]) {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatalf("SIEGE_URLS: %v", err)
		}
		scheme := "http"
		if r.config.HTTP.TLS != nil {
			scheme = "https"
		}
		if want := fmt.Sprintf("%s.%s.svc:%d", svc.Name, svc.Namespace, svc.Spec.Ports[0].Port); parsed.Scheme != scheme || parsed.Host != want {
			t.Errorf("siege URL %s: want %s://%s (the chart's Service)", u, scheme, want)
		}
		got = append(got, parsed.Path)
	}
	if !slices.Equal(got, paths) {
		t.Errorf("siege paths %v, want %v", got, paths)
	}
	// The root filesystem is read-only: the entrypoint needs a writable /tmp.
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	if !mounts["/tmp"] {
		t.Errorf("siege: no writable /tmp among %+v", c.VolumeMounts)
	}
}

// checkLoad asserts the anyroute load generator: the chart's own image running `anyroute load`
// on the stages of the values (read back with the stages package, as the binary reads them), its
// URLs on the chart's Service, its /metrics on a named port, scraped as the server is (annotations
// or a PodMonitor of its own), and as locked down as the server.
func checkLoad(t *testing.T, r *rendered, paths []string, want stages.List) {
	t.Helper()
	d := r.load
	if d == nil {
		t.Fatal("no anyroute load Deployment")
	}
	if !selectorMatches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) ||
		d.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "load" {
		t.Errorf("load selector %v / pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("load: want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != r.server.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("load image %q, want the server's %q", c.Image, r.server.Spec.Template.Spec.Containers[0].Image)
	}
	if !reflect.DeepEqual(c.SecurityContext, r.server.Spec.Template.Spec.Containers[0].SecurityContext) ||
		!reflect.DeepEqual(spec.SecurityContext, r.server.Spec.Template.Spec.SecurityContext) {
		t.Error("the load pods must run as locked down as the server's")
	}
	if len(c.Args) == 0 || c.Args[0] != "load" {
		t.Fatalf("load args %q: want the load subcommand", c.Args)
	}
	flags, urls := map[string]string{}, []string{}
	for _, a := range c.Args[1:] {
		if name, value, _ := strings.Cut(a, "="); strings.HasPrefix(name, "-") {
			flags[name] = value // "" for a bool flag given bare (-new-connections)
		} else {
			urls = append(urls, a)
		}
	}
	plan, err := stages.Parse([]byte(flags["-stages"]), stages.Limits{MaxRate: 20000, MaxDuration: time.Hour})
	if err != nil {
		t.Fatalf("-stages %q: %v", flags["-stages"], err)
	}
	if !reflect.DeepEqual(plan.Stages, want) {
		t.Errorf("stages %+v, want %+v", plan.Stages, want)
	}
	if flags["-metrics.addr"] != ":9102" || flags["-progress"] != "off" || flags["-seed"] != "1" {
		t.Errorf("load flags %v", flags)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "load-metrics" || c.Ports[0].ContainerPort != 9102 {
		t.Errorf("load ports %+v, want load-metrics 9102", c.Ports)
	}
	svc := r.services[0]
	var got []string
	for _, u := range urls {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatalf("load URL: %v", err)
		}
		if want := fmt.Sprintf("%s.%s.svc:%d", svc.Name, svc.Namespace, svc.Spec.Ports[0].Port); parsed.Scheme != "http" || parsed.Host != want {
			t.Errorf("load URL %s: want http://%s (the chart's Service)", u, want)
		}
		got = append(got, parsed.Path)
	}
	if !slices.Equal(got, paths) {
		t.Errorf("load paths %v, want %v", got, paths)
	}
	annotated := r.server.Spec.Template.Annotations["prometheus.io/scrape"] == "true"
	a := d.Spec.Template.Annotations
	if annotated != (a["prometheus.io/scrape"] == "true") || annotated && (a["prometheus.io/port"] != "9102" || a["prometheus.io/path"] != "/metrics") {
		t.Errorf("load pod annotations %v: want scraped on 9102 exactly when the server's are (%v)", a, annotated)
	}
	var pm *monitoringv1.PodMonitor
	for _, m := range r.podMonitors {
		if m.Name == d.Name {
			pm = m
		}
	}
	operator := len(r.podMonitors)+len(r.serviceMonitors) > 0
	switch {
	case operator && pm == nil:
		t.Error("the server is scraped by the operator but the load pods have no PodMonitor")
	case pm != nil && (!reflect.DeepEqual(pm.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) ||
		len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil || *pm.Spec.PodMetricsEndpoints[0].Port != "load-metrics"):
		t.Errorf("load PodMonitor %+v: want the load pods' load-metrics port", pm.Spec)
	}
}

// TestHelmLoadNewConnections: load.newConnections, true by default, passes -new-connections to
// anyroute load (a connection per request, so that kube-proxy balances each one, pods the
// autoscaler adds included); false leaves the flag out, and the load keeps its connections alive.
func TestHelmLoadNewConnections(t *testing.T) {
	for _, c := range []struct {
		name string
		set  string
		want bool
	}{
		{"default", "load.enabled=true", true},
		{"true", "load.enabled=true,load.newConnections=true", true},
		{"false", "load.enabled=true,load.newConnections=false", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := renderChart(t, "anyroute", "--set", c.set)
			if r.load == nil {
				t.Fatal("no anyroute load Deployment")
			}
			args := r.load.Spec.Template.Spec.Containers[0].Args
			n := 0
			for _, a := range args {
				if strings.HasPrefix(a, "-new-connections") {
					n++
					if a != "-new-connections" {
						t.Errorf("%q: want the bare flag", a)
					}
				}
			}
			if got := n == 1; got != c.want || n > 1 {
				t.Errorf("load.newConnections %s: -new-connections given %d times in %q", c.name, n, args)
			}
		})
	}
	if _, stderr, err := runHelm(t, templateArgs("anyroute", "--set", "load.enabled=true,load.newConnections=yes")...); err == nil ||
		!strings.Contains(stderr, "newConnections") {
		t.Errorf("load.newConnections=yes (a string): %v %s, want the schema's refusal", err, stderr)
	}
}

func checkMonitors(t *testing.T, r *rendered) {
	t.Helper()
	if len(r.serviceMonitors) != 1 || len(r.podMonitors) != 1 {
		t.Fatalf("want one ServiceMonitor and one PodMonitor, got %d and %d", len(r.serviceMonitors), len(r.podMonitors))
	}
	sm, pm := r.serviceMonitors[0], r.podMonitors[0]
	sel := serverSelector(r)
	if !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, sel) || !reflect.DeepEqual(pm.Spec.Selector.MatchLabels, sel) {
		t.Errorf("monitor selectors %v / %v, want %v", sm.Spec.Selector.MatchLabels, pm.Spec.Selector.MatchLabels, sel)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want the Service's admin port, /metrics", sm.Spec.Endpoints)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil ||
		*pm.Spec.PodMetricsEndpoints[0].Port != "admin" || pm.Spec.PodMetricsEndpoints[0].Path != "/metrics" {
		t.Errorf("PodMonitor endpoints %+v, want the container's admin port, /metrics", pm.Spec.PodMetricsEndpoints)
	}
}

// TestHelmSystemValues renders the four releases of deployments/helm/system: each config passes
// anyroute's own check, and every call's host:port is the Service of another of the releases, so
// the system the compose stack runs installs as it is.
func TestHelmSystemValues(t *testing.T) {
	files, err := filepath.Glob(kit.RepoPath(t, "deployments", "helm", "system", "*.yaml"))
	if err != nil || len(files) != 4 {
		t.Fatalf("system values %v (%v), want four files", files, err)
	}
	services := map[string]bool{} // host:port of every release's Service
	calls := map[string][]string{}
	for _, file := range files {
		release := strings.TrimSuffix(filepath.Base(file), ".yaml")
		stdout, stderr, err := runHelm(t, templateArgs(release, "-f", file)...)
		if err != nil {
			t.Fatalf("helm template %s: %v\n%s", release, err, stderr)
		}
		for _, doc := range docSeparator.Split(stdout, -1) {
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
				Data map[string]string `json:"data"`
				Spec struct {
					Ports []struct {
						Name string `json:"name"`
						Port int    `json:"port"`
					} `json:"ports"`
				} `json:"spec"`
			}
			if isBlankYAML(doc) {
				continue
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatal(err)
			}
			switch obj.Kind {
			case "Service":
				for _, p := range obj.Spec.Ports {
					if p.Name == "http" {
						services[fmt.Sprintf("%s:%d", obj.Metadata.Name, p.Port)] = true
					}
				}
			case "ConfigMap":
				cfg, err := config.Parse(release, []byte(obj.Data["config.json"]))
				if err != nil {
					t.Fatalf("%s: %v", release, err)
				}
				for _, r := range cfg.Routes {
					for _, c := range r.Calls {
						u, err := url.Parse(strings.ReplaceAll(c.URL, "{path}", "p"))
						if err != nil {
							t.Fatal(err)
						}
						calls[release] = append(calls[release], u.Host)
					}
				}
			}
		}
	}
	for release, hosts := range calls {
		for _, h := range hosts {
			if !services[h] || strings.HasPrefix(h, release+":") {
				t.Errorf("%s calls %s, which is no other release's Service (%v)", release, h, services)
			}
		}
	}
	if len(calls["frontend"]) != 1 || len(calls["checkout"]) != 2 {
		t.Errorf("calls %v: want frontend → checkout → inventory, payment", calls)
	}
}

// TestHelmConfigReload: with configReload inPlace (the default), an upgrade that changes only the
// routes leaves the pods' checksum as it was (anyroute reloads them itself), and one that changes a
// key a reload cannot apply rolls them; with restart, any change rolls them.
func TestHelmConfigReload(t *testing.T) {
	checksum := func(args ...string) string {
		r := renderChart(t, "anyroute", append([]string{"-f", demoValues}, args...)...)
		return r.server.Spec.Template.Annotations["checksum/config"]
	}
	base := checksum()
	if checksum("--set", "config.routes[0].status=201") != base || checksum("--set", "config.max_hops=3") != base {
		t.Error("inPlace: a change of the routes or max_hops rolls the pods")
	}
	if checksum("--set", "config.shutdown.grace=20s") == base {
		t.Error("inPlace: a change of shutdown.grace, which a reload cannot apply, does not roll the pods")
	}
	if checksum("--set", "tls.enabled=true,tls.secretName=s") == base {
		t.Error("inPlace: turning TLS on, which a reload cannot apply, does not roll the pods")
	}
	restart := checksum("--set", "configReload=restart")
	if checksum("--set", "configReload=restart,config.routes[0].status=201") == restart {
		t.Error("restart: a change of the routes does not roll the pods")
	}
}

// checkDashboardConfigMap asserts the dashboard's ConfigMap: the sidecar's labels, the
// annotations given, and the chart's dashboards/anyroute.json byte for byte.
func checkDashboardConfigMap(t *testing.T, r *rendered, labels, annotations map[string]string) {
	t.Helper()
	cm := r.configMap(t, r.fullname+"-dashboard")
	for k, v := range labels {
		if cm.Labels[k] != v {
			t.Errorf("dashboard ConfigMap label %s = %q, want %q (the sidecar's)", k, cm.Labels[k], v)
		}
	}
	if len(annotations) > 0 || len(cm.Annotations) > 0 {
		if !reflect.DeepEqual(cm.Annotations, annotations) {
			t.Errorf("dashboard ConfigMap annotations %v, want %v", cm.Annotations, annotations)
		}
	}
	want, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 1 || cm.Data["anyroute.json"] != string(want) {
		t.Errorf("dashboard ConfigMap data (keys %v) is not %s as it is", slices.Collect(maps.Keys(cm.Data)), dashboardFile)
	}
}

// metricSelector finds each anyroute metric in a rule's expression with its label matchers.
var metricSelector = regexp.MustCompile(`\b(app_[a-z_]+)(\{[^}]*\})?`)

// checkPrometheusRule asserts the PrometheusRule: the compose file's alerts, every series read
// through the default selector (the release's namespace and Deployment pods), the labels given.
func checkPrometheusRule(t *testing.T, r *rendered, labels map[string]string) {
	t.Helper()
	if len(r.prometheusRules) != 1 || r.prometheusRules[0].Name != r.fullname {
		t.Fatalf("want one PrometheusRule %q, got %d", r.fullname, len(r.prometheusRules))
	}
	pr := r.prometheusRules[0]
	for k, v := range labels {
		if pr.Labels[k] != v {
			t.Errorf("PrometheusRule label %s = %q, want %q", k, pr.Labels[k], v)
		}
	}
	selector := fmt.Sprintf(`namespace=%q, pod=~"%s-[a-z0-9]+-[a-z0-9]+"`, testNamespace, r.fullname)
	var alerts []string
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			alerts = append(alerts, rule.Alert)
			expr := rule.Expr.String()
			matches := metricSelector.FindAllStringSubmatch(expr, -1)
			if len(matches) == 0 {
				t.Errorf("%s: reads no anyroute metric: %s", rule.Alert, expr)
			}
			for _, m := range matches {
				if !strings.HasPrefix(m[2], "{"+selector) {
					t.Errorf("%s: %s%s is not read through the release's selector {%s}", rule.Alert, m[1], m[2], selector)
				}
			}
		}
	}
	if want := composeAlertNames(t); !slices.Equal(alerts, want) {
		t.Errorf("PrometheusRule alerts %v, want the compose file's %v", alerts, want)
	}
}
