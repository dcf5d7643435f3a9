package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The names of the links, in chain order; the e2e and scripts rely on them.
const (
	LinkRelease        = "release"
	LinkPods           = "pods"
	LinkExporter       = "exporter"
	LinkPrometheus     = "prometheus"
	LinkAPIService     = "apiservice"
	LinkAdapterRule    = "adapter-rule"
	LinkRelist         = "relist"
	LinkCustomMetric   = "custom-metric"
	LinkKEDAQuery      = "keda-query"
	LinkScaledObject   = "scaledobject"
	LinkExternalMetric = "external-metric"
	LinkHPA            = "hpa"
)

// The two paths from Prometheus to the HPA.
const (
	PathAdapter = "prometheus-adapter"
	PathKEDA    = "keda"
)

const (
	customMetricsAPI   = "v1beta1.custom.metrics.k8s.io"
	externalMetricsAPI = "v1beta1.external.metrics.k8s.io"
	defaultSeries      = "app_requests_total"
)

// Cluster is how the doctor reads the cluster: GETs of API server paths, for objects (decoded into
// k8s.io/api's types), aggregated APIs, KEDA's objects and the pod and service proxies alike. The
// doctor reads a handful of kinds, so it does without client-go's typed clientset: linked into
// anyroute, that would triple the binary and more than double the service's idle RSS.
type Cluster struct {
	Raw Getter
}

// get decodes the object or list at the API path p into out.
func (c Cluster) get(ctx context.Context, p string, out any) error {
	body, err := c.Raw(ctx, p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", p, err)
	}
	return nil
}

// objects is the API path of a namespace's objects of one kind: objects("apps/v1", ns,
// "deployments"), or with a name a single one; a core kind has group version "v1".
func objects(groupVersion, namespace, resource string, name ...string) string {
	prefix := "/apis/"
	if groupVersion == "v1" {
		prefix = "/api/"
	}
	return prefix + path.Join(append([]string{groupVersion, "namespaces", namespace, resource}, name...)...)
}

// selecting adds a label selector to a list's path.
func selecting(p, selector string) string {
	return p + "?labelSelector=" + url.QueryEscape(selector)
}

// Chain walks the chain for one release. Prometheus makes a Getter for a Prometheus URL (direct,
// or through the API server's service proxy for an in-cluster address).
type Chain struct {
	Cluster       Cluster
	Namespace     string
	Release       string
	PrometheusURL string
	Prometheus    func(url string) Getter

	report  *Report
	dep     *appsv1.Deployment
	hpa     *autoscalingv2.HorizontalPodAutoscaler
	so      *scaledObject
	pods    []corev1.Pod // the ready ones
	series  string       // the counter's name the autoscaler reads
	prom    *promClient
	adapter *adapterSetup
	samples []Sample // the counter's series for the pods, as Prometheus holds them
	served  string   // the custom metric the adapter rule serves
}

// Run checks every link and returns the report; a link that cannot be checked because an earlier
// one failed is skipped.
func (c *Chain) Run(ctx context.Context) *Report {
	c.report = &Report{Namespace: c.Namespace, Release: c.Release}
	c.report.add(c.checkRelease(ctx))
	if c.dep == nil {
		c.report.finish()
		return c.report
	}
	c.discover(ctx)
	c.report.add(c.checkPods(ctx))
	c.report.add(c.checkExporter(ctx))
	c.report.add(c.checkPrometheus(ctx))
	if c.so != nil {
		c.report.add(c.checkKEDAQuery(ctx))
		c.report.add(c.checkAPIService(ctx, externalMetricsAPI, "KEDA's metrics server (keda-operator-metrics-apiserver)"))
		c.report.add(c.checkScaledObject())
		c.report.add(c.checkExternalMetric(ctx))
	} else {
		c.report.add(c.checkAPIService(ctx, customMetricsAPI, "prometheus-adapter"))
		c.report.add(c.checkAdapterRule(ctx))
		c.report.add(c.checkRelist(ctx))
		c.report.add(c.checkCustomMetric(ctx))
	}
	c.report.add(c.checkHPA(ctx))
	c.report.finish()
	return c.report
}

