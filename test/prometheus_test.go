package test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// prometheus is a real Prometheus server run by a test.
type prometheus struct {
	url  string
	logs *syncBuffer
}

// startPrometheus runs Debian's prometheus on a free loopback port, scraping target every second
// with the pod labels the prometheus-community chart gives pods.
func startPrometheus(t *testing.T, target, namespace, pod string) *prometheus {
	t.Helper()
	bin := lookTool(t, "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: anyroute
    static_configs:
      - targets: [%q]
        labels: {namespace: %q, pod: %q}
`, target, namespace, pod)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logs := &syncBuffer{}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	p := &prometheus{url: "http://" + addr, logs: logs}
	waitFor(t, 20*time.Second, "prometheus ready", func() bool {
		code, _ := get(p.url + "/-/ready")
		return code == 200
	})
	return p
}

// query evaluates an instant PromQL query at ts and returns its single scalar-like value, or NaN
// when the result is empty.
func (p *prometheus) query(t *testing.T, q string, ts time.Time) float64 {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)}}
	code, body := get(p.url + "/api/v1/query?" + v.Encode())
	if code != 200 {
		t.Fatalf("query %s: %d %s", q, code, body)
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query %s: %v: %s", q, err, body)
	}
	if len(r.Data.Result) == 0 {
		return math.NaN()
	}
	if len(r.Data.Result) > 1 {
		t.Fatalf("query %s: %d results, want one: %s", q, len(r.Data.Result), body)
	}
	f, err := strconv.ParseFloat(fmt.Sprint(r.Data.Result[0].Value[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPrometheusScrapesExactCountsAndRate has a real Prometheus scrape the admin port while a
// steady load runs, then checks the total it stored and the rate PromQL computes from it.
func TestPrometheusScrapesExactCountsAndRate(t *testing.T) {
	p := start(t, metricsConfig)
	prom := startPrometheus(t, p.admin[len("http://"):], "demo", "anyroute-0")
	waitFor(t, 15*time.Second, "first scrape", func() bool {
		return !math.IsNaN(prom.query(t, `up{job="anyroute"} == 1`, time.Now()))
	})

	const rate, seconds = 40, 12
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	sent := 0
	for range rate * seconds {
		<-tick.C
		go func() { _, _ = get(p.api + "/orders/1") }()
		sent++
	}
	loadEnd := time.Now()

	// Two flush intervals and two scrapes later, Prometheus holds the exact total.
	var total float64
	waitFor(t, 15*time.Second, "the total in Prometheus", func() bool {
		total = prom.query(t, `sum(app_requests_total{namespace="demo",pod="anyroute-0"})`, time.Now())
		return total == float64(sent)
	})

	// The rate over the steady part of the load is what was sent, within the jitter of the
	// one-second flush and scrape.
	got := prom.query(t, `sum(rate(app_requests_total{route="orders"}[8s]))`, loadEnd.Add(-time.Second))
	if math.Abs(got-rate)/rate > 0.2 {
		t.Fatalf("rate over the load: %.1f/s, sent %d/s", got, rate)
	}
	t.Logf("sent %d at %d/s: Prometheus has %v, rate %.1f/s", sent, rate, total, got)
}
