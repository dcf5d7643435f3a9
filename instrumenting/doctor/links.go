package doctor

import (
	"context"
	"math"
	"strconv"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
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

// chainLink declares one link of the chain, as linkerd's pkg/healthcheck declares its checkers: the
// walk (Chain.Run) reads the table, so the order of the links, which path each belongs to, and
// when one is skipped are data here rather than the order of statements in a function.
type chainLink struct {
	name string
	// path is the path the link belongs to (PathAdapter, PathKEDA); "" for both.
	path string
	// needs is what the link cannot be checked without; the first one missing skips it, saying so.
	needs []need
	check func(c *Chain, ctx context.Context) Link
	// endsWithout, when set and missing after the check, ends the walk: every later link hangs
	// off it, and a report of skips would only repeat that.
	endsWithout *need
	// then runs after the check when the walk goes on: it finds what later links compare.
	then func(c *Chain, ctx context.Context)
}

// need is something a link reads that an earlier one finds; missing is the skipped link's evidence.
type need struct {
	missing string
	met     func(c *Chain) bool
}

var (
	needDeployment = need{"no Deployment", func(c *Chain) bool { return c.dep != nil }}
	needReadyPod   = need{"no Ready pod", func(c *Chain) bool { return len(c.pods) > 0 }}
	needPrometheus = need{"no Prometheus", func(c *Chain) bool { return c.prom != nil }}
	needAdapter    = need{"the adapter's Deployment was not found", func(c *Chain) bool { return c.adapter.deployment != "" }}
	needMetricName = need{"no metric name from the rule or the HPA", func(c *Chain) bool { return c.customMetricName() != "" }}
	// needScaledObject: the KEDA path found by KEDA's HPA alone (kedaMade), its ScaledObject unread.
	needScaledObject = need{"no ScaledObject read: the release link names KEDA's HPA", func(c *Chain) bool { return c.so != nil }}
)

// chainLinks is the chain, in order; each path walks the links with its name or none.
var chainLinks = []chainLink{
	{name: LinkRelease, check: (*Chain).checkRelease, endsWithout: &needDeployment, then: (*Chain).discover},
	{name: LinkPods, check: (*Chain).checkPods},
	{name: LinkExporter, needs: []need{needReadyPod}, check: (*Chain).checkExporter},
	{name: LinkPrometheus, check: (*Chain).checkPrometheus},

	{name: LinkKEDAQuery, path: PathKEDA, needs: []need{needScaledObject, needPrometheus}, check: (*Chain).checkKEDAQuery},
	{name: LinkAPIService, path: PathKEDA, check: func(c *Chain, ctx context.Context) Link {
		return c.checkAPIService(ctx, externalMetricsAPI, "KEDA's metrics server (keda-operator-metrics-apiserver)")
	}},
	{name: LinkScaledObject, path: PathKEDA, needs: []need{needScaledObject}, check: (*Chain).checkScaledObject},
	{name: LinkExternalMetric, path: PathKEDA, needs: []need{needScaledObject}, check: (*Chain).checkExternalMetric},

	{name: LinkAPIService, path: PathAdapter, check: func(c *Chain, ctx context.Context) Link {
		return c.checkAPIService(ctx, customMetricsAPI, "prometheus-adapter")
	}},
	{name: LinkAdapterRule, path: PathAdapter, needs: []need{needPrometheus}, check: (*Chain).checkAdapterRule},
	{name: LinkRelist, path: PathAdapter, needs: []need{needAdapter, needPrometheus}, check: (*Chain).checkRelist},
	{name: LinkCustomMetric, path: PathAdapter, needs: []need{needMetricName}, check: (*Chain).checkCustomMetric},

	{name: LinkHPA, check: (*Chain).checkHPA},
}

// Chain walks the chain for one release. Prometheus makes a Getter for a Prometheus URL (direct,
// or through the API server's service proxy for an in-cluster address).
type Chain struct {
	Cluster       Cluster
	Namespace     string
	Release       string
	PrometheusURL string
	Prometheus    func(url string) Getter

	report      *Report
	dep         *appsv1.Deployment
	hpa         *autoscalingv2.HorizontalPodAutoscaler
	so          *scaledObject
	pods        []corev1.Pod // the ready ones
	series      string       // the counter's name the autoscaler reads
	prom        v1.API
	adapter     *adapterSetup
	samples     model.Vector // the counter's series for the pods, as Prometheus holds them
	served      string       // the custom metric the adapter rule serves
	apiServices map[string]apiServiceAnswer
}

// Run checks every link of the release's path and returns the report.
func (c *Chain) Run(ctx context.Context) *Report {
	c.report = &Report{Namespace: c.Namespace, Release: c.Release}
	for _, l := range chainLinks {
		if l.path != "" && l.path != c.path() {
			continue
		}
		c.report.add(c.checkLink(ctx, l))
		if l.endsWithout != nil && !l.endsWithout.met(c) {
			break
		}
		if l.then != nil {
			l.then(c, ctx)
		}
	}
	c.report.finish()
	return c.report
}

// checkLink checks one link, or skips it naming the first thing it needs that is missing.
func (c *Chain) checkLink(ctx context.Context, l chainLink) Link {
	for _, n := range l.needs {
		if !n.met(c) {
			return skip(Link{Name: l.name}, n.missing)
		}
	}
	return l.check(c, ctx)
}

// path is the path the release's autoscaler takes, as the cluster shows it: KEDA when a
// ScaledObject scales the Deployment, or when its HPA is KEDA's (kedaMade) though no ScaledObject
// could be read; else prometheus-adapter. Taking the adapter for granted would read the adapter's
// metric of a release KEDA scales, which has none.
func (c *Chain) path() string {
	if c.so != nil || (c.hpa != nil && kedaMade(c.hpa)) {
		return PathKEDA
	}
	return PathAdapter
}

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

// formatFloat shows a sample's value: whole numbers without decimals, others with three.
func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 3, 64)
}
