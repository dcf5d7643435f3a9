//go:build external

package test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestShutdownUnderLoad sends SIGTERM while wrk and a pool of accounting clients load the service.
// Every request the service accepted must get its answer, and the final flush must publish every
// answered request: the periodic flush is a minute away, so only the final one can.
func TestShutdownUnderLoad(t *testing.T) {
	wrk := kit.SystemTool(t, "wrk")
	p := start(t, `{
  "metrics": {"flush_interval": "1m"},
  "routes": [
    {"name": "exact", "match": "/exact/*", "delay": "20ms", "jitter": "10ms"},
    {"name": "bulk", "match": "/bulk/*", "delay": "5ms"}
  ],
  "shutdown": {"grace": "10s", "metrics_linger": "5s"}
}`)
	wrkProc := kit.StartT(t, kit.Cmd{Path: wrk, Args: []string{"-t2", "-c32", "-d8s", p.api + "/bulk/x"}})

	// Accounting clients, one connection per request: each request ends with an answer or, after
	// the signal only, with a refusal: the listener closed, reset a connection still in its
	// backlog, or (net/http's rule once shutting down) closed a connection whose request it read
	// but would not start. Any other error or a non-200 fails the test; and since the service
	// counts what it handled, a final count equal to the answers proves that no request it
	// handled lost its answer.
	ctx, stop := context.WithCancel(context.Background())
	var answered, refused atomic.Int64
	var signalled atomic.Bool
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := cl.Get(p.api + "/exact/x")
				if err != nil {
					if signalled.Load() && isRefusal(err) {
						refused.Add(1)
						time.Sleep(5 * time.Millisecond)
						continue
					}
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					mu.Lock()
					bad = append(bad, resp.Status)
					mu.Unlock()
					continue
				}
				answered.Add(1)
			}
		}()
	}

	time.Sleep(3 * time.Second) // the load runs a while before the signal
	signalled.Store(true)
	p.SignalT(t, syscall.SIGTERM)
	// Readiness is 503 during the drain and the linger.
	kit.WaitFor(t, 2*time.Second, "/readyz to turn 503", func() bool {
		code, _ := kit.Get(p.admin + "/readyz")
		return code == http.StatusServiceUnavailable
	})
	// Once the API stops accepting, the final flush publishes every answered request.
	kit.WaitFor(t, 5*time.Second, "the API to refuse connections", func() bool { return refused.Load() > 0 })
	stop()
	wg.Wait()
	var published float64
	kit.WaitFor(t, 4*time.Second, "the final flush on /metrics", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		if err != nil {
			return false
		}
		published = m.Sum("app_requests_total", "code", "200", "method", "GET", "route", "exact")
		return published == float64(answered.Load())
	})
	if len(bad) > 0 {
		t.Fatalf("%d requests accepted but not answered 200, e.g. %q", len(bad), bad[0])
	}
	if code := p.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if code := wrkProc.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("wrk exit code %d:\n%s", code, wrkProc.Logs())
	}
	if strings.Contains(wrkProc.Logs(), "Non-2xx") {
		t.Fatalf("wrk saw non-2xx answers:\n%s", wrkProc.Logs())
	}
	t.Logf("answered %d, refused after the signal %d, published %v\nwrk:\n%s", answered.Load(), refused.Load(), published, wrkProc.Logs())
}

// isRefusal is a request that never reached the service: refused or reset by the closed
// listener, or closed unanswered by net/http after it read the request during shutdown.
func isRefusal(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}
