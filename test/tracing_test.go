package test

import (
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/test/kit"
)

// TestTracingBackendDown makes every backend unreachable in the ways that would hold up a sender:
// a closed port (refused at once), a UDP port with nothing behind it, and a listener that takes
// the connection and never reads nor answers, so that a send hangs until the exporter's own send
// timeout (tracing.SendTimeout) ends it. What is asserted holds on a loaded machine, since it is
// a property and not a speed: no request waits on the backend. A request that waited on one send
// to a stuck backend could not be answered before that send's timeout, so every request, alone
// and in a burst, is answered in less than half of it; the stuck listener shows that sends were
// made and left hanging meanwhile. The pending spans stay bounded (a burst past
// tracing.MaxPendingSpans against a stuck backend is refused and counted as queue_full), the lost
// spans are counted, the complaints are throttled, and shutdown does not wait on the backend.
func TestTracingBackendDown(t *testing.T) {
	closedUDP, closedTCP := kit.FreeUDPAddr(t), kit.FreeAddr(t)
	stuckJaeger, stuckZipkin, stuckOTLP := stuckBackend(t), stuckBackend(t), stuckBackend(t)
	configs := []struct {
		name, tracing string
		stuck         *stuck // the backend that never answers, if this config points at one
	}{
		{"none", `{"backend": "none"}`, nil},
		{"jaeger-udp", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"agent_addr": %q}}`, closedUDP), nil},
		{"jaeger-http", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"collector_url": "http://%s/api/traces"}}`, closedTCP), nil},
		{"zipkin", fmt.Sprintf(`{"backend": "zipkin", "zipkin": {"url": "http://%s/api/v2/spans"}}`, closedTCP), nil},
		{"otlp", fmt.Sprintf(`{"backend": "otlp", "otlp": {"endpoint": %q}}`, closedTCP), nil},
		{"jaeger-http-stuck", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"collector_url": "http://%s/api/traces"}}`, stuckJaeger.addr), stuckJaeger},
		{"zipkin-stuck", fmt.Sprintf(`{"backend": "zipkin", "zipkin": {"url": "http://%s/api/v2/spans"}}`, stuckZipkin.addr), stuckZipkin},
		{"otlp-stuck", fmt.Sprintf(`{"backend": "otlp", "otlp": {"endpoint": %q}}`, stuckOTLP.addr), stuckOTLP},
	}
	// A request that waited on a send to a stuck backend took at least tracing.SendTimeout: half
	// of it is far above what a request takes on a loaded machine, and below what one wait costs.
	bound := tracing.SendTimeout / 2
	const n = 200
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, `{"tracing": `+c.tracing+`}`)
			var slowest time.Duration
			for i := range n {
				begin := time.Now()
				code, e := kit.Echo(t, "GET", p.api+"/x/"+strconv.Itoa(i), nil)
				took := time.Since(begin)
				slowest = max(slowest, took)
				if code != 200 || (c.name != "none" && e.TraceID == "") {
					t.Fatalf("request %d: %d trace_id %q", i, code, e.TraceID)
				}
				if took >= bound {
					t.Fatalf("request %d took %v: it waited on the backend (a send times out after %v)", i, took, tracing.SendTimeout)
				}
			}
			t.Logf("%s: slowest %v over %d requests", c.name, slowest, n)

			if c.stuck != nil {
				// More spans than a reporter holds, sent while the stuck backend holds its sends:
				// the pending spans are bounded by refusing (and counting) the rest, and no request
				// waits for room.
				const burst, workers = 2 * tracing.MaxPendingSpans, 16
				burstSlowest := burstRequests(t, p.api+"/burst/", burst, workers, bound)
				t.Logf("%s: slowest %v over a burst of %d requests from %d clients", c.name, burstSlowest, burst, workers)
				if got := c.stuck.accepted.Load(); got == 0 {
					t.Fatalf("the stuck backend was never sent to: the test proves nothing")
				}
				kit.WaitUntil(t, 15*time.Second, `app_tracing_spans_dropped_total{reason="queue_full"} above 0 after the burst`, func() (bool, string, error) {
					full := p.metrics(t).Sum("app_tracing_spans_dropped_total", "reason", "queue_full")
					return full > 0, fmt.Sprint(full), nil
				})
			}

			// A send fails within a report interval or two. Over UDP nothing can tell that the
			// agent is missing (jaeger-client-go redials and sends again), so only an overflowing
			// queue would be counted there.
			kit.WaitUntil(t, 15*time.Second, "app_tracing_spans_dropped_total above 0 with the backend down", func() (bool, string, error) {
				if dropped := droppedSpans(t, p); dropped > 0 || c.name == "none" || c.name == "jaeger-udp" {
					return true, "", nil
				}
				kit.Echo(t, "GET", p.api+"/more", nil)
				return false, "0", nil
			})

			begin := time.Now()
			p.SignalT(t, syscall.SIGTERM)
			if code := p.WaitExit(t, 15*time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			d := time.Since(begin)
			t.Logf("%s: shutdown took %v", c.name, d)
			if d > 7*time.Second {
				t.Errorf("shutdown took %v with the backend down", d)
			}
			if w := strings.Count(p.Logs(), "component=tracing"); w > 5 {
				t.Errorf("%d tracing complaints logged; they should be throttled:\n%s", w, p.Logs())
			}
		})
	}
}

// burstRequests sends n requests from the given number of clients at once and fails the test if
// one is not answered 200 or takes bound or longer; it returns the slowest. The burst has an HTTP
// client of its own whose connections it closes at the end: one its pool dialed and never used
// would hold the service's drain at shutdown (net/http closes a connection that never sent a
// request only once it is 5 s old), which is no part of what is measured.
func burstRequests(t *testing.T, url string, n, clients int, bound time.Duration) time.Duration {
	t.Helper()
	client := kit.NewClient(30 * time.Second)
	defer client.CloseIdleConnections()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		slowest time.Duration
		failure string
		wg      sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				begin := time.Now()
				code, body := 0, ""
				resp, err := client.Get(url + strconv.Itoa(i))
				if err != nil {
					body = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					code, body = resp.StatusCode, string(b)
				}
				took := time.Since(begin)
				mu.Lock()
				slowest = max(slowest, took)
				if failure == "" && (code != 200 || took >= bound) {
					failure = fmt.Sprintf("request %d: %d after %v (bound %v): %.200s", i, code, took, bound, body)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failure != "" {
		t.Fatalf("in the burst: %s", failure)
	}
	return slowest
}

// stuck is a tracing backend that accepts connections and never reads from them nor answers.
type stuck struct {
	addr     string
	accepted atomic.Int64
}

// stuckBackend starts a listener that accepts connections and never reads nor answers: a send to
// it hangs until the sender's own timeout.
func stuckBackend(t *testing.T) *stuck {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stuck{addr: ln.Addr().String()}
	conns := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			select {
			case conns <- c:
			default:
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return s
}

// stuckAddr is the address of a listener that accepts connections and never answers.
func stuckAddr(t *testing.T) string {
	t.Helper()
	return stuckBackend(t).addr
}

// droppedSpans sums app_tracing_spans_dropped_total over its reasons, of which there must be
// exactly queue_full and send_failed.
func droppedSpans(t *testing.T, p *proc) float64 {
	t.Helper()
	series := p.metrics(t).Series("app_tracing_spans_dropped_total")
	var sum float64
	reasons := make([]string, 0, 2)
	for _, s := range series {
		if len(s.Labels) != 1 {
			t.Fatalf("app_tracing_spans_dropped_total: labels %v, want only reason", s.Labels)
		}
		sum += s.Value
		reasons = append(reasons, s.Labels["reason"])
	}
	sort.Strings(reasons)
	if !slices.Equal(reasons, []string{"queue_full", "send_failed"}) {
		t.Fatalf("app_tracing_spans_dropped_total: want one series per reason queue_full, send_failed; got %v", reasons)
	}
	return sum
}
