package test

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestScrapeStormLeavesTheAPIAlone hammers /metrics from many clients at once. The admin listener
// serves at most a few scrapes at a time (the rest get 503 at once), so the API keeps answering.
func TestScrapeStormLeavesTheAPIAlone(t *testing.T) {
	p := startBinary(t, plainBinary, metricsConfig)
	load(t, 2000, 16, func(i int) (string, string) { return "GET", p.api + "/orders/1" }) // series to serve

	baseline := apiLatencies(t, p, 300)
	ctx, stop := context.WithCancel(context.Background())
	var scrapes, throttled atomic.Int64
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				switch code, _ := kit.Do(ctx, "GET", p.admin+"/metrics", nil, nil); code {
				case 200:
					scrapes.Add(1)
				case 503:
					throttled.Add(1)
				}
			}
		}()
	}
	kit.WaitUntil(t, 2*time.Second, "32 concurrent scrapers to be throttled", func() (bool, string, error) {
		return scrapes.Load() > 0 && throttled.Load() > 0, "", nil
	})
	storm := apiLatencies(t, p, 300)
	stop()
	wg.Wait()
	if throttled.Load() == 0 {
		t.Fatalf("32 concurrent scrapers were never throttled (%d scrapes served)", scrapes.Load())
	}
	t.Logf("API p50/p99 alone %v/%v, under a storm of %d scrapes (%d throttled) %v/%v",
		baseline[len(baseline)/2], baseline[len(baseline)*99/100], scrapes.Load(), throttled.Load(),
		storm[len(storm)/2], storm[len(storm)*99/100])
}

// apiLatencies makes n sequential API requests, each of which must answer 200, and returns their
// latencies sorted.
func apiLatencies(t *testing.T, p *proc, n int) []time.Duration {
	t.Helper()
	ds := make([]time.Duration, 0, n)
	for range n {
		begin := time.Now()
		if code, _ := kit.Get(p.api + "/orders/2"); code != 200 {
			t.Fatalf("API answered %d", code)
		}
		ds = append(ds, time.Since(begin))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// TestUnscrapedCountsAreKept: nobody scrapes for many flush intervals, and the next scrape still
// sees every request, since counters are cumulative and never reset by a flush.
func TestUnscrapedCountsAreKept(t *testing.T) {
	p := start(t, `{"metrics": {"flush_interval": "100ms"}}`)
	load(t, 500, 8, func(i int) (string, string) { return "GET", p.api + "/a" })
	time.Sleep(3 * time.Second) // the point of the test: 30 flushes, no scrape
	load(t, 700, 8, func(i int) (string, string) { return "POST", p.api + "/b" })
	counts, _ := requestCounts(waitCounts(t, p, 1200, 300*time.Millisecond))
	if counts["GET other 200"] != 500 || counts["POST other 200"] != 700 {
		t.Fatalf("after 3s unscraped: %v", counts)
	}
}
