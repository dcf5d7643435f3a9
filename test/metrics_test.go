package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
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

// requestCounts returns app_requests_total by "method route code", and their sum.
func requestCounts(m kit.Metrics) (map[string]float64, float64) {
	counts := map[string]float64{}
	var total float64
	for _, s := range m.Series("app_requests_total") {
		counts[s.Labels["method"]+" "+s.Labels["route"]+" "+s.Labels["code"]] += s.Value
		total += s.Value
	}
	return counts, total
}

// waitCounts polls /metrics until app_requests_total sums to sent, failing after within (a flush
// interval and a margin: the freshness the service promises), and returns that scrape.
func waitCounts(t *testing.T, p *proc, sent int, within time.Duration) kit.Metrics {
	t.Helper()
	var m kit.Metrics
	kit.WaitUntil(t, within, fmt.Sprintf("app_requests_total to sum to the %d requests sent", sent), func() (bool, string, error) {
		m = p.metrics(t)
		counts, total := requestCounts(m)
		return total == float64(sent), fmt.Sprintf("sum %v: %v", total, counts), nil
	})
	return m
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
				code, _ := kit.Do(context.Background(), method, url, nil, nil)
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
	flaky := load(t, 600, 8, func(i int) (string, string) { return "GET", p.api + "/flaky/x" })

	counts, _ := requestCounts(waitCounts(t, p, n+600, 1500*time.Millisecond)) // one flush interval, and a margin
	for _, r := range mix {
		if counts[r.key] != n/float64(len(mix)) {
			t.Errorf("%s: %v, want %v", r.key, counts[r.key], n/len(mix))
		}
	}
	// The injected errors' split, code by code, is what the clients received.
	if counts["GET flaky 200"] != float64(flaky["GET 200"]) || counts["GET flaky 503"] != float64(flaky["GET 503"]) ||
		flaky["GET 503"] == 0 || flaky["GET 200"]+flaky["GET 503"] != 600 {
		t.Errorf("flaky: counted %v, the clients received %v", counts, flaky)
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
	rssBefore := gauge(t, waitCounts(t, p, warmup, 1500*time.Millisecond), "process_resident_memory_bytes")
	sizeBefore := len(mustGet(t, p.admin+"/metrics"))

	load(t, n, 32, pick)
	fams := waitCounts(t, p, warmup+n, 1500*time.Millisecond)
	counts, _ := requestCounts(fams)
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

// gauge returns the value of a metric that has a single series.
func gauge(t *testing.T, m kit.Metrics, name string) float64 {
	t.Helper()
	s := m.Series(name)
	if len(s) != 1 {
		t.Fatalf("no single %s on /metrics", name)
	}
	return s[0].Value
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	code, body := kit.Get(url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	return body
}
