package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
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
			cfg.Tracing.Jaeger.AgentAddr = closedUDPAddrT(t)
			cfg.Tracing.OTLP.Endpoint = closedTCPAddr(t)
			a, err := newApp(cfg, log.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = a.tracing.Close(ctx)
			})
			rec := httptest.NewRecorder()
			a.api.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			var echo struct {
				TraceID string `json:"trace_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &echo); err != nil {
				t.Fatal(err)
			}
			a.flusher.Flush()
			fams, err := a.registry.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, f := range fams {
				for _, m := range f.GetMetric() {
					ids = append(ids, exemplarIDs(m)...)
				}
			}
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

func closedUDPAddrT(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
		a.flusher.Flush()
		fams, err := a.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
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