// checkRelease finds the release's server Deployment and the autoscaler that scales it: the
// chart's HPA (prometheus-adapter path) or a KEDA ScaledObject.
func (c *Chain) checkRelease(ctx context.Context) Link {
	l := Link{Name: LinkRelease}
	sel := "app.kubernetes.io/instance=" + c.Release + ",app.kubernetes.io/component=server"
	var deps appsv1.DeploymentList
	if err := c.Cluster.get(ctx, selecting(objects("apps/v1", c.Namespace, "deployments"), sel), &deps); err != nil {
		return fail(l, "listing Deployments: "+err.Error(), "check the kubeconfig's cluster and credentials (-kubeconfig, KUBECONFIG)")
	}
	if len(deps.Items) != 1 {
		return fail(l, fmt.Sprintf("%d Deployments labelled %s in namespace %s", len(deps.Items), sel, c.Namespace),
			"-release names the helm release and -namespace its namespace: `helm list -A` shows both")
	}
	c.dep = &deps.Items[0]
	var err error
	if c.so, err = c.findScaledObject(ctx); err != nil {
		return fail(l, fmt.Sprintf("deploy/%s; reading ScaledObjects: %v", c.dep.Name, err), "")
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := c.Cluster.get(ctx, objects("autoscaling/v2", c.Namespace, "horizontalpodautoscalers"), &hpas); err != nil {
		return fail(l, fmt.Sprintf("deploy/%s; listing HPAs: %v", c.dep.Name, err), "")
	}
	var own []string
	for i, h := range hpas.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != c.dep.Name {
			continue
		}
		if c.so != nil && (h.Name == c.so.Status.HPAName || ownedBy(h.OwnerReferences, "ScaledObject", c.so.Metadata.Name)) {
			c.hpa = &hpas.Items[i]
			continue
		}
		own = append(own, h.Name)
		if c.so == nil {
			c.hpa = &hpas.Items[i]
		}
	}
	switch {
	case c.so != nil && len(own) > 0:
		return fail(l, fmt.Sprintf("deploy/%s is scaled by the ScaledObject %s and by the HPA %s", c.dep.Name, c.so.Metadata.Name, strings.Join(own, ", ")),
			"two autoscalers fight over the replicas: install the chart with hpa.enabled=false when keda.enabled=true")
	case len(own) > 1:
		return fail(l, fmt.Sprintf("deploy/%s is scaled by %d HPAs: %s", c.dep.Name, len(own), strings.Join(own, ", ")), "keep one")
	case c.so != nil:
		c.report.Path = PathKEDA
		return pass(l, fmt.Sprintf("deploy/%s, scaled by KEDA's ScaledObject %s", c.dep.Name, c.so.Metadata.Name))
	case c.hpa != nil:
		c.report.Path = PathAdapter
		return pass(l, fmt.Sprintf("deploy/%s, scaled by the HPA %s on %s", c.dep.Name, c.hpa.Name, describeMetrics(c.hpa.Spec.Metrics)))
	}
	return fail(l, fmt.Sprintf("deploy/%s has no HPA and no ScaledObject", c.dep.Name),
		"install the chart with hpa.enabled=true (prometheus-adapter) or keda.enabled=true (KEDA)")
}

func ownedBy(refs []metav1.OwnerReference, kind, name string) bool {
	for _, r := range refs {
		if r.Kind == kind && r.Name == name {
			return true
		}
	}
	return false
}

// discover reads what the later links compare: the adapter's Deployment, rules and Prometheus
// URL (adapter path), the name of the counter the autoscaler reads, and the Prometheus to ask.
func (c *Chain) discover(ctx context.Context) {
	c.series = defaultSeries
	url := c.PrometheusURL
	if c.so != nil {
		if t := c.so.prometheusTrigger(); t != nil {
			if m := counterInQuery.FindString(t.Metadata["query"]); m != "" {
				c.series = m
			}
			if url == "" {
				url = t.Metadata["serverAddress"]
			}
		}
	} else {
		c.adapter = c.findAdapter(ctx)
		if r := c.adapter.rule(c.series); r != nil && r.SeriesName() != "" {
			c.series = r.SeriesName()
		}
		if url == "" {
			url = c.adapter.args.prometheusURL
		}
	}
	if url != "" {
		c.report.Prometheus = url
		c.prom = &promClient{get: c.Prometheus(url)}
	}
}

