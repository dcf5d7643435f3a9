// Package doctor is `anyroute doctor`: it walks the autoscaling chain of one release of the chart,
// from the pods' counter through Prometheus and prometheus-adapter (or KEDA) to the HPA, prints
// one line per link with what it found and a hint, and names the first broken link.
//
// The chain, in order (docs/autoscaling.md, "Debugging"):
//
//	release         the release's Deployment and its autoscaler: the chart's HPA, or a KEDA ScaledObject
//	pods            the Deployment's pods, Ready
//	exporter        each Ready pod's admin port (through the API server's pod proxy) exports app_requests_total
//	prometheus      Prometheus holds the series, with namespace and pod labels naming the pods
//	apiservice      the custom (or external) metrics APIService is Available
//	adapter-rule    the adapter rule that reads the series selects them, and maps the labels they carry
//	relist          the adapter re-lists no more often than Prometheus scrapes
//	custom-metric   custom.metrics.k8s.io …/pods/*/avg_requests answers one value per pod
//	keda-query      (KEDA) the ScaledObject's query answers in Prometheus
//	scaledobject    (KEDA) the ScaledObject is Ready; Active shown
//	external-metric (KEDA) external.metrics.k8s.io answers the ScaledObject's metric
//	hpa             the HPA asks for a served metric, AbleToScale and ScalingActive, its target within reach
package doctor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Exit codes: 0 every link holds (warnings allowed), 1 a link is broken, 2 bad usage or no cluster.
const (
	exitOK       = 0
	exitBroken   = 1
	exitBadUsage = 2
)

// Run is `anyroute doctor ARGS`.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("anyroute doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file; default as kubectl: $KUBECONFIG, ~/.kube/config, else the in-cluster service account")
	kubeContext := fs.String("context", "", "kubeconfig context; default its current context")
	namespace := fs.String("namespace", "", "the release's namespace; default the context's namespace")
	release := fs.String("release", "anyroute", "the helm release")
	promURL := fs.String("prometheus-url", "", "Prometheus base URL; default the adapter's --prometheus-url or the ScaledObject's serverAddress. "+
		"An in-cluster http://NAME.NAMESPACE.svc[:PORT] is reached through the API server's service proxy")
	output := fs.String("o", "text", "output: text or json")
	limit := fs.Duration("timeout", timeout, "time for the whole check")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: anyroute doctor [-kubeconfig F] [-namespace N] [-release R] [-prometheus-url U] [-o json]")
		fmt.Fprintln(stderr, "\nWalks the autoscaling chain of one release, one line per link; exits 1 naming the first broken link.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitBadUsage
	}
	if fs.NArg() > 0 || (*output != "text" && *output != "json") {
		fs.Usage()
		return exitBadUsage
	}
	cfg, ns, err := restConfig(*kubeconfig, *kubeContext)
	if err != nil {
		fmt.Fprintln(stderr, "anyroute doctor:", err)
		return exitBadUsage
	}
	if *namespace != "" {
		ns = *namespace
	}
	cluster, err := NewCluster(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "anyroute doctor:", err)
		return exitBadUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
	chain := &Chain{Cluster: cluster, Namespace: ns, Release: *release, PrometheusURL: *promURL,
		Prometheus: PrometheusGetter(cluster, &http.Client{Timeout: 10 * time.Second})}
	report := chain.Run(ctx)
	if *output == "json" {
		if err := report.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "anyroute doctor:", err)
		}
	} else {
		report.writeText(stdout)
	}
	if !report.Healthy {
		return exitBroken
	}
	return exitOK
}

// restConfig resolves the cluster as kubectl does: an explicit file, else $KUBECONFIG, else
// ~/.kube/config, else the pod's service account (in-cluster). It returns the context's namespace.
func restConfig(kubeconfig, kubeContext string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, "", errors.New("no cluster: no -kubeconfig, no $KUBECONFIG, no ~/.kube/config and not in a pod")
		}
		return nil, "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	cfg.Timeout = 15 * time.Second
	return cfg, ns, nil
}

// NewCluster makes the doctor's client for a rest config: client-go's HTTP client for it (TLS,
// tokens, exec plugins), GETs against its server.
func NewCluster(cfg *rest.Config) (Cluster, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return Cluster{}, err
	}
	server, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return Cluster{}, err
	}
	return Cluster{Raw: httpGetter(server.String(), client, false)}, nil
}

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
		proxy := fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s:%s/proxy%s", parts[1], u.Scheme, parts[0], port, strings.TrimRight(u.Path, "/"))
		return func(ctx context.Context, p string) ([]byte, error) { return cluster.Raw(ctx, proxy+p) }
	}
}
