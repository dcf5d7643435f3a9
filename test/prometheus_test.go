//go:build external

package test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// startPrometheus runs a real Prometheus scraping target every second with the pod labels the
// prometheus-community chart gives pods.
func startPrometheus(t *testing.T, target, namespace, pod string) *kit.Prometheus {
	t.Helper()
	return kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: []kit.ScrapeJob{{Name: "anyroute", Targets: []kit.ScrapeTarget{
		{Addr: target, Labels: map[string]string{"namespace": namespace, "pod": pod}}}}}})
}

// TestPrometheusScrapesExactCountsAndRate has a real Prometheus scrape the admin port while a
// steady load runs, then checks the total it stored and the rate PromQL computes from it.
func TestPrometheusScrapesExactCountsAndRate(t *testing.T) {
	p := start(t, metricsConfig)
	prom := startPrometheus(t, strings.TrimPrefix(p.admin, "http://"), "demo", "anyroute-0")
	prom.WaitEquals(t, `up{job="anyroute"}`, 1, 15*time.Second) // the first scrape

	const rate, seconds = 40, 12
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	sent := 0
	for range rate * seconds {
		<-tick.C
		go func() { _, _ = kit.Get(p.api + "/orders/1") }()
		sent++
	}
	loadEnd := time.Now()

	// Two flush intervals and two scrapes later, Prometheus holds the exact total.
	prom.WaitEquals(t, `sum(app_requests_total{namespace="demo",pod="anyroute-0"})`, float64(sent), 15*time.Second)

	// The rate over the steady part of the load is what was sent, within the jitter of the
	// one-second flush and scrape.
	q := `sum(rate(app_requests_total{route="orders"}[8s]))`
	got, ok, err := prom.Value(context.Background(), q, loadEnd.Add(-time.Second))
	if err != nil || !ok {
		t.Fatalf("%s: %v (a sample: %v)", q, err, ok)
	}
	if math.Abs(got-rate)/rate > 0.2 {
		t.Fatalf("rate over the load: %.1f/s, sent %d/s", got, rate)
	}
	t.Logf("sent %d at %d/s: Prometheus has all of them, rate %.1f/s", sent, rate, got)
}

func TestMetricsPassPromtool(t *testing.T) {
	promtool := kit.SystemTool(t, "promtool")
	p := start(t, metricsConfig)
	load(t, 50, 4, func(i int) (string, string) { return "GET", p.api + "/orders/1" })
	waitCounts(t, p, 50, 1200*time.Millisecond) // the request series are on /metrics
	body := mustGet(t, p.admin+"/metrics")
	_, err := kit.Run(context.Background(), kit.Cmd{Path: promtool, Args: []string{"check", "metrics"}, Stdin: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("promtool check metrics: %v", err)
	}
}