// counterInQuery finds the counter a KEDA query reads.
var counterInQuery = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*_requests_total`)

// checkPods: the Deployment's pods, and which are Ready.
func (c *Chain) checkPods(ctx context.Context) Link {
	l := Link{Name: LinkPods}
	sel, err := metav1.LabelSelectorAsSelector(c.dep.Spec.Selector)
	if err != nil {
		return fail(l, "deploy/"+c.dep.Name+": selector: "+err.Error(), "")
	}
	var list corev1.PodList
	if err := c.Cluster.get(ctx, selecting(objects("v1", c.Namespace, "pods"), sel.String()), &list); err != nil {
		return fail(l, "listing pods: "+err.Error(), "")
	}
	var ready, notReady []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			c.pods = append(c.pods, p)
			ready = append(ready, p.Name)
		} else {
			notReady = append(notReady, p.Name+" ("+string(p.Status.Phase)+")")
		}
	}
	sort.Slice(c.pods, func(i, j int) bool { return c.pods[i].Name < c.pods[j].Name })
	sort.Strings(ready)
	ev := fmt.Sprintf("%d of %d Ready: %s", len(ready), len(list.Items), strings.Join(ready, ", "))
	switch {
	case len(ready) == 0:
		return fail(l, fmt.Sprintf("no Ready pod of deploy/%s (%s)", c.dep.Name, strings.Join(notReady, ", ")),
			fmt.Sprintf("kubectl -n %s describe pods -l %s", c.Namespace, sel))
	case len(notReady) > 0:
		return warn(l, ev+"; not Ready: "+strings.Join(notReady, ", "),
			"pods that are not Ready serve no traffic and the HPA leaves them out of its average")
	}
	return pass(l, ev)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// checkExporter reads each Ready pod's metrics through the API server's pod proxy, on the port
// and path the prometheus.io annotations name (or the container port "admin").
func (c *Chain) checkExporter(ctx context.Context) Link {
	l := Link{Name: LinkExporter}
	if len(c.pods) == 0 {
		return skip(l, "no Ready pod")
	}
	var evidence, idle, missing []string
	prefix := strings.TrimSuffix(c.series, "_requests_total")
	others := map[string]bool{}
	for _, p := range c.pods {
		port, mpath := metricsEndpoint(&p)
		if port == "" {
			return fail(l, "pod "+p.Name+": no prometheus.io/port annotation and no container port named admin",
				"the chart sets both; without them nothing scrapes the pod")
		}
		proxy := fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:%s/proxy%s", c.Namespace, p.Name, port, mpath)
		body, err := c.Cluster.Raw(ctx, proxy)
		if err != nil {
			return fail(l, fmt.Sprintf("pod %s: %v", p.Name, err),
				fmt.Sprintf("the admin listener must answer on the pod IP %s port %s (anyroute -admin.addr :%s)", p.Status.PodIP, port, port))
		}
		n, total, prefixes := scanCounter(string(body), c.series)
		switch {
		case n > 0:
			evidence = append(evidence, fmt.Sprintf("%s %d series, %s requests", p.Name, n, formatFloat(total)))
		case contains(prefixes, prefix):
			idle = append(idle, p.Name) // anyroute with the right prefix: no request counted yet
		default:
			missing = append(missing, p.Name)
			for _, x := range prefixes {
				others[x] = true
			}
		}
	}
	if len(missing) > 0 {
		hint := fmt.Sprintf("the autoscaler reads %s; anyroute names it <config.metrics.namespace>_requests_total", c.series)
		var names []string
		for n := range others {
			names = append(names, n)
		}
		sort.Strings(names)
		ev := fmt.Sprintf("%s exports no %s on :%s", strings.Join(missing, ", "), c.series, metricsPort(&c.pods[0]))
		if len(names) > 0 {
			ev += fmt.Sprintf(" (its metrics are %s_*: config.metrics.namespace is %q)", names[0], names[0])
			hint = fmt.Sprintf("config.metrics.namespace makes the pods export %s_requests_total, but the %s reads %s: keep the namespace %q or change the %s with it",
				names[0], c.readerName(), c.series, prefix, c.readerName())
		}
		return fail(l, ev, hint)
	}
	if len(idle) > 0 {
		ev := fmt.Sprintf("%s export %s_build_info but no %s yet", strings.Join(idle, ", "), prefix, c.series)
		if len(evidence) > 0 {
			ev = c.series + " on the admin port: " + strings.Join(evidence, "; ") + "; " + ev
		}
		return warn(l, ev, "a pod's counter appears with its first request: these pods have served none")
	}
	return pass(l, fmt.Sprintf("%s on the admin port: %s", c.series, strings.Join(evidence, "; ")))
}

// readerName is what reads the counter: the adapter rule or KEDA's trigger query.
func (c *Chain) readerName() string {
	if c.so != nil {
		return "ScaledObject's query"
	}
	return "prometheus-adapter rule"
}

func metricsEndpoint(p *corev1.Pod) (port, mpath string) {
	mpath = p.Annotations["prometheus.io/path"]
	if mpath == "" {
		mpath = "/metrics"
	}
	if !strings.HasPrefix(mpath, "/") {
		mpath = "/" + mpath
	}
	return metricsPort(p), mpath
}

func metricsPort(p *corev1.Pod) string {
	if port := p.Annotations["prometheus.io/port"]; port != "" {
		return port
	}
	for _, ct := range p.Spec.Containers {
		for _, cp := range ct.Ports {
			if cp.Name == "admin" {
				return strconv.Itoa(int(cp.ContainerPort))
			}
		}
	}
	return ""
}

var (
	exposedName = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*_requests_total)[{ ]`)
	buildInfo   = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)_build_info[{ ]`)
)

// scanCounter counts a counter's samples in a text exposition and sums them; it also returns the
// metric prefixes (config.metrics.namespace) of the *_build_info series it saw, by which anyroute
// is known even before it has counted a request.
func scanCounter(text, name string) (n int, total float64, prefixes []string) {
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if m := buildInfo.FindStringSubmatch(line); m != nil && !seen[m[1]] {
			seen[m[1]] = true
			prefixes = append(prefixes, m[1])
		}
		m := exposedName.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		fields := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			n++
			total += v
		}
	}
	return n, total, prefixes
}

// checkPrometheus asks Prometheus for the counter's series and checks they carry the namespace
// and pod labels, with the release's pod names.
func (c *Chain) checkPrometheus(ctx context.Context) Link {
	l := Link{Name: LinkPrometheus}
	if c.prom == nil {
		return fail(l, "no Prometheus URL: none given, and none found in the "+c.readerName(),
			"pass -prometheus-url http://HOST:PORT (or an in-cluster http://NAME.NAMESPACE.svc:PORT)")
	}
	all, err := c.prom.query(ctx, c.series)
	if err != nil {
		return fail(l, err.Error(), "is "+c.report.Prometheus+" the Prometheus that scrapes the pods?")
	}
	names := map[string]bool{}
	for _, p := range c.pods {
		names[p.Name] = true
	}
	var mine []Sample
	podLabels, nsLabels := map[string]bool{}, map[string]bool{}
	seen := map[string]bool{}
	for _, s := range all {
		podLabel := ""
		for k, v := range s.Labels {
			if names[v] {
				podLabel = k
				seen[v] = true
			}
		}
		if podLabel == "" {
			continue
		}
		mine = append(mine, s)
		podLabels[podLabel] = true
		for k, v := range s.Labels {
			if v == c.Namespace && k != podLabel {
				nsLabels[k] = true
			}
		}
	}
	if len(mine) == 0 {
		if len(all) == 0 {
			return fail(l, "Prometheus holds no "+c.series+" series",
				"Prometheus does not scrape the pods: the kubernetes-pods job reads the prometheus.io annotations (metrics.scrapeAnnotations), the Prometheus Operator a PodMonitor (metrics.podMonitor.enabled)")
		}
		return fail(l, fmt.Sprintf("Prometheus holds %d %s series, none naming the release's pods (%s)", len(all), c.series, labelNames(all[:1])),
			"the pods are not scraped, or their names land in no label")
	}
	c.samples = mine
	var unscraped []string
	for _, p := range c.pods {
		if !seen[p.Name] {
			unscraped = append(unscraped, p.Name)
		}
	}
	ev := fmt.Sprintf("%d %s series for %d pods, pod name in label %s, namespace in %s (job %q)",
		len(mine), c.series, len(seen), setString(podLabels), setString(nsLabels), mine[0].Labels["job"])
	if len(podLabels) != 1 || !podLabels["pod"] || len(nsLabels) != 1 || !nsLabels["namespace"] {
		return fail(l, ev, "the series carry the pod and namespace under other labels than namespace and pod, which the prometheus-adapter rule and the chart's KEDA query use: "+
			"today's prometheus-community chart (kubernetes-pods job) and the Prometheus Operator write namespace and pod; fix the scrape's relabelling, or the rule's overrides with it")
	}
	if len(unscraped) > 0 {
		return warn(l, ev+"; not yet for "+strings.Join(unscraped, ", "), "a new pod's series appears after its first scrape")
	}
	return pass(l, ev)
}

// checkAPIService: the aggregator reaches the metrics server behind an API group.
func (c *Chain) checkAPIService(ctx context.Context, name, server string) Link {
	l := Link{Name: LinkAPIService}
	body, err := c.Cluster.Raw(ctx, "/apis/apiregistration.k8s.io/v1/apiservices/"+name)
	if err != nil {
		return fail(l, "APIService "+name+": "+err.Error(), "install "+server+": it registers this APIService")
	}
	var as struct {
		Spec struct {
			Service *struct{ Namespace, Name string } `json:"service"`
		} `json:"spec"`
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &as); err != nil {
		return fail(l, "APIService "+name+": "+err.Error(), "")
	}
	target := "a local server"
	if s := as.Spec.Service; s != nil {
		target = "service " + s.Namespace + "/" + s.Name
	}
	for _, cond := range as.Status.Conditions {
		if cond.Type == "Available" {
			ev := fmt.Sprintf("APIService %s (%s) Available=%s %s", name, target, cond.Status, cond.Reason)
			if cond.Status != metav1.ConditionTrue {
				return fail(l, ev+": "+cond.Message, "the aggregator cannot reach "+server+": look at its pod and log, and the Service's endpoints")
			}
			return pass(l, ev)
		}
	}
	return fail(l, "APIService "+name+" has no Available condition yet", "")
}

// checkAdapterRule finds the adapter rule that reads the counter and checks it against what
// Prometheus holds: its seriesQuery selects the series, and they carry the labels it maps.
func (c *Chain) checkAdapterRule(ctx context.Context) Link {
	l := Link{Name: LinkAdapterRule}
	a := c.adapter
	if a.err != nil {
		return warn(l, "the adapter's rules: "+a.err.Error(),
			"the doctor reads --config and its ConfigMap from the Deployment behind the APIService's Service")
	}
	r := a.rule(c.series)
	if r == nil {
		var reads []string
		for _, r := range a.config.Rules {
			reads = append(reads, r.SeriesQuery)
		}
		return fail(l, fmt.Sprintf("none of the %d rules in %s reads %s (they read %s)", len(a.config.Rules), a.source, c.series, strings.Join(reads, ", ")),
			"add the rule of deployments/helm/prometheus-adapter-values.yaml")
	}
	if c.prom == nil {
		return skip(l, "no Prometheus to check the rule against")
	}
	selected, err := c.prom.query(ctx, r.SeriesQuery)
	if err != nil {
		return fail(l, "its seriesQuery "+r.SeriesQuery+": "+err.Error(), "")
	}
	desc := fmt.Sprintf("rule of %s: seriesQuery %s", a.source, r.SeriesQuery)
	if len(selected) == 0 {
		return fail(l, desc+" selects no series; Prometheus holds "+labelNames(c.samples),
			"the rule's seriesQuery and the series' name and labels must agree")
	}
	var missing []string
	for _, label := range []string{r.ResourceLabel("namespace"), r.ResourceLabel("pod")} {
		if _, ok := selected[0].Labels[label]; !ok || label == "" {
			missing = append(missing, strconvQuote(label))
		}
	}
	if len(missing) > 0 {
		return fail(l, fmt.Sprintf("%s selects %d series, but maps the labels %v to resources and the series have no %s (they have %s)",
			desc, len(selected), r.Labels(), strings.Join(missing, ", "), labelNames(selected[:1])),
			"the rule's resources.overrides must name the labels the series carry: namespace and pod with today's Prometheus charts (the original's kubernetes_namespace/kubernetes_pod_name no longer exist)")
	}
	served, err := r.MetricName(selected[0].Labels["__name__"])
	if err != nil {
		return fail(l, desc+": "+err.Error(), "")
	}
	c.served = served
	return pass(l, fmt.Sprintf("%s selects %d series; labels %v; serves pods/%s", desc, len(selected), r.Labels(), served))
}

func strconvQuote(s string) string {
	if s == "" {
		return "resource label"
	}
	return s
}

// checkRelist: the adapter re-lists no more often than Prometheus scrapes, or metrics come and go.
func (c *Chain) checkRelist(ctx context.Context) Link {
	l := Link{Name: LinkRelist}
	if c.adapter.deployment == "" {
		return skip(l, "the adapter's Deployment was not found")
	}
	if c.prom == nil {
		return skip(l, "no Prometheus")
	}
	global, jobs, err := c.prom.scrapeIntervals(ctx)
	if err != nil {
		return warn(l, "Prometheus' scrape interval: "+err.Error(), "")
	}
	scrape, job := global, ""
	if len(c.samples) > 0 {
		job = c.samples[0].Labels["job"]
		if d, ok := jobs[job]; ok {
			scrape = d
		}
	}
	how := "--metrics-relist-interval"
	if !c.adapter.args.relistSet {
		how = "the default"
	}
	scraped := fmt.Sprintf("job %q", job)
	if job == "" {
		scraped = "by default (global)"
	}
	ev := fmt.Sprintf("%s re-lists every %v (%s), Prometheus scrapes %s every %v", c.adapter.deployment, c.adapter.args.relist, how, scraped, scrape)
	if c.adapter.args.relist < scrape {
		return fail(l, ev, "with a re-list interval shorter than the scrape interval the adapter's metrics come and go: raise metricsRelistInterval above the scrape interval")
	}
	return pass(l, ev)
}

// checkCustomMetric asks the custom metrics API what `kubectl get --raw …/pods/*/METRIC` shows.
func (c *Chain) checkCustomMetric(ctx context.Context) Link {
	l := Link{Name: LinkCustomMetric}
	name := c.served
	if name == "" && c.hpa != nil {
		name = podsMetricName(c.hpa)
	}
	if name == "" {
		return skip(l, "no metric name from the rule or the HPA")
	}
	p := fmt.Sprintf("/apis/custom.metrics.k8s.io/v1beta1/namespaces/%s/pods/*/%s", c.Namespace, name)
	body, err := c.Cluster.Raw(ctx, p)
	if err != nil {
		return fail(l, err.Error(), "the adapter serves no value: see the adapter-rule link, and its log at --v=6")
	}
	var list struct {
		Items []struct {
			DescribedObject struct{ Name string } `json:"describedObject"`
			Value           resource.Quantity     `json:"value"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fail(l, "decoding "+p+": "+err.Error(), "")
	}
	values := map[string]string{}
	for _, it := range list.Items {
		values[it.DescribedObject.Name] = Quantity(it.Value.String())
	}
	var shown, missing []string
	for _, pod := range c.pods {
		if v, ok := values[pod.Name]; ok {
			shown = append(shown, pod.Name+" "+v)
		} else {
			missing = append(missing, pod.Name)
		}
	}
	ev := fmt.Sprintf("pods/*/%s: %s", name, strings.Join(shown, ", "))
	switch {
	case len(shown) == 0:
		return fail(l, fmt.Sprintf("pods/*/%s answers %d values, none for the release's pods", name, len(list.Items)),
			"the adapter has not re-listed since the pods' series appeared, or its rule's labels do not reach these pods")
	case len(missing) > 0:
		return warn(l, ev+"; none yet for "+strings.Join(missing, ", "), "a new pod gets its value after two scrapes and a re-list")
	}
	return pass(l, ev)
}

// checkKEDAQuery runs the ScaledObject's trigger query in Prometheus, as KEDA's operator does.
func (c *Chain) checkKEDAQuery(ctx context.Context) Link {
	l := Link{Name: LinkKEDAQuery}
	t := c.so.prometheusTrigger()
	if t == nil {
		return fail(l, "ScaledObject "+c.so.Metadata.Name+" has no prometheus trigger", "the chart's keda.enabled renders one")
	}
	if c.prom == nil {
		return skip(l, "no Prometheus")
	}
	q := t.Metadata["query"]
	res, err := c.prom.query(ctx, q)
	if err != nil {
		return fail(l, "query "+q+": "+err.Error(), "")
	}
	if len(res) == 0 {
		return fail(l, "query "+q+" returns no series",
			"KEDA reads an empty answer as 0 (ignoreNullValues) and never scales out: the query's metric name, namespace or pod pattern does not match the series")
	}
	perPod := ""
	if n := len(c.pods); n > 0 {
		perPod = fmt.Sprintf(", %s per Ready pod", formatFloat(res[0].Value/float64(n)))
	}
	return pass(l, fmt.Sprintf("%s = %s%s against threshold %s per pod (%s)", q, formatFloat(res[0].Value), perPod,
		Quantity(t.Metadata["threshold"]), t.MetricType))
}

// checkScaledObject reads the ScaledObject's conditions: Ready says KEDA set it up and its
// triggers answer; Active says the trigger is above its activation threshold.
func (c *Chain) checkScaledObject() Link {
	l := Link{Name: LinkScaledObject}
	conds := map[string]metav1.Condition{}
	for _, cond := range c.so.Status.Conditions {
		conds[cond.Type] = cond
	}
	show := func(t string) string {
		cond, ok := conds[t]
		if !ok {
			return t + " unknown"
		}
		return fmt.Sprintf("%s=%s %s", t, cond.Status, cond.Reason)
	}
	ev := fmt.Sprintf("ScaledObject %s: %s, %s; HPA %q", c.so.Metadata.Name, show("Ready"), show("Active"), c.so.Status.HPAName)
	ready, ok := conds["Ready"]
	if !ok {
		return fail(l, ev, "KEDA's operator has not reconciled the ScaledObject: is keda-operator running?")
	}
	if ready.Status != metav1.ConditionTrue {
		return fail(l, ev+": "+ready.Message, fmt.Sprintf("kubectl -n %s describe scaledobject %s, and keda-operator's log: a trigger that errors (an unreachable serverAddress, a bad query) makes it not Ready", c.Namespace, c.so.Metadata.Name))
	}
	return pass(l, ev)
}

// checkExternalMetric asks the external metrics API for the value KEDA gives the HPA.
func (c *Chain) checkExternalMetric(ctx context.Context) Link {
	l := Link{Name: LinkExternalMetric}
	if len(c.so.Status.ExternalMetricNames) == 0 {
		return fail(l, "ScaledObject "+c.so.Metadata.Name+" lists no external metric", "KEDA has not set it up: see the scaledobject link")
	}
	name := c.so.Status.ExternalMetricNames[0]
	p := fmt.Sprintf("/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/%s?labelSelector=%s", c.Namespace, name,
		"scaledobject.keda.sh%2Fname%3D"+c.so.Metadata.Name)
	body, err := c.Cluster.Raw(ctx, p)
	if err != nil {
		return fail(l, err.Error(), "KEDA's metrics server asks the operator, which asks Prometheus: see their logs")
	}
	var list struct {
		Items []struct {
			Value resource.Quantity `json:"value"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) == 0 {
		return fail(l, fmt.Sprintf("GET %s: no value (%v)", p, err), "")
	}
	return pass(l, fmt.Sprintf("%s = %s (the Deployment's total; the HPA divides it by the replicas)", name, Quantity(list.Items[0].Value.String())))
}

// checkHPA: the HPA's metric is one the metrics API serves, the controller can read it and scale,
// and its target is within reach of the traffic.
func (c *Chain) checkHPA(ctx context.Context) Link {
	l := Link{Name: LinkHPA}
	h := c.hpa
	if h == nil {
		if c.so != nil {
			return fail(l, fmt.Sprintf("no HPA made by the ScaledObject %s yet (status.hpaName %q)", c.so.Metadata.Name, c.so.Status.HPAName), "KEDA's operator makes it: see its log")
		}
		return fail(l, "no HPA", "")
	}
	if c.so == nil {
		if name := podsMetricName(h); name != "" {
			if served, err := c.servedCustomMetrics(ctx); err == nil && !contains(served, "pods/"+name) {
				list := strings.Join(served, ", ")
				if list == "" {
					list = "no metric"
				}
				return fail(l, fmt.Sprintf("HPA %s asks for the Pods metric %s; the adapter serves %s", h.Name, name, list),
					"the HPA's metric name (hpa.metric.name) must be the adapter rule's name.as")
			}
		}
	}
	conds := map[autoscalingv2.HorizontalPodAutoscalerConditionType]autoscalingv2.HorizontalPodAutoscalerCondition{}
	for _, cond := range h.Status.Conditions {
		conds[cond.Type] = cond
	}
	current, target, value := hpaMetric(h)
	ev := fmt.Sprintf("HPA %s: replicas %d, desired %d (%d..%d); %s against target %s", h.Name, h.Status.CurrentReplicas,
		h.Status.DesiredReplicas, ptrOr(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas, current, target)
	for _, t := range []autoscalingv2.HorizontalPodAutoscalerConditionType{autoscalingv2.AbleToScale, autoscalingv2.ScalingActive} {
		cond, ok := conds[t]
		if !ok {
			return fail(l, ev+fmt.Sprintf("; no %s condition yet", t), "the HPA controller has not reconciled it: is kube-controller-manager running?")
		}
		ev += fmt.Sprintf("; %s=%s %s", t, cond.Status, cond.Reason)
		if cond.Status != corev1.ConditionTrue {
			return fail(l, ev+": "+cond.Message, fmt.Sprintf("kubectl -n %s describe hpa %s", c.Namespace, h.Name))
		}
	}
	if value.cur >= 1 && value.target >= 10*value.cur {
		return warn(l, ev, fmt.Sprintf("the target is %.0f× the current value: the HPA will not scale out until the traffic grows that much; the target is requests per second per pod",
			value.target/value.cur))
	}
	return pass(l, ev)
}

type hpaValues struct{ cur, target float64 }

// hpaMetric shows the HPA's first metric, current and target, as quantities and as numbers (per
// pod: a Pods metric's average, an External metric's AverageValue).
func hpaMetric(h *autoscalingv2.HorizontalPodAutoscaler) (current, target string, v hpaValues) {
	current, target = "<unknown>", "?"
	if len(h.Spec.Metrics) == 0 {
		return
	}
	m := h.Spec.Metrics[0]
	var name string
	var tq *resource.Quantity
	switch {
	case m.Pods != nil:
		name, tq = m.Pods.Metric.Name, m.Pods.Target.AverageValue
	case m.External != nil:
		name, tq = m.External.Metric.Name, m.External.Target.AverageValue
		if tq == nil {
			tq = m.External.Target.Value
		}
	default:
		return string(m.Type) + " metric", "?", v
	}
	if tq != nil {
		target, v.target = Quantity(tq.String()), tq.AsApproximateFloat64()
	}
	current = name + " <unknown>"
	for _, cm := range h.Status.CurrentMetrics {
		var q *resource.Quantity
		switch {
		case cm.Pods != nil && cm.Pods.Metric.Name == name:
			q = cm.Pods.Current.AverageValue
		case cm.External != nil && cm.External.Metric.Name == name:
			q = cm.External.Current.AverageValue
			if q == nil {
				q = cm.External.Current.Value
			}
		}
		if q != nil {
			current, v.cur = name+" "+Quantity(q.String()), q.AsApproximateFloat64()
		}
	}
	return current, target, v
}

func podsMetricName(h *autoscalingv2.HorizontalPodAutoscaler) string {
	for _, m := range h.Spec.Metrics {
		if m.Pods != nil {
			return m.Pods.Metric.Name
		}
	}
	return ""
}

// servedCustomMetrics lists what the custom metrics API serves ("pods/avg_requests", …).
func (c *Chain) servedCustomMetrics(ctx context.Context) ([]string, error) {
	body, err := c.Cluster.Raw(ctx, "/apis/custom.metrics.k8s.io/v1beta1")
	if err != nil {
		return nil, err
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range list.APIResources {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	return names, nil
}

func describeMetrics(ms []autoscalingv2.MetricSpec) string {
	var out []string
	for _, m := range ms {
		switch {
		case m.Pods != nil:
			out = append(out, fmt.Sprintf("the Pods metric %s", m.Pods.Metric.Name))
		case m.External != nil:
			out = append(out, fmt.Sprintf("the External metric %s", m.External.Metric.Name))
		default:
			out = append(out, "a "+string(m.Type)+" metric")
		}
	}
	return strings.Join(out, ", ")
}

// scaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject the doctor reads.
type scaledObject struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		ScaleTargetRef struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		Triggers []soTrigger `json:"triggers"`
	} `json:"spec"`
	Status struct {
		HPAName             string             `json:"hpaName"`
		ExternalMetricNames []string           `json:"externalMetricNames"`
		Conditions          []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

type soTrigger struct {
	Type       string            `json:"type"`
	MetricType string            `json:"metricType"`
	Metadata   map[string]string `json:"metadata"`
}

func (so *scaledObject) prometheusTrigger() *soTrigger {
	for i, t := range so.Spec.Triggers {
		if t.Type == "prometheus" {
			return &so.Spec.Triggers[i]
		}
	}
	return nil
}

// findScaledObject returns the ScaledObject that scales the Deployment; nil where there is none
// or KEDA's CRDs are not installed.
func (c *Chain) findScaledObject(ctx context.Context) (*scaledObject, error) {
	body, err := c.Cluster.Raw(ctx, "/apis/keda.sh/v1alpha1/namespaces/"+c.Namespace+"/scaledobjects")
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var list struct {
		Items []scaledObject `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	for i, so := range list.Items {
		if ref := so.Spec.ScaleTargetRef; (ref.Kind == "" || ref.Kind == "Deployment") && ref.Name == c.dep.Name {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// adapterSetup is prometheus-adapter as deployed: its Deployment's args and its rules.
type adapterSetup struct {
	deployment string // namespace/name
	args       adapterArgs
	config     *AdapterConfig
	source     string // where the rules came from: "configmap NS/NAME key KEY"
	err        error
}

// rule returns the first rule that reads the series.
func (a *adapterSetup) rule(series string) *AdapterRule {
	if a == nil || a.config == nil {
		return nil
	}
	for i, r := range a.config.Rules {
		if r.SeriesName() == series {
			return &a.config.Rules[i]
		}
	}
	for i, r := range a.config.Rules {
		if re, err := regexp.Compile(r.Name.Matches); err == nil && r.Name.Matches != "" && re.MatchString(series) {
			return &a.config.Rules[i]
		}
	}
	return nil
}

// findAdapter follows the custom metrics APIService to its Service and to the Deployment behind
// it (its pods match the Service's selector, or, for a selector-less Service, it has the Service's
// name), then reads --config from its container args and the rules from the ConfigMap volume
// mounted there.
func (c *Chain) findAdapter(ctx context.Context) *adapterSetup {
	a := &adapterSetup{args: adapterArgs{relist: defaultRelist}}
	body, err := c.Cluster.Raw(ctx, "/apis/apiregistration.k8s.io/v1/apiservices/"+customMetricsAPI)
	if err != nil {
		a.err = err
		return a
	}
	var as struct {
		Spec struct {
			Service *struct{ Namespace, Name string } `json:"service"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &as); err != nil || as.Spec.Service == nil {
		a.err = fmt.Errorf("APIService %s points at no Service", customMetricsAPI)
		return a
	}
	ns, svcName := as.Spec.Service.Namespace, as.Spec.Service.Name
	var svc corev1.Service
	if err := c.Cluster.get(ctx, objects("v1", ns, "services", svcName), &svc); err != nil {
		a.err = err
		return a
	}
	var deps appsv1.DeploymentList
	if err := c.Cluster.get(ctx, objects("apps/v1", ns, "deployments"), &deps); err != nil {
		a.err = err
		return a
	}
	var dep *appsv1.Deployment
	for i, d := range deps.Items {
		sel := svc.Spec.Selector
		if (len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels))) || (len(sel) == 0 && d.Name == svcName) {
			dep = &deps.Items[i]
			break
		}
	}
	if dep == nil {
		a.err = fmt.Errorf("no Deployment behind service %s/%s", ns, svcName)
		return a
	}
	a.deployment = "deploy/" + dep.Name
	for _, ct := range dep.Spec.Template.Spec.Containers {
		args, err := parseAdapterArgs(append(append([]string{}, ct.Command...), ct.Args...))
		if err != nil {
			a.err = err
			return a
		}
		if args.configPath == "" {
			continue
		}
		a.args = args
		a.config, a.source, a.err = c.readAdapterConfig(ctx, dep, ct, args.configPath)
		return a
	}
	a.err = fmt.Errorf("%s/%s runs without --config", ns, a.deployment)
	return a
}

// readAdapterConfig reads the file at configPath from the ConfigMap volume mounted over it.
func (c *Chain) readAdapterConfig(ctx context.Context, dep *appsv1.Deployment, ct corev1.Container, configPath string) (*AdapterConfig, string, error) {
	for _, m := range ct.VolumeMounts {
		rel, ok := strings.CutPrefix(configPath, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		if m.SubPath != "" {
			rel = m.SubPath
		}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			var cm corev1.ConfigMap
			if err := c.Cluster.get(ctx, objects("v1", dep.Namespace, "configmaps", v.ConfigMap.Name), &cm); err != nil {
				return nil, "", err
			}
			key := path.Base(rel)
			source := fmt.Sprintf("configmap %s/%s key %s", dep.Namespace, cm.Name, key)
			data, ok := cm.Data[key]
			if !ok {
				return nil, "", fmt.Errorf("%s: no such key", source)
			}
			cfg, err := ParseAdapterConfig([]byte(data))
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", source, err)
			}
			return cfg, source, nil
		}
	}
	return nil, "", fmt.Errorf("--config=%s is on no ConfigMap volume of %s/%s", configPath, dep.Namespace, dep.Name)
}

func isNotFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "404") || strings.Contains(strings.ToLower(s), "not found") || strings.Contains(s, "could not find the requested resource")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 3, 64)
}

func sortStrings(s []string) { sort.Strings(s) }

// setString shows a set of names sorted: "pod", or "kubernetes_pod_name, pod".
func setString(set map[string]bool) string {
	var names []string
	for n := range set {
		names = append(names, strconv.Quote(n))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// timeout bounds one run of the doctor.
const timeout = 30 * time.Second

func pass(l Link, ev string) Link { l.Status, l.Evidence = Pass, ev; return l }
func skip(l Link, ev string) Link { l.Status, l.Evidence = Skip, ev; return l }
func warn(l Link, ev, hint string) Link {
	l.Status, l.Evidence, l.Hint = Warn, ev, hint
	return l
}
func fail(l Link, ev, hint string) Link {
	l.Status, l.Evidence, l.Hint = Fail, ev, hint
	return l
}
