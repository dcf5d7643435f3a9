// Package doctor is `anyroute doctor`: it walks the autoscaling chain of one release of the chart,
// from the pods' counter through Prometheus and prometheus-adapter (or KEDA) to the HPA, prints
// one line per link with what it found and a hint, and names the first broken link.
//
// It lives under instrumenting/ because the chain it diagnoses starts there: the counter that
// instrumenting/metrics exports is what Prometheus scrapes, the adapter or KEDA reads and the HPA
// scales on, so a reader following the metrics out of the service finds the doctor beside them. It
// is a library, not part of cmd/, because test/e2e reads its Report and link names; cmd/anyroute
// only wires its flags (doctor_on.go), and the image's build leaves it out (doctor_off.go).
//
// The chain, in order (docs/autoscaling.md, "Debugging"), declared as data in links.go:
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
//
// The files follow the chain's concerns: cluster.go (reading the API server, and the kubeconfig's
// credentials under the run's deadline), workload.go (release, pods, exporter), prometheus.go,
// adapter.go (with the adapter's rules in rules.go), keda.go and hpa.go. With -predict-load, after
// the walk, compare.go compares the release's live timeline, read from Prometheus' history by
// timeline.go, with instrumenting/predict's prediction from the same inputs (predict.Compare).
package doctor

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// Exit codes: 0 every link holds (warnings allowed) and the live timeline agrees with the
// prediction when one is asked for, 1 a link is broken or the timeline left the prediction, 2 bad
// usage or no cluster.
const (
	exitOK       = 0
	exitBroken   = 1
	exitBadUsage = 2
)

// timeout bounds one run of the doctor.
const timeout = 30 * time.Second

// Run is `anyroute doctor ARGS`. Everything it does after reading its flags, the kubeconfig's
// credential plugin included, runs under one deadline: -timeout.
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
	var in predict.Inputs
	in.Register(fs, "predict-load")
	fromValues := fs.Bool("predict", false, "compare as -predict-load does, with the values' own load.stages (load.enabled, load.tool anyroute) as the load; "+
		"without -predict or -predict-load, no comparison is made")
	since := fs.String("since", "", "with -predict-load or -predict: when the load started, an RFC 3339 time or a duration before now (10m); default the load generator's last load_start_time_seconds in the namespace")
	step := fs.Duration("predict-step", 10*time.Second, "with -predict-load or -predict: a reading of the live timeline every this long")
	svgFile := fs.String("svg", "", "with -predict-load or -predict: also draw the prediction with the live readings over it, as an SVG, into this `FILE`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: anyroute doctor [-kubeconfig F] [-namespace N] [-release R] [-prometheus-url U] [-o json]")
		fmt.Fprintln(stderr, "       [-predict-load STAGES.json | -predict] [-since T0] [-svg FILE] [-f VALUES]... [-config CONFIG] [predict's delays]")
		fmt.Fprintln(stderr, "\nWalks the autoscaling chain of one release, one line per link; exits 1 naming the first broken link.")
		fmt.Fprintln(stderr, "With -predict-load it also compares the release's live timeline since the load started with `anyroute predict`'s")
		fmt.Fprintln(stderr, "prediction from the same inputs, and exits 1 naming the link where the run left it; -predict takes the load's stages")
		fmt.Fprintln(stderr, "from the values, as the chart's load pod runs them.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitBadUsage
	}
	compare := in.LoadFile() != "" || *fromValues
	if fs.NArg() > 0 || (*output != "text" && *output != "json") || ((*since != "" || *svgFile != "") && !compare) {
		fs.Usage()
		return exitBadUsage
	}
	start := time.Now()
	var p *predict.Prediction
	var t0 time.Time
	if compare {
		pr, err := in.Predict()
		if err == nil && *since != "" {
			t0, err = ParseSince(*since, start)
		}
		if err == nil && *step < time.Second {
			err = fmt.Errorf("-predict-step %s: want a second or more", *step)
		}
		if err != nil {
			fmt.Fprintln(stderr, "anyroute doctor:", err)
			return exitBadUsage
		}
		p = &pr
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()
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
	chain := &Chain{Cluster: cluster, Namespace: ns, Release: *release, PrometheusURL: *promURL,
		Prometheus: PrometheusGetter(cluster, &http.Client{Timeout: 10 * time.Second})}
	report := chain.Run(ctx)
	code := exitOK
	if p != nil {
		cmp := chain.Compare(ctx, *p, t0, time.Now(), *step)
		if *svgFile != "" {
			if err := writeSVG(*svgFile, *p, cmp.Observed); err != nil {
				fmt.Fprintln(stderr, "anyroute doctor:", err)
				code = exitBadUsage
			}
		}
	}
	if *output == "json" {
		if err := report.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "anyroute doctor:", err)
		}
	} else {
		report.writeText(stdout)
	}
	if !report.Healthy || report.Comparison.Diverged() {
		return exitBroken
	}
	return code
}
