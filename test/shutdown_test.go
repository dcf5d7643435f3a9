package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestShutdownUnderLoad sends SIGTERM while wrk and a pool of accounting clients load the service.
// Every request the service accepted must get its answer, and the final flush must publish every
// answered request: the periodic flush is a minute away, so only the final one can.
func TestShutdownUnderLoad(t *testing.T) {
	wrk := lookTool(t, "wrk")
	p := start(t, `{
  "metrics": {"flush_interval": "1m"},
  "routes": [
    {"name": "exact", "match": "/exact/*", "delay": "20ms", "jitter": "10ms"},
    {"name": "bulk", "match": "/bulk/*", "delay": "5ms"}
  ],
  "shutdown": {"grace": "10s", "metrics_linger": "5s"}
}`)
	wrkCmd := exec.Command(wrk, "-t2", "-c32", "-d8s", p.api+"/bulk/x")
	wrkOut := &syncBuffer{}
	wrkCmd.Stdout, wrkCmd.Stderr = wrkOut, wrkOut
	if err := wrkCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = wrkCmd.Process.Kill(); _ = wrkCmd.Wait() }()

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

	time.Sleep(3 * time.Second)
	signalled.Store(true)
	p.signal(t, syscall.SIGTERM)
	// Readiness is 503 during the drain and the linger.
	waitFor(t, 2*time.Second, "/readyz to turn 503", func() bool {
		code, _ := get(p.admin + "/readyz")
		return code == http.StatusServiceUnavailable
	})
	// Once the API stops accepting, the final flush publishes every answered request.
	waitFor(t, 5*time.Second, "the API to refuse connections", func() bool { return refused.Load() > 0 })
	stop()
	wg.Wait()
	var published float64
	waitFor(t, 4*time.Second, "the final flush on /metrics", func() bool {
		code, body := get(p.admin + "/metrics")
		if code != 200 {
			return false
		}
		published = sumMetric(body, `app_requests_total{code="200",method="GET",route="exact"}`)
		return published == float64(answered.Load())
	})
	if len(bad) > 0 {
		t.Fatalf("%d requests accepted but not answered 200, e.g. %q", len(bad), bad[0])
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	_ = wrkCmd.Wait()
	if strings.Contains(wrkOut.String(), "Non-2xx") {
		t.Fatalf("wrk saw non-2xx answers:\n%s", wrkOut.String())
	}
	t.Logf("answered %d, refused after the signal %d, published %v\nwrk:\n%s", answered.Load(), refused.Load(), published, wrkOut.String())
}

// isRefusal is a request that never reached the service: refused or reset by the closed
// listener, or closed unanswered by net/http after it read the request during shutdown.
func isRefusal(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// sumMetric returns the value of one exposition line, 0 when absent.
func sumMetric(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return 0
}

// TestSecondSignalAndGraceDeadlineEndPromptly: a drain that a second signal or the grace period
// cuts short ends at once, answers the request it cut 503 (the server's doing, not 499, the
// client's), and exits 3, not 0, so that a supervisor can tell it from a clean stop.
func TestSecondSignalAndGraceDeadlineEndPromptly(t *testing.T) {
	for _, tt := range []struct {
		name   string
		config string
		second bool
	}{
		{"second SIGTERM", `{"http": {"write_timeout": "2m"}, "routes": [{"name": "stuck", "match": "/*", "delay": "1m"}], "shutdown": {"grace": "1m"}}`, true},
		{"grace deadline", `{"http": {"write_timeout": "2m"}, "routes": [{"name": "stuck", "match": "/*", "delay": "1m"}], "shutdown": {"grace": "1s"}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.config)
			answer := make(chan string, 1)
			go func() {
				code, body := get(p.api + "/stuck")
				answer <- fmt.Sprint(code, " ", body)
			}()
			waitFor(t, 5*time.Second, "the request in flight", func() bool {
				_, body := get(p.admin + "/metrics")
				return strings.Contains(body, "app_requests_in_flight 1")
			})
			begin := time.Now()
			p.signal(t, syscall.SIGTERM)
			if tt.second {
				time.Sleep(300 * time.Millisecond)
				p.signal(t, syscall.SIGTERM)
			}
			if code := p.wait(t, 5*time.Second); code != 3 {
				t.Errorf("exit code %d after a cut drain, want 3", code)
			}
			if got := <-answer; !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"error":"server shutting down"`) {
				t.Errorf("the cut request got %q, want 503 server shutting down", got)
			}
			t.Logf("exited %v after the first signal", time.Since(begin).Round(time.Millisecond))
		})
	}
}
