package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	dto "github.com/prometheus/client_model/go"

	"github.com/anyroute/anyroute/config"
)

// TestExemplarsFollowSampling drives the assembled app with tracing off, with every request
// sampled and with none sampled: the request metrics carry the echo's trace id as an exemplar only
// for sampled requests.
func TestExemplarsFollowSampling(t *testing.T) {
	for _, tc := range []struct {
		name, backend string
		param         float64
		exemplar      bool
	}{
		{"tracing off", "none", 1, false},
		{"const 1", "jaeger", 1, true},
		{"const 0", "jaeger", 0, false},
		{"otlp const 1", "otlp", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Tracing.Backend = tc.backend
			cfg.Tracing.Sampler = config.Sampler{Type: "const", Param: tc.param}
			cfg.Tracing.Jaeger.AgentAddr = closedUDPAddr(t)
			cfg.Tracing.OTLP.Endpoint = closedTCPAddr(t)
			a, err := newApp(cfg, log.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			closeTracingAtEnd(t, a)
			rec := httptest.NewRecorder()
			a.api.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			var echo struct {
				TraceID string `json:"trace_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &echo); err != nil {
				t.Fatal(err)
			}
			ids := flushedExemplarIDs(t, a)
			if !tc.exemplar {
				if len(ids) != 0 {
					t.Fatalf("exemplars %v without a sampled request", ids)
				}
				return
			}
			// one on the counter, one on the request's bucket
			if len(ids) != 2 || ids[0] != echo.TraceID || ids[1] != echo.TraceID || len(echo.TraceID) != 32 {
				t.Fatalf("exemplars %v, echo's trace id %q", ids, echo.TraceID)
			}
			// and the admin listener shows them to a scraper that negotiates OpenMetrics
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
			rec = httptest.NewRecorder()
			a.admin.ServeHTTP(rec, req)
			if want := `# {trace_id="` + echo.TraceID + `"}`; strings.Count(rec.Body.String(), want) != 2 ||
				!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/openmetrics-text") {
				t.Fatalf("OpenMetrics /metrics (%s) lacks %s twice", rec.Header().Get("Content-Type"), want)
			}
		})
	}
}

// closeTracingAtEnd closes the app's tracer when the test ends, so that its sender goroutines
// end with the test; a second bounds its last send, to an address nothing listens on.
func closeTracingAtEnd(t *testing.T, a *app) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.tracing.Close(ctx)
	})
}

