package test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestScrapeStormLeavesTheAPIAlone hammers /metrics from many clients at once. Scrapes between two
// flushes share one encoding of the page, so every scrape is answered, none refused, and the API
// keeps answering.
func TestScrapeStormLeavesTheAPIAlone(t *testing.T) {
	p := startBinary(t, plainBinary, metricsConfig)
	load(t, 2000, 16, func(i int) (string, string) { return "GET", p.api + "/orders/1" }) // series to serve

	baseline := apiLatencies(t, p, 300)
	ctx, stop := context.WithCancel(context.Background())
	var scrapes, refused atomic.Int64
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				switch code, _ := kit.Do(ctx, "GET", p.admin+"/metrics", nil, nil); {
				case code == 200:
					scrapes.Add(1)
				case ctx.Err() == nil: // not the end of the test cutting a scrape short
					refused.Add(1)
				}
			}
		}()
	}
	kit.WaitUntil(t, 10*time.Second, "32 concurrent scrapers to be served twice each", func() (bool, string, error) {
		return scrapes.Load() >= 64, fmt.Sprintf("%d scrapes served, %d refused", scrapes.Load(), refused.Load()), nil
	})
	storm := apiLatencies(t, p, 300)
	stop()
	wg.Wait()
	if refused.Load() > 0 {
		t.Fatalf("32 concurrent scrapers: %d scrapes refused or failed (%d served)", refused.Load(), scrapes.Load())
	}
	t.Logf("API p50/p99 alone %v/%v, under a storm of %d scrapes (%d refused) %v/%v",
		baseline[len(baseline)/2], baseline[len(baseline)*99/100], scrapes.Load(), refused.Load(),
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
