package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsConfig = `{
  "metrics": {"flush_interval": "1s"},
  "routes": [
    {"name": "orders", "match": "/orders/{id}"},
    {"name": "create", "match": "/orders", "methods": ["POST"], "status": 201},
    {"name": "flaky", "match": "/flaky/*", "error_rate": 0.3, "error_status": 503},
    {"name": "teapot", "match": "/tea", "status": 418}
  ]
}`

// scrape returns the metric families the admin listener serves.
func scrape(t *testing.T, p *proc) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(p.admin + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// requestCounts returns app_requests_total by "method route code", and their sum.
func requestCounts(fams map[string]*dto.MetricFamily) (map[string]float64, float64) {
	counts := map[string]float64{}
	var total float64
	for _, m := range fams["app_requests_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		key := labels["method"] + " " + labels["route"] + " " + labels["code"]
		counts[key] += m.GetCounter().GetValue()
		total += m.GetCounter().GetValue()
	}
	return counts, total
}

// load sends n requests from c concurrent clients, each request chosen by pick(i); it returns how
// many got an answer, by "METHOD status".
func load(t *testing.T, n, c int, pick func(i int) (method, path string)) map[string]int {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	answered := map[string]int{}
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				method, url := pick(i)
				code, _ := do(context.Background(), method, url, nil)
				if code == 0 {
					t.Errorf("%s %s: no answer", method, url)
					continue
				}
				mu.Lock()
				answered[fmt.Sprintf("%s %d", method, code)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return answered
}

func TestRequestCountsAreExact(t *testing.T) {
	p := start(t, metricsConfig)
	type req struct{ method, path, key string }
	mix := []req{
		{"GET", "/orders/1", "GET orders 200"},
		{"POST", "/orders", "POST create 201"},
		{"DELETE", "/orders/2", "DELETE orders 200"},
		{"PUT", "/tea", "PUT teapot 418"},
		{"BREW", "/tea", "OTHER teapot 418"},
		{"GET", "/nowhere", "GET other 200"},
	}
	const n = 3000
	load(t, n, 16, func(i int) (string, string) { r := mix[i%len(mix)]; return r.method, p.api + r.path })
	load(t, 600, 8, func(i int) (string, string) { return "GET", p.api + "/flaky/x" })

	time.Sleep(1500 * time.Millisecond) // one flush interval, and a margin
	counts, total := requestCounts(scrape(t, p))
	if total != n+600 {
		t.Fatalf("app_requests_total sums to %v, sent %d: %v", total, n+600, counts)
	}
	for _, r := range mix {
		if counts[r.key] != n/float64(len(mix)) {
			t.Errorf("%s: %v, want %v", r.key, counts[r.key], n/len(mix))
		}
	}
	if got := counts["GET flaky 200"] + counts["GET flaky 503"]; got != 600 || counts["GET flaky 503"] == 0 {
		t.Errorf("flaky: %v", counts)
	}
}

// TestRandomPathFloodKeepsSeriesBounded floods the service with 100k distinct paths and invented
// methods: the series on /metrics and the memory of the process stay bounded, and the counts exact.
func TestRandomPathFloodKeepsSeriesBounded(t *testing.T) {
	p := startBinary(t, plainBinary, metricsConfig) // the race detector's memory would hide ours
	methods := []string{"GET", "POST", "PURGE", "X-INVENTED", "LOCK", "BREW"}
	pick := func(i int) (string, string) {
		path := fmt.Sprintf("/%x/%x", rand.Uint64(), i)
		if i%5 == 0 {
			path = fmt.Sprintf("/orders/%x", rand.Uint64()) // a configured route with random ids
		}
		return methods[i%len(methods)], p.api + path
	}
	const warmup, n = 50000, 100000
	load(t, warmup, 32, pick)
	time.Sleep(1500 * time.Millisecond)
	rssBefore := gauge(t, scrape(t, p), "process_resident_memory_bytes")
	sizeBefore := len(mustGet(t, p.admin+"/metrics"))

	load(t, n, 32, pick)
	time.Sleep(1500 * time.Millisecond)
	fams := scrape(t, p)
	counts, total := requestCounts(fams)
	if total != warmup+n {
		t.Fatalf("app_requests_total sums to %v, sent %d", total, warmup+n)
	}
	// routes other and orders × methods GET, POST, OTHER × code 200.
	if len(counts) > 6 {
		t.Fatalf("%d request series after %d distinct paths: %v", len(counts), n, counts)
	}
	var series int
	for _, f := range fams {
		series += len(f.GetMetric())
	}
	if series > 200 {
		t.Fatalf("%d series on /metrics", series)
	}
	rssAfter := gauge(t, fams, "process_resident_memory_bytes")
	sizeAfter := len(mustGet(t, p.admin+"/metrics"))
	// The warm-up brings the process to its working size (connections, buffers, GC headroom);
	// twice as many new paths again must not grow it by more than 15%.
	if rssAfter > rssBefore*1.15 {
		t.Errorf("RSS grew from %.1f to %.1f MiB over %d more distinct paths", rssBefore/(1<<20), rssAfter/(1<<20), n)
	}
	if sizeAfter > sizeBefore+1024 {
		t.Errorf("/metrics grew from %d to %d bytes", sizeBefore, sizeAfter)
	}
	t.Logf("%d series on /metrics (%d bytes); RSS %.1f → %.1f MiB", series, sizeAfter, rssBefore/(1<<20), rssAfter/(1<<20))
}

func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("no single %s on /metrics", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	code, body := get(url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	return body
}

func TestMetricsPassPromtool(t *testing.T) {
	promtool := lookTool(t, "promtool")
	p := start(t, metricsConfig)
	load(t, 50, 4, func(i int) (string, string) { return "GET", p.api + "/orders/1" })
	time.Sleep(1200 * time.Millisecond)
	_, body := get(p.admin + "/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// lookTool finds a command the tests need; missing, it fails with how to get it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `make test-deps` (or scripts/deps.sh %s)", name, name)
	}
	return path
}
