package instrumenting

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/opentracing/opentracing-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/config"
)

// closedAddr returns a loopback address that nothing listens on (something did a moment ago).
func closedAddr(t testing.TB, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testTracing is a tracing config whose backends all point at closed ports.
func testTracing(t testing.TB, backend string) config.Tracing {
	cfg := config.Default().Tracing
	cfg.Backend = backend
	cfg.ServiceName = "anyroute-test"
	cfg.Jaeger.AgentAddr = closedAddr(t, "udp")
	cfg.Zipkin.URL = "http://" + closedAddr(t, "tcp") + "/api/v2/spans"
	cfg.OTLP.Endpoint = closedAddr(t, "tcp")
	return cfg
}

func newTestTracer(t testing.TB, backend string, reg prometheus.Registerer) (opentracing.Tracer, func()) {
	t.Helper()
	tracer, closeTracer, err := NewTracer(testTracing(t, backend), log.NewNopLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return tracer, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = closeTracer(ctx)
	}
}

func echoTraceID(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		TraceID string `json:"trace_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("echo %q: %v", rec.Body.String(), err)
	}
	return e.TraceID
}

// dropped reads tracing_spans_dropped_total by reason.
func dropped(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tracing_spans_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// collector answers every span batch with status.
func collector(t testing.TB, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// hangingCollector accepts connections and never answers.
func hangingCollector(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// pointAt points the backend of cfg at addr (host:port).
func pointAt(cfg config.Tracing, addr string) config.Tracing {
	switch cfg.Backend {
	case "jaeger":
		cfg.Jaeger.CollectorURL = "http://" + addr + "/api/traces"
	case "zipkin":
		cfg.Zipkin.URL = "http://" + addr + "/api/v2/spans"
	case "otlp":
		cfg.OTLP.Endpoint = addr
	}
	return cfg
}

// TestDroppedSpansAreCounted: every span a backend refuses, or cannot be reached for, is counted as
// send_failed once the tracer has closed; a backend that takes them all counts none.
func TestDroppedSpansAreCounted(t *testing.T) {
	const n = 25
	for _, backend := range []string{"jaeger", "zipkin", "otlp"} {
		for _, tc := range []struct {
			name string
			addr func(testing.TB) string
			want float64
		}{
			{"refused", func(t testing.TB) string { return collector(t, http.StatusServiceUnavailable) }, n},
			{"down", func(t testing.TB) string { return closedAddr(t, "tcp") }, n},
			{"accepted", func(t testing.TB) string { return collector(t, http.StatusAccepted) }, 0},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				reg := prometheus.NewPedanticRegistry()
				tracer, closeTracer, err := NewTracer(pointAt(testTracing(t, backend), tc.addr(t)), log.NewNopLogger(), reg)
				if err != nil {
					t.Fatal(err)
				}
				for range n {
					tracer.StartSpan("work").Finish()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = closeTracer(ctx)
				if got := dropped(t, reg); got["send_failed"] != tc.want || got["queue_full"] != 0 {
					t.Errorf("dropped %v, want send_failed %v", got, tc.want)
				}
			})
		}
	}
}

// TestStuckBackendFillsTheQueue: a backend that never answers makes the reporter hold its queue's
// worth of spans and drop (and count) the rest, without slowing anyone finishing a span.
func TestStuckBackendFillsTheQueue(t *testing.T) {
	const extra = 500
	for _, backend := range []string{"jaeger", "zipkin", "otlp"} {
		t.Run(backend, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			tracer, closeTracer, err := NewTracer(pointAt(testTracing(t, backend), hangingCollector(t)), log.NewNopLogger(), reg)
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			for range maxPendingSpans + extra {
				tracer.StartSpan("work").Finish()
			}
			if took := time.Since(begin); took > 2*time.Second {
				t.Errorf("finishing %d spans took %v with the backend stuck", maxPendingSpans+extra, took)
			}
			got := dropped(t, reg)["queue_full"]
			// The gate of zipkin and otlp is exact; jaeger's reporter has taken a batch off its queue
			// before the send got stuck.
			if got > extra || got < extra-200 || (backend != "jaeger" && got != extra) {
				t.Errorf("queue_full %v, want about %d", got, extra)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := closeTracer(ctx); err == nil {
				t.Error("closing with the backend stuck should report the flush as cut short")
			}
		})
	}
}

func TestNewTracerRefusesUnknownSettings(t *testing.T) {
	cfg := testTracing(t, "tachyon")
	if _, _, err := NewTracer(cfg, nil, nil); err == nil {
		t.Error("unknown backend accepted")
	}
	for _, backend := range []string{"jaeger", "zipkin", "otlp"} {
		cfg := testTracing(t, backend)
		cfg.Sampler.Type = "sometimes"
		if _, _, err := NewTracer(cfg, nil, nil); err == nil {
			t.Errorf("%s: unknown sampler accepted", backend)
		}
	}
	reg := prometheus.NewRegistry()
	if _, _, err := NewTracer(testTracing(t, "none"), nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewTracer(testTracing(t, "none"), nil, reg); err == nil {
		t.Error("registering the dropped-spans metric twice must fail")
	}
}

func TestSamplers(t *testing.T) {
	const n = 2000
	for _, backend := range []string{"jaeger", "zipkin", "otlp"} {
		for _, tc := range []struct {
			sampler  config.Sampler
			min, max int
		}{
			{config.Sampler{Type: "const", Param: 1}, n, n},
			{config.Sampler{Type: "const", Param: 0}, 0, 0},
			{config.Sampler{Type: "probabilistic", Param: 0.1}, n / 20, n / 5},
			{config.Sampler{Type: "ratelimiting", Param: 5}, 5, 6}, // a burst of 5, then 5/s
		} {
			cfg := testTracing(t, backend)
			cfg.Sampler = tc.sampler
			tracer, closeTracer, err := NewTracer(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			sampled := 0
			for range n {
				span := tracer.StartSpan("x")
				if isSampled(span) {
					sampled++
				}
				span.Finish()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = closeTracer(ctx)
			cancel()
			if sampled < tc.min || sampled > tc.max {
				t.Errorf("%s %s %g: %d of %d sampled, want %d..%d", backend, tc.sampler.Type, tc.sampler.Param, sampled, n, tc.min, tc.max)
			}
		}
	}
}

func TestThrottle(t *testing.T) {
	var lines []string
	logger := throttle(log.LoggerFunc(func(kv ...any) error {
		b, _ := json.Marshal(kv)
		lines = append(lines, string(b))
		return nil
	}), 50*time.Millisecond)
	for range 5 {
		_ = logger.Log("msg", "down")
	}
	time.Sleep(60 * time.Millisecond)
	_ = logger.Log("msg", "still down")
	if len(lines) != 2 || !strings.Contains(lines[1], `"suppressed",4`) {
		t.Errorf("lines %q", lines)
	}
}
