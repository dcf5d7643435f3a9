package test

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestTracingBackendDown points every backend at a closed port, and one at a port that never
// answers: requests are answered at the
// speed of an untraced service, the lost spans are counted, the complaints are throttled, and
// shutdown does not wait on the backend.
func TestTracingBackendDown(t *testing.T) {
	closedUDP, closedTCP, stuck := kit.FreeUDPAddr(t), kit.FreeAddr(t), stuckAddr(t)
	configs := []struct{ name, tracing string }{
		{"none", `{"backend": "none"}`},
		{"jaeger-udp", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"agent_addr": %q}}`, closedUDP)},
		{"jaeger-http", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"collector_url": "http://%s/api/traces"}}`, closedTCP)},
		{"zipkin", fmt.Sprintf(`{"backend": "zipkin", "zipkin": {"url": "http://%s/api/v2/spans"}}`, closedTCP)},
		{"otlp", fmt.Sprintf(`{"backend": "otlp", "otlp": {"endpoint": %q}}`, closedTCP)},
		// A backend that takes the connection and never answers: sends hang until their timeout.
		{"otlp-stuck", fmt.Sprintf(`{"backend": "otlp", "otlp": {"endpoint": %q}}`, stuck)},
	}
	const n = 200
	var baseline time.Duration
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, `{"tracing": `+c.tracing+`}`)
			took := make([]time.Duration, 0, n)
			for i := range n {
				begin := time.Now()
				code, e := kit.Echo(t, "GET", p.api+"/x/"+strconv.Itoa(i), nil)
				took = append(took, time.Since(begin))
				if code != 200 || (c.name != "none" && e.TraceID == "") {
					t.Fatalf("request %d: %d trace_id %q", i, code, e.TraceID)
				}
			}
			slices.Sort(took)
			median, slowest := took[n/2], took[n-1]
			t.Logf("%s: median %v, slowest %v over %d requests", c.name, median, slowest, n)
			if c.name == "none" {
				baseline = median
				return
			}
			if slowest > time.Second || (baseline > 0 && median > 3*baseline+2*time.Millisecond) {
				t.Errorf("with the backend down: median %v (untraced %v), slowest %v", median, baseline, slowest)
			}

			// A send fails within a report interval or two. Over UDP nothing can tell that the
			// agent is missing (jaeger-client-go redials and sends again), so only an overflowing
			// queue would be counted there.
			kit.WaitUntil(t, 15*time.Second, "app_tracing_spans_dropped_total above 0 with the backend down", func() (bool, string, error) {
				if dropped := droppedSpans(t, p); dropped > 0 || c.name == "jaeger-udp" {
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
			if d := time.Since(begin); d > 7*time.Second {
				t.Errorf("shutdown took %v with the backend down", d)
			}
			if w := strings.Count(p.Logs(), "component=tracing"); w > 5 {
				t.Errorf("%d tracing complaints logged; they should be throttled:\n%s", w, p.Logs())
			}
		})
	}
}

// stuckAddr is the address of a listener that accepts connections and never answers.
func stuckAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
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
	return ln.Addr().String()
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