// flushedFamilies flushes the app's request metrics and gathers its registry: the request and
// call metrics are served from the flusher's last snapshot, so a gather alone would miss the
// requests the test just made.
func flushedFamilies(t *testing.T, a *app) []*dto.MetricFamily {
	t.Helper()
	a.flusher.Flush()
	fams, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// flushedExemplarIDs returns the trace ids of every exemplar the app's registry gathers after a
// flush, in the registry's order.
func flushedExemplarIDs(t *testing.T, a *app) []string {
	t.Helper()
	var ids []string
	for _, f := range flushedFamilies(t, a) {
		for _, m := range f.GetMetric() {
			ids = append(ids, exemplarIDs(m)...)
		}
	}
	return ids
}

func exemplarIDs(m *dto.Metric) []string {
	var ids []string
	add := func(e *dto.Exemplar) {
		for _, l := range e.GetLabel() {
			if l.GetName() == "trace_id" {
				ids = append(ids, l.GetValue())
			}
		}
	}
	if e := m.GetCounter().GetExemplar(); e != nil {
		add(e)
	}
	for _, b := range m.GetHistogram().GetBucket() {
		if e := b.GetExemplar(); e != nil {
			add(e)
		}
	}
	return ids
}

// closedUDPAddr is a loopback UDP address nothing listens on, for a Jaeger agent whose spans go
// nowhere: the tests and the benchmarks pay for sending them, and no collector is needed.
func closedUDPAddr(tb testing.TB) string {
	tb.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestNativeHistogramsWiring: metrics.native_histograms puts native buckets, at the schema of the
// default buckets, on the latency histogram; off, there are none.
func TestNativeHistogramsWiring(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := config.Default()
		cfg.Metrics.NativeHistograms = on
		a, err := newApp(cfg, log.NewNopLogger())
		if err != nil {
			t.Fatal(err)
		}
		a.api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
		for _, f := range flushedFamilies(t, a) {
			if f.GetName() != "app_request_duration_seconds" {
				continue
			}
			h := f.GetMetric()[0].GetHistogram()
			if native := h.Schema != nil; native != on || (on && (h.GetSchema() != 3 || h.GetSampleCount() != 1 || h.GetZeroCount()+sumDeltas(h.GetPositiveDelta()) != 1)) {
				t.Errorf("native_histograms %v: %v", on, h)
			}
		}
	}
}

// sumDeltas is the number of observations in a native histogram's positive buckets.
func sumDeltas(deltas []int64) uint64 {
	var n, count int64
	for _, d := range deltas {
		count += d
		n += count
	}
	return uint64(n)
}

// TestEveryCallOfAValidConfigIsCountedApart: with metrics.max_routes 1, a route of 16 calls (all a
// valid config allows) is counted call by call, each under its route and call labels. The calls'
// slots were sized 4 x max_routes + 1 = 5: 11 of the 16 calls were counted under route="" call="".
func TestEveryCallOfAValidConfigIsCountedApart(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	var calls []string
	for i := range config.MaxCallsPerRoute {
		calls = append(calls, fmt.Sprintf(`{"name": "c%d", "url": %q}`, i, up.URL+"/"))
	}
	cfg, err := config.Parse("doc", []byte(`{"metrics": {"max_routes": 1}, "max_hops": 4, "routes": [
  {"name": "fan", "match": "/*", "call_mode": "parallel", "calls": [`+strings.Join(calls, ",")+`]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.tracing.Close(context.Background())
	for range 3 {
		rec := httptest.NewRecorder()
		a.api.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	got := map[string]float64{}
	for _, f := range flushedFamilies(t, a) {
		if f.GetName() != "app_upstream_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["route"]+"/"+labels["call"]+"/"+labels["code"]] += m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{}
	for i := range config.MaxCallsPerRoute {
		want[fmt.Sprintf("fan/c%d/200", i)] = 3
	}
	if !maps.Equal(got, want) {
		t.Fatalf("upstream calls counted %v, want each of the 16 calls 3 times under its own labels", got)
	}
}

// TestRuntimeFiguresForTheBenchmark: the admin registry has, beside the Go collector's defaults,
// the live heap and the GC cycle count that bench/driver reads during a load; the cycles count
// the collections forced here, and the live heap is what the last one found (never zero in a
// running process).
func TestRuntimeFiguresForTheBenchmark(t *testing.T) {
	a, err := newApp(config.Default(), log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	read := func() map[string]float64 {
		t.Helper()
		fams, err := a.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, f := range fams {
			for _, s := range f.GetMetric() {
				switch {
				case s.GetGauge() != nil:
					m[f.GetName()] = s.GetGauge().GetValue()
				case s.GetCounter() != nil:
					m[f.GetName()] = s.GetCounter().GetValue()
				}
			}
		}
		return m
	}
	before := read()
	for _, name := range []string{"go_gc_heap_live_bytes", "go_gc_cycles_total_gc_cycles_total", "go_memstats_mallocs_total", "go_memstats_alloc_bytes_total"} {
		if _, ok := before[name]; !ok {
			t.Fatalf("%s is not exposed", name)
		}
	}
	runtime.GC()
	runtime.GC()
	after := read()
	if got := after["go_gc_cycles_total_gc_cycles_total"] - before["go_gc_cycles_total_gc_cycles_total"]; got < 2 {
		t.Errorf("GC cycles went up by %v over two forced collections", got)
	}
	if after["go_gc_heap_live_bytes"] <= 0 {
		t.Errorf("live heap %v after a collection", after["go_gc_heap_live_bytes"])
	}
}
