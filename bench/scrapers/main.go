// Command scrapers is the scrape storm of the load benchmark (bench/driver): n
// scrapers, each scraping a /metrics URL rate times a second for a duration, as Prometheus does
// (its Accept header, gzip, a fresh read of the whole body), and a summary line of what they got:
// how many scrapes answered 200, how many were refused (any other status) or failed, their median
// and 99th-percentile latency, and the page's size.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// prometheusAccept is the Accept header of Prometheus 2.42 (what Debian ships) without native
// histograms; with them it puts protobuf first (-accept protobuf).
const prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

const protobufAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited," +
	"application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

func main() {
	url := flag.String("url", "http://127.0.0.1:8081/metrics", "the /metrics URL")
	n := flag.Int("n", 8, "scrapers")
	rate := flag.Float64("rate", 2, "scrapes a second, each")
	duration := flag.Duration("duration", 15*time.Second, "how long to scrape")
	accept := flag.String("accept", "prometheus", "Accept header: prometheus (2.42's), protobuf, or a literal header")
	flag.Parse()
	switch *accept {
	case "prometheus":
		*accept = prometheusAccept
	case "protobuf":
		*accept = protobufAccept
	}
	s := run(*url, *accept, *n, *rate, *duration)
	fmt.Println(s)
	if s.failed > 0 {
		os.Exit(1)
	}
}

type summary struct {
	ok, refused, failed int
	took                []time.Duration
	bytes               int64 // of the last answer, as sent (gzipped)
}

func (s summary) String() string {
	slices.Sort(s.took)
	pct := func(p float64) time.Duration {
		if len(s.took) == 0 {
			return 0
		}
		return s.took[min(len(s.took)-1, int(p*float64(len(s.took))))]
	}
	return fmt.Sprintf("scrapes=%d ok=%d refused=%d failed=%d p50_ms=%.2f p99_ms=%.2f gzip_bytes=%d",
		s.ok+s.refused+s.failed, s.ok, s.refused, s.failed,
		float64(pct(0.5))/1e6, float64(pct(0.99))/1e6, s.bytes)
}

func run(url, accept string, n int, rate float64, duration time.Duration) summary {
	// One connection per scraper, kept alive, as each Prometheus keeps one per target.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: n}}
	var mu sync.Mutex
	var total summary
	var wg sync.WaitGroup
	end := time.Now().Add(duration)
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the scrapers over the interval, as Prometheus spreads its targets.
			time.Sleep(time.Duration(i) * interval / time.Duration(n))
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for time.Now().Before(end) {
				took, status, size, err := scrape(client, url, accept)
				mu.Lock()
				switch {
				case err != nil:
					total.failed++
				case status != http.StatusOK:
					total.refused++
				default:
					total.ok++
					total.took = append(total.took, took)
					total.bytes = size
				}
				mu.Unlock()
				<-tick.C
			}
		}()
	}
	wg.Wait()
	return total
}

func scrape(client *http.Client, url, accept string) (time.Duration, int, int64, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", "gzip")
	begin := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	size, err := io.Copy(io.Discard, resp.Body)
	return time.Since(begin), resp.StatusCode, size, err
}
