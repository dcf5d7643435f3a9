package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The APIServices of the two paths: prometheus-adapter's custom metrics, KEDA's external ones.
const (
	customMetricsAPI   = "v1beta1.custom.metrics.k8s.io"
	externalMetricsAPI = "v1beta1.external.metrics.k8s.io"
)

// apiService is the part of an apiregistration.k8s.io/v1 APIService the doctor reads.
type apiService struct {
	Spec struct {
		Service *struct{ Namespace, Name string } `json:"service"`
	} `json:"spec"`
	Status struct {
		Conditions []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

// apiServiceAnswer is what reading an APIService gave: the object, or why there is none.
type apiServiceAnswer struct {
	as       apiService
	getErr   error // the GET failed: most likely not registered
	parseErr error
}

// apiService reads the APIService name once per run: the adapter's discovery follows it to the
// adapter, and the apiservice link shows its condition.
func (c *Chain) apiService(ctx context.Context, name string) apiServiceAnswer {
	if a, ok := c.apiServices[name]; ok {
		return a
	}
	var a apiServiceAnswer
	body, err := c.Cluster.Raw(ctx, "/apis/apiregistration.k8s.io/v1/apiservices/"+name)
	if a.getErr = err; err == nil {
		a.parseErr = json.Unmarshal(body, &a.as)
	}
	if c.apiServices == nil {
		c.apiServices = map[string]apiServiceAnswer{}
	}
	c.apiServices[name] = a
	return a
}

// checkAPIService: the aggregator reaches the metrics server behind an API group.
func (c *Chain) checkAPIService(ctx context.Context, name, server string) Link {
	l := Link{Name: LinkAPIService}
	a := c.apiService(ctx, name)
	if a.getErr != nil {
		return fail(l, "APIService "+name+": "+a.getErr.Error(), "install "+server+": it registers this APIService")
	}
	if a.parseErr != nil {
		return fail(l, "APIService "+name+": "+a.parseErr.Error(), "")
	}
	target := "a local server"
	if s := a.as.Spec.Service; s != nil {
		target = "service " + s.Namespace + "/" + s.Name
	}
	for _, cond := range a.as.Status.Conditions {
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
	selected, err := c.query(ctx, r.SeriesQuery)
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
		if _, ok := selected[0].Metric[model.LabelName(label)]; !ok || label == "" {
			missing = append(missing, labelOrWhatItMaps(label))
		}
	}
	if len(missing) > 0 {
		return fail(l, fmt.Sprintf("%s selects %d series, but maps the labels %v to resources and the series have no %s (they have %s)",
			desc, len(selected), r.Labels(), strings.Join(missing, ", "), labelNames(selected[:1])),
			"the rule's resources.overrides must name the labels the series carry: namespace and pod with today's Prometheus charts (the original's kubernetes_namespace/kubernetes_pod_name no longer exist)")
	}
	served, err := r.MetricName(string(selected[0].Metric[model.MetricNameLabel]))
	if err != nil {
		return fail(l, desc+": "+err.Error(), "")
	}
	c.served = served
	return pass(l, fmt.Sprintf("%s selects %d series; labels %v; serves pods/%s", desc, len(selected), r.Labels(), served))
}

// labelOrWhatItMaps names a resource label the series lack, or, for a rule that maps none, says so.
func labelOrWhatItMaps(label string) string {
	if label == "" {
		return "resource label"
	}
	return label
}

// checkRelist: the adapter re-lists no more often than Prometheus scrapes, or metrics come and go.
func (c *Chain) checkRelist(ctx context.Context) Link {
	l := Link{Name: LinkRelist}
	global, jobs, err := c.scrapeIntervals(ctx)
	if err != nil {
		return warn(l, "Prometheus' scrape interval: "+err.Error(), "")
	}
	scrape, job := global, ""
	if len(c.samples) > 0 {
		job = string(c.samples[0].Metric["job"])
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

// customMetricName is the custom metric the HPA reads: the one the adapter rule serves, else the
// HPA's own Pods metric.
func (c *Chain) customMetricName() string {
	if c.served == "" && c.hpa != nil {
		return podsMetricName(c.hpa)
	}
	return c.served
}

// checkCustomMetric asks the custom metrics API what `kubectl get --raw …/pods/*/METRIC` shows.
func (c *Chain) checkCustomMetric(ctx context.Context) Link {
	l := Link{Name: LinkCustomMetric}
	name := c.customMetricName()
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

// adapterSetup is prometheus-adapter as deployed: its Deployment's args and its rules.
type adapterSetup struct {
	deployment string // "deploy/NAME"
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
	as := c.apiService(ctx, customMetricsAPI)
	if as.getErr != nil {
		a.err = as.getErr
		return a
	}
	if as.parseErr != nil || as.as.Spec.Service == nil {
		a.err = fmt.Errorf("APIService %s points at no Service", customMetricsAPI)
		return a
	}
	ns, svcName := as.as.Spec.Service.Namespace, as.as.Spec.Service.Name
	var svc corev1.Service
	if err := c.Cluster.get(ctx, objectsPath("v1", ns, "services", svcName), &svc); err != nil {
		a.err = err
		return a
	}
	var deps appsv1.DeploymentList
	if err := c.Cluster.get(ctx, objectsPath("apps/v1", ns, "deployments"), &deps); err != nil {
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
			if err := c.Cluster.get(ctx, objectsPath("v1", dep.Namespace, "configmaps", v.ConfigMap.Name), &cm); err != nil {
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
