//go:build external

package test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/instrumenting/doctor"
	"github.com/anyroute/anyroute/instrumenting/predict"
	"github.com/anyroute/anyroute/test/kit"
)

// The doctor's comparison on the links that need no cluster: anyroute serving `anyroute load`'s
// stages (a 10 s ramp to 20 requests/s, held 30 s), both scraped every second by a real
// Prometheus as the chart's pod job labels them, read back the way `anyroute doctor
// -predict-load` reads a release (doctor.TimelineSource), and compared with `anyroute predict`'s
// prediction from the same stages (predict.Inputs, the doctor's flags). The one run agrees with
// its own prediction, and each wrong input alone is named by its link:
//
//   - stages at half the rate: load;
//   - a Prometheus that holds the pod's series under kubernetes_namespace/kubernetes_pod_name (the
//     original's relabelling), so that no series names the release's pods: prometheus;
//   - an adapter rule over 2m where the prediction's is over 20s: metric.
//
// The HPA's count and the Ready pods' link need a cluster: the e2e holds those (test/e2e).
func TestDoctorComparesTheLiveTimeline(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const stagesJSON = `{"stages": [{"duration": "10s", "target_rate": %s}, {"duration": "30s", "target_rate": %s}]}`
	stages := write("stages.json", strings.ReplaceAll(stagesJSON, "%s", "20"))
	halfStages := write("half.json", strings.ReplaceAll(stagesJSON, "%s", "10"))
	// A target far above the load: one pod throughout, so the model's pods are the live one.
	overlay := write("values.yaml", "hpa:\n  metric:\n    targetAverageValue: \"100\"\n")
	adapter := write("adapter.yaml", "metricsRelistInterval: 5s\nrules:\n  custom:\n    - seriesQuery: 'app_requests_total{namespace!=\"\",pod!=\"\"}'\n"+
		"      metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[20s])) by (<<.GroupBy>>)\n")
	prediction := func(load string) predict.Prediction {
		t.Helper()
		var in predict.Inputs
		fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
		in.Register(fs, "predict-load")
		if err := fs.Parse([]string{"-chart", kit.RepoPath(t, "deployments", "helm", "anyroute"),
			"-f", kit.RepoPath(t, "deployments", "helm", "values-demo.yaml"), "-f", overlay, "-adapter", adapter,
			"-predict-load", load, "-scrape-interval", "1s", "-sync", "3s", "-after", "20s"}); err != nil {
			t.Fatal(err)
		}
		p, err := in.Predict()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	right, half := prediction(stages), prediction(halfStages)

	srv := start(t, "")
	loadMetrics := kit.FreeAddr(t)
	pod := "anyroute-5d8f7c9b4-x2kqp"
	loadJob := kit.ScrapeJob{Name: "load", Targets: []kit.ScrapeTarget{
		{Addr: loadMetrics, Labels: map[string]string{"namespace": "demo", "pod": "anyroute-load-7f9c6d5b8-m3n4p"}}}}
	admin := strings.TrimPrefix(srv.admin, "http://")
	proms := map[string]*kit.Prometheus{
		"pod labels": kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: []kit.ScrapeJob{loadJob,
			{Name: "kubernetes-pods", Targets: []kit.ScrapeTarget{{Addr: admin, Labels: map[string]string{"namespace": "demo", "pod": pod}}}}}}),
		"old labels": kit.StartPrometheus(t, kit.PrometheusOptions{Jobs: []kit.ScrapeJob{loadJob,
			{Name: "kubernetes-pods", Targets: []kit.ScrapeTarget{{Addr: admin, Labels: map[string]string{"kubernetes_namespace": "demo", "kubernetes_pod_name": pod}}}}}}),
	}
	for _, p := range proms {
		p.WaitEquals(t, `up{job="kubernetes-pods"}`, 1, 20*time.Second)
	}

	t0 := time.Now().Truncate(time.Millisecond)
	cmd := exec.Command(plainBinary, "load", "-stages", stages, "-metrics.addr", loadMetrics, "-linger", "5m", "-progress", "off", srv.api+"/api/hello")
	cmd.Env = kit.Env()
	var loadOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &loadOut, &loadOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitCmd(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("anyroute load's output:\n%s", loadOut.String())
		}
	})
	// 10 s at 10/s on average and 30 s at 20/s: 700 requests, all scraped.
	for _, p := range proms {
		p.WaitEquals(t, `load_sent_requests_total`, 700, 90*time.Second)
	}
	// The load's T+0 as the doctor finds it without -since: the run's own start, which the load
	// generator exports. It is after the test started the process, by its start-up at most.
	for name, p := range proms {
		v, ok, err := p.Value(t.Context(), `max(max_over_time(load_start_time_seconds{namespace="demo"}[1d]))`, time.Time{})
		started := time.Unix(0, int64(v*1e9))
		if err != nil || !ok || started.Before(t0) || started.After(t0.Add(10*time.Second)) {
			t.Fatalf("%s: load_start_time_seconds %v (%v, %v); the process started at %s", name, started, ok, err, t0)
		}
		t0 = started
	}
	// Let the timeline run on past the load's end, where the rates fall to 0 as predicted.
	time.Sleep(time.Until(t0.Add(50 * time.Second)))
	now := time.Now()

	pods := `namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+"`
	rule := "sum(rate(<<.Series>>{<<.LabelMatchers>>}[20s])) by (<<.GroupBy>>)"
	read := func(prom *kit.Prometheus, rule string) doctor.Timeline {
		t.Helper()
		metric, err := doctor.MetricQueryOf(doctor.PathAdapter, rule, "", "app_requests_total", pods)
		if err != nil {
			t.Fatal(err)
		}
		src := doctor.TimelineSource{Prom: prom.API, Series: "app_requests_total", Pods: pods, LoadMatchers: `namespace="demo"`,
			LoadWindow: 4 * time.Second, ServedWindow: right.Delays.RateWindow, MetricQuery: metric}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tl, err := src.Read(ctx, t0, now, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	live := read(proms["pod labels"], rule)
	if live.RateFrom != "load_sent_requests_total" || len(live.Observed) < 24 {
		t.Fatalf("read %d readings, the rate from %s", len(live.Observed), live.RateFrom)
	}
	// The readings hold the run: the load's held rate, Prometheus' served rate and the metric.
	held := live.Observed[len(live.Observed)/2]
	if !held.HasRate || held.Rate < 15 || held.Rate > 25 || !held.HasServed || held.Served < 15 || !held.HasMetric || held.Ready != 1 {
		t.Errorf("at T+%s in the held stage: %+v", held.T, held)
	}
	if right.Delays.RateWindow != 20*time.Second {
		t.Fatalf("the prediction's rate window is %s, want the adapter file's 20s", right.Delays.RateWindow)
	}

	for _, c := range []struct {
		name string
		p    predict.Prediction
		tl   doctor.Timeline
		link string // "" agrees
	}{
		{"the run against its prediction", right, live, ""},
		{"stages at half the rate", half, live, "load"},
		{"a Prometheus with the original's pod labels", right, read(proms["old labels"], rule), "prometheus"},
		{"an adapter rule over 2m", right, read(proms["pod labels"], strings.Replace(rule, "[20s]", "[2m]", 1)), "metric"},
	} {
		div, found := predict.Compare(c.p, c.tl.Observed, predict.ToleranceFor(c.p))
		switch {
		case c.link == "" && found:
			t.Errorf("%s: diverges: %s\nreadings: %+v", c.name, div, c.tl.Observed)
		case c.link != "" && !found:
			t.Errorf("%s: agrees, want the %s link named", c.name, c.link)
		case c.link != "" && div.Link != c.link:
			t.Errorf("%s: %s, want the %s link\nreadings: %+v", c.name, div, c.link, c.tl.Observed)
		default:
			t.Logf("%s: %v %s", c.name, found, div)
		}
	}
}
