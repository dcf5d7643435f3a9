package doctor

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const defaultSeries = "app_requests_total"

// checkRelease finds the release's server Deployment and the autoscaler that scales it: the
// chart's HPA (prometheus-adapter path) or a KEDA ScaledObject.
func (c *Chain) checkRelease(ctx context.Context) Link {
	l := Link{Name: LinkRelease}
	sel := "app.kubernetes.io/instance=" + c.Release + ",app.kubernetes.io/component=server"
	var deps appsv1.DeploymentList
	if err := c.Cluster.get(ctx, withLabelSelector(objectsPath("apps/v1", c.Namespace, "deployments"), sel), &deps); err != nil {
		return fail(l, "listing Deployments: "+err.Error(), "check the kubeconfig's cluster and credentials (-kubeconfig, KUBECONFIG)")
	}
	if len(deps.Items) != 1 {
		return fail(l, fmt.Sprintf("%d Deployments labelled %s in namespace %s", len(deps.Items), sel, c.Namespace),
			"-release names the helm release and -namespace its namespace: `helm list -A` shows both")
	}
	c.dep = &deps.Items[0]
	sos, err := c.scaledObjects(ctx)
	if err != nil {
		return fail(l, fmt.Sprintf("deploy/%s; reading ScaledObjects: %v", c.dep.Name, err), "")
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := c.Cluster.get(ctx, objectsPath("autoscaling/v2", c.Namespace, "horizontalpodautoscalers"), &hpas); err != nil {
		return fail(l, fmt.Sprintf("deploy/%s; listing HPAs: %v", c.dep.Name, err), "")
	}
	owner := ""
	for _, h := range hpas.Items {
		if ref := h.Spec.ScaleTargetRef; ref.Kind == "Deployment" && ref.Name == c.dep.Name && owner == "" {
			owner = scaledObjectOwner(&h)
		}
	}
	c.so = c.scaledObjectFor(sos, owner)
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
	case c.hpa != nil && kedaMade(c.hpa):
		c.report.Path = PathKEDA
		made := "on " + describeMetrics(c.hpa.Spec.Metrics)
		if n := scaledObjectOwner(c.hpa); n != "" {
			made = "owned by the ScaledObject " + n
		}
		return warn(l, fmt.Sprintf("deploy/%s, scaled by the HPA %s, KEDA's (%s), but no ScaledObject that scales it was read", c.dep.Name, c.hpa.Name, made),
			fmt.Sprintf("the KEDA links read the ScaledObject: kubectl -n %s get scaledobjects.keda.sh (the doctor's credentials must list them)", c.Namespace))
	case c.hpa != nil:
		c.report.Path = PathAdapter
		return pass(l, fmt.Sprintf("deploy/%s, scaled by the HPA %s on %s", c.dep.Name, c.hpa.Name, describeMetrics(c.hpa.Spec.Metrics)))
	}
	return fail(l, fmt.Sprintf("deploy/%s has no HPA and no ScaledObject", c.dep.Name),
		"install the chart with hpa.enabled=true (prometheus-adapter) or keda.enabled=true (KEDA)")
}

func ownedBy(refs []metav1.OwnerReference, kind, name string) bool {
	return slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return r.Kind == kind && r.Name == name })
}

// discover reads what the later links compare: the adapter's Deployment, rules and Prometheus
// URL (adapter path; never on the KEDA path, KEDA's HPA found without its ScaledObject included),
// the name of the counter the autoscaler reads, and the Prometheus to ask.
func (c *Chain) discover(ctx context.Context) {
	c.series = defaultSeries
	url := c.PrometheusURL
	switch {
	case c.so != nil:
		if t := c.so.prometheusTrigger(); t != nil {
			if m := counterInQuery.FindString(t.Metadata["query"]); m != "" {
				c.series = m
			}
			if url == "" {
				url = t.Metadata["serverAddress"]
			}
		}
	case c.path() == PathAdapter:
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
		c.prom = prometheusAPI(c.Prometheus(url))
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
	if err := c.Cluster.get(ctx, withLabelSelector(objectsPath("v1", c.Namespace, "pods"), sel.String()), &list); err != nil {
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
	slices.SortFunc(c.pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(ready)
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
	var evidence, idle, missing []string
	prefix := strings.TrimSuffix(c.series, "_requests_total")
	others := map[string]bool{}
	for _, p := range c.pods {
		port := metricsPort(&p)
		if port == "" {
			return fail(l, "pod "+p.Name+": no prometheus.io/port annotation and no container port named admin",
				"the chart sets both; without them nothing scrapes the pod")
		}
		proxy, err := podMetricsPath(c.Namespace, &p, port)
		if err != nil {
			return fail(l, "pod "+p.Name+": "+err.Error(),
				"prometheus.io/path names the path of the pod's metrics on its port, e.g. /metrics; the doctor reads nothing outside the pod")
		}
		body, err := c.Cluster.Raw(ctx, proxy)
		if err != nil {
			return fail(l, fmt.Sprintf("pod %s: %v", p.Name, err),
				fmt.Sprintf("the admin listener must answer on the pod IP %s port %s (anyroute -admin.addr :%s)", p.Status.PodIP, port, port))
		}
		n, total, prefixes := scanCounter(string(body), c.series)
		switch {
		case n > 0:
			evidence = append(evidence, fmt.Sprintf("%s %d series, %s requests", p.Name, n, formatFloat(total)))
		case slices.Contains(prefixes, prefix):
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
		names := slices.Sorted(maps.Keys(others))
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
	if c.path() == PathKEDA {
		return "ScaledObject's query"
	}
	return "prometheus-adapter rule"
}

// podMetricsPath is the API server's pod proxy path to a pod's metrics on port: the path its
// prometheus.io/path annotation names, else /metrics. The annotation is anyone's who may label a
// pod, and the doctor's GET goes out with the user's credentials: a path that climbs out of the
// proxy (`../../..`, in any percent-encoding) would read any API path the user may read, and an
// absolute URL, a query or a fragment is no path of the pod. The path is cleaned, as Prometheus'
// scrape of it would be, and refused unless it stays under the proxy.
func podMetricsPath(namespace string, p *corev1.Pod, port string) (string, error) {
	proxy := fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:%s/proxy", namespace, p.Name, port)
	annotation := p.Annotations["prometheus.io/path"]
	if annotation == "" {
		annotation = "/metrics"
	}
	u, err := url.Parse(annotation)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		strings.HasPrefix(annotation, "//") {
		return "", fmt.Errorf("prometheus.io/path %q is not a plain path", annotation)
	}
	joined, ok := pathUnder(proxy, u.Path)
	if !ok {
		return "", fmt.Errorf("prometheus.io/path %q leaves the pod proxy %s", annotation, proxy)
	}
	return joined, nil
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
	for line := range strings.SplitSeq(text, "\n") {
		if m := buildInfo.FindStringSubmatch(line); m != nil && !slices.Contains(prefixes, m[1]) {
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
