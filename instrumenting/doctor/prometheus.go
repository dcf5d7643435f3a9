package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// PrometheusGetter returns how to reach a Prometheus URL: directly, or for an in-cluster Service
// address (NAME.NAMESPACE.svc[.cluster.local], NAME.NAMESPACE) through the API server's service
// proxy, which works from outside the cluster.
func PrometheusGetter(cluster Cluster, client *http.Client) func(string) Getter {
	return func(raw string) Getter {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return func(context.Context, string) ([]byte, error) {
				return nil, fmt.Errorf("prometheus URL %q: not an absolute URL", raw)
			}
		}
		parts := strings.Split(u.Hostname(), ".")
		inCluster := len(parts) == 2 || (len(parts) >= 3 && parts[2] == "svc")
		if !inCluster || strings.Trim(u.Hostname(), "0123456789.") == "" {
			return HTTPGetter(raw, client)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443"}[u.Scheme]
			if port == "" {
				port = "80"
			}
		}
		// The URL may come from the cluster (the adapter's flags, a ScaledObject's serverAddress)
		// and goes out with the user's credentials: its path stays under the service proxy.
		service := fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s:%s/proxy", parts[1], u.Scheme, parts[0], port)
		proxy, ok := pathUnder(service, u.Path)
		if !ok {
			return func(context.Context, string) ([]byte, error) {
				return nil, fmt.Errorf("prometheus URL %q: its path leaves the service proxy %s", raw, service)
			}
		}
		proxy = strings.TrimRight(proxy, "/")
		return func(ctx context.Context, p string) ([]byte, error) { return cluster.Raw(ctx, proxy+p) }
	}
}

// prometheusAPI is client_golang's Prometheus API client over a Getter, so a Prometheus behind
// the API server's service proxy is asked exactly as a direct one, and a failed request names its
// URL and status as the cluster's do.
func prometheusAPI(get Getter) v1.API {
	return v1.NewAPI(getterClient{get})
}

// getterClient is client_golang's api.Client over a Getter. client_golang POSTs a query's
// arguments as a form (falling back to GET where POST is refused); the doctor only reads, so it
// sends them as a GET's query string: a Prometheus behind the service proxy then needs no more
// than the get verb on services/proxy, and the query shows in the URL an error names.
type getterClient struct {
	get Getter
}

var _ api.Client = getterClient{}

// URL is the endpoint's path with its :arguments filled in; the Getter holds the base.
func (g getterClient) URL(ep string, args map[string]string) *url.URL {
	segments := strings.Split(ep, "/")
	for i, s := range segments {
		if v, ok := args[strings.TrimPrefix(s, ":")]; ok && strings.HasPrefix(s, ":") {
			segments[i] = v
		}
	}
	return &url.URL{Path: strings.Join(segments, "/")}
}

// Do GETs the request's path, with a POSTed form as its query string, and answers 200 with the
// body, or the Getter's error.
func (g getterClient) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	query := req.URL.RawQuery
	if req.Body != nil {
		form, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, nil, err
		}
		query = string(form)
	}
	p := req.URL.Path
	if query != "" {
		p += "?" + query
	}
	body, err := g.get(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{}, Request: req}, body, nil
}

// query evaluates an instant PromQL query; only vector answers are expected.
func (c *Chain) query(ctx context.Context, q string) (model.Vector, error) {
	value, _, _, err := c.prom.Query(ctx, q, time.Time{})
	var refused *v1.Error
	if errors.As(err, &refused) {
		return nil, fmt.Errorf("prometheus refused %s: %s", q, refused.Msg)
	}
	if err != nil {
		return nil, err
	}
	vector, ok := value.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("%s gives a %s, not an instant vector", q, value.Type())
	}
	return vector, nil
}

