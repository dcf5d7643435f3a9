package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

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
				code, body := kit.Get(p.api + "/stuck")
				answer <- fmt.Sprint(code, " ", body)
			}()
			kit.WaitFor(t, 5*time.Second, "the request in flight", func() bool { return inFlight(p) == 1 })
			begin := time.Now()
			p.SignalT(t, syscall.SIGTERM)
			if tt.second {
				time.Sleep(300 * time.Millisecond) // the second signal comes while the first drains
				p.SignalT(t, syscall.SIGTERM)
			}
			if code := p.WaitExit(t, 5*time.Second); code != 3 {
				t.Errorf("exit code %d after a cut drain, want 3", code)
			}
			if got := <-answer; !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"error":"server shutting down"`) {
				t.Errorf("the cut request got %q, want 503 server shutting down", got)
			}
			t.Logf("exited %v after the first signal", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// TestShutdownAccountsForEveryConnection tells a request that was read and dropped from one that
// was refused: clients, each request on a connection of its own, load the service when SIGTERM
// comes. Every connection the server accepted (its own count, logged as it stops) got an answer,
// and published; every request without an answer was refused at connect or reset in the backlog,
// never closed unanswered (EOF) after the server took it.
func TestShutdownAccountsForEveryConnection(t *testing.T) {
	p := start(t, `{"metrics": {"flush_interval": "1m"}, "routes": [{"name": "work", "match": "/*", "delay": "5ms", "jitter": "5ms"}],
  "shutdown": {"grace": "10s", "metrics_linger": "3s"}}`)
	ctx, stop := context.WithCancel(context.Background())
	var answered, refused, reset, other atomic.Int64
	var otherErr atomic.Value
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 15 * time.Second}
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get(p.api + "/x")
				switch {
				case err == nil:
					resp.Body.Close()
					if resp.StatusCode == 200 {
						answered.Add(1)
					} else {
						other.Add(1)
						otherErr.Store(resp.Status)
					}
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				case errors.Is(err, syscall.ECONNRESET):
					reset.Add(1)
				default:
					other.Add(1)
					otherErr.Store(err.Error())
				}
			}
		})
	}
	kit.WaitFor(t, 10*time.Second, "some answers before the signal", func() bool { return answered.Load() > 200 })
	p.SignalT(t, syscall.SIGTERM)
	kit.WaitFor(t, 10*time.Second, "the listener to refuse", func() bool { return refused.Load() > 0 })
	stop()
	wg.Wait()
	var published float64
	kit.WaitFor(t, 5*time.Second, "the final flush", func() bool {
		m, err := kit.Scrape(p.admin + "/metrics")
		published = m.Sum("app_requests_total", "route", "work", "code", "200")
		return err == nil && published == float64(answered.Load())
	})
	if code := p.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	accepted := acceptedAtStop(t, p.Logs())
	if other.Load() > 0 {
		t.Fatalf("%d requests neither answered nor refused, e.g. %v", other.Load(), otherErr.Load())
	}
	// The scrapes went to the admin listener; the API accepted the clients' connections alone,
	// and a reset came from the kernel's backlog, before any accept.
	if accepted != answered.Load() {
		t.Fatalf("the API accepted %d connections, the clients got %d answers (and %d resets): a connection was taken and its request dropped",
			accepted, answered.Load(), reset.Load())
	}
	t.Logf("answered %d (published %v), refused %d, reset %d; the API accepted %d connections", answered.Load(), published, refused.Load(), reset.Load(), accepted)
}

// acceptedAtStop reads the API's count of accepted connections from its last log line.
func acceptedAtStop(t *testing.T, logs string) int64 {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `msg="API stopped"`) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "connections_accepted="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	t.Fatalf("no API stopped line with connections_accepted in:\n%s", logs)
	return 0
}