// scrapeIntervals reads Prometheus' loaded configuration: the global scrape interval and each
// job's own.
func (c *Chain) scrapeIntervals(ctx context.Context) (global time.Duration, jobs map[string]time.Duration, err error) {
	loaded, err := c.prom.Config(ctx)
	if err != nil {
		return 0, nil, err
	}
	var cfg struct {
		Global struct {
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"global"`
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(loaded.YAML), &cfg); err != nil {
		return 0, nil, fmt.Errorf("prometheus config: %w", err)
	}
	global = time.Minute // Prometheus' default
	if cfg.Global.ScrapeInterval != "" {
		if global, err = parsePromDuration(cfg.Global.ScrapeInterval); err != nil {
			return 0, nil, err
		}
	}
	jobs = map[string]time.Duration{}
	for _, sc := range cfg.ScrapeConfigs {
		d := global
		if sc.ScrapeInterval != "" {
			if d, err = parsePromDuration(sc.ScrapeInterval); err != nil {
				return 0, nil, err
			}
		}
		jobs[sc.JobName] = d
	}
	return global, jobs, nil
}

// parsePromDuration reads the durations Prometheus writes ("15s", "1m", "1d", "1m30s").
func parsePromDuration(s string) (time.Duration, error) {
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return time.Duration(d), nil
}

// labelNames describes samples by metric name and label names: "app_requests_total{code,job,…}".
func labelNames(samples model.Vector) string {
	var out []string
	for _, s := range samples {
		var names []string
		for k := range s.Metric {
			if k != model.MetricNameLabel {
				names = append(names, string(k))
			}
		}
		slices.Sort(names)
		d := string(s.Metric[model.MetricNameLabel]) + "{" + strings.Join(names, ",") + "}"
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return strings.Join(out, " ")
}

// checkPrometheus asks Prometheus for the counter's series and checks they carry the namespace
// and pod labels, with the release's pod names.
func (c *Chain) checkPrometheus(ctx context.Context) Link {
	l := Link{Name: LinkPrometheus}
	if c.prom == nil {
		return fail(l, "no Prometheus URL: none given, and none found in the "+c.readerName(),
			"pass -prometheus-url http://HOST:PORT (or an in-cluster http://NAME.NAMESPACE.svc:PORT)")
	}
	all, err := c.query(ctx, c.series)
	if err != nil {
		return fail(l, err.Error(), "is "+c.report.Prometheus+" the Prometheus that scrapes the pods?")
	}
	names := map[string]bool{}
	for _, p := range c.pods {
		names[p.Name] = true
	}
	var mine model.Vector
	podLabels, nsLabels := map[string]bool{}, map[string]bool{}
	seen := map[string]bool{}
	for _, s := range all {
		podLabel := ""
		for k, v := range s.Metric {
			if names[string(v)] {
				podLabel = string(k)
				seen[string(v)] = true
			}
		}
		if podLabel == "" {
			continue
		}
		mine = append(mine, s)
		podLabels[podLabel] = true
		for k, v := range s.Metric {
			if string(v) == c.Namespace && string(k) != podLabel {
				nsLabels[string(k)] = true
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
		len(mine), c.series, len(seen), quotedSet(podLabels), quotedSet(nsLabels), mine[0].Metric["job"])
	if len(podLabels) != 1 || !podLabels["pod"] || len(nsLabels) != 1 || !nsLabels["namespace"] {
		return fail(l, ev, "the series carry the pod and namespace under other labels than namespace and pod, which the prometheus-adapter rule and the chart's KEDA query use: "+
			"today's prometheus-community chart (kubernetes-pods job) and the Prometheus Operator write namespace and pod; fix the scrape's relabelling, or the rule's overrides with it")
	}
	if len(unscraped) > 0 {
		return warn(l, ev+"; not yet for "+strings.Join(unscraped, ", "), "a new pod's series appears after its first scrape")
	}
	return pass(l, ev)
}

// quotedSet shows a set of names sorted and quoted: "pod", or "kubernetes_pod_name", "pod".
func quotedSet(set map[string]bool) string {
	if len(set) == 0 {
		return "none"
	}
	var names []string
	for _, n := range slices.Sorted(maps.Keys(set)) {
		names = append(names, strconv.Quote(n))
	}
	return strings.Join(names, ", ")
}
