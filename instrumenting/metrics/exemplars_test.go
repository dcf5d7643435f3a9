package metrics

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/anyroute/anyroute/service"
)

// sampled is a request whose trace is sampled, as the tracing decorator leaves it: a request
// without a trace is unsampled, as a request whose span is not sampled (or tracing off) is.
func sampled(id string) service.Request { return service.Request{TraceID: id, TraceSampled: true} }

// delayed answers after the delay the request's path names, so a test puts requests in buckets.
type delayed struct{ status int }

func (d delayed) Handle(_ context.Context, req service.Request) (service.Response, error) {
	delay, _ := time.ParseDuration(strings.TrimPrefix(req.Path, "/"))
	time.Sleep(delay)
	return service.Response{Status: d.status, RouteID: 1}, nil
}

func gatherFamily(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no %s gathered", name)
	return nil
}

// TestExemplarsOfSampledRequestsOnly: buckets that saw a sampled request carry the trace id of the
// latest one, buckets that saw only unsampled ones carry none, the counter carries the latest of
// all, and a series without a sampled request has no exemplar anywhere.
func TestExemplarsOfSampledRequestsOnly(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.005, 0.05})
	f := NewFlusher(agg, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))
	ok := Counting(agg)(delayed{status: 200})
	untraced := Counting(agg)(delayed{status: 404})

	for _, r := range []struct {
		req  service.Request
		path string
	}{
		{sampled("aaaa0000000000000000000000000001"), "/0s"},   // le=0.005, replaced below
		{sampled("aaaa0000000000000000000000000002"), "/0s"},   // le=0.005: the latest
		{service.Request{}, "/0s"},                             // unsampled: keeps the one before
		{service.Request{}, "/10ms"},                           // le=0.05: unsampled only
		{sampled("aaaa0000000000000000000000000003"), "/60ms"}, // +Inf
	} {
		r.req.Method, r.req.Path = "GET", r.path
		_, _ = ok.Handle(context.Background(), r.req)
		time.Sleep(2 * time.Duration(exemplarGap)) // past the gap: the later one replaces it
	}
	_, _ = untraced.Handle(context.Background(), service.Request{Method: "GET", Path: "/0s"})
	f.Flush()

	for _, m := range gatherFamily(t, reg, "app_request_duration_seconds").GetMetric() {
		var got []string
		for _, b := range m.GetHistogram().GetBucket() {
			id := ""
			if e := b.GetExemplar(); e != nil {
				id = e.GetLabel()[0].GetValue()
				if e.GetLabel()[0].GetName() != "trace_id" || e.GetTimestamp() == nil {
					t.Errorf("exemplar %v", e)
				}
			}
			got = append(got, fmt.Sprintf("%g:%s", b.GetUpperBound(), id))
		}
		want := "0.005:aaaa0000000000000000000000000002 0.05: +Inf:aaaa0000000000000000000000000003"
		if code := labelValue(m, "code"); code == "404" {
			want = "0.005: 0.05:"
		}
		if strings.Join(got, " ") != want {
			t.Errorf("code %s: buckets %v, want %s", labelValue(m, "code"), got, want)
		}
	}
	for _, m := range gatherFamily(t, reg, "app_requests_total").GetMetric() {
		e := m.GetCounter().GetExemplar()
		switch labelValue(m, "code") {
		case "200":
			if e == nil || e.GetLabel()[0].GetValue() != "aaaa0000000000000000000000000003" || e.GetValue() != 1 {
				t.Errorf("counter exemplar %v, want the latest sampled request", e)
			}
		case "404":
			if e != nil {
				t.Errorf("unsampled series has exemplar %v", e)
			}
		}
	}
	if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
		t.Fatalf("lint: %v %v", lint, err)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestExemplarGap: a sampled request replaces its bucket's exemplar only when that one is at least
// exemplarGap old.
func TestExemplarGap(t *testing.T) {
	agg := NewAggregator("other", nil, []float64{1})
	gap := time.Duration(exemplarGap)
	for _, r := range []struct {
		id string
		at time.Duration
	}{{"first", time.Hour}, {"too soon", time.Hour + gap - 1}, {"later", time.Hour + gap}} {
		agg.EndSampled(agg.Begin(), 0, "GET", 200, time.Millisecond, r.at, r.id)
	}
	if ex := agg.Snapshot().Series[0].Exemplars[0]; ex.TraceID != "later" || !ex.Time.Equal(epoch.Add(time.Hour+gap)) {
		t.Fatalf("exemplar %+v, want the one a gap after the first", ex)
	}
}

// TestExemplarsInOpenMetricsOnly: the OpenMetrics exposition shows the exemplars, with the trace
// id, the request's duration and its time; the text format has none.
func TestExemplarsInOpenMetricsOnly(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.1})
	f := NewFlusher(agg, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))
	before := time.Now()
	agg.EndSampled(agg.Begin(), 1, "GET", 200, 25*time.Millisecond, monotonic(), "4bf92f3577b34da6a3ce929d0e0e4736")
	f.Flush()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	encode := func(format expfmt.Format) string {
		var b bytes.Buffer
		enc := expfmt.NewEncoder(&b, format)
		for _, mf := range fams {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	om := encode(expfmt.NewFormat(expfmt.TypeOpenMetrics))
	for _, want := range []string{
		`app_request_duration_seconds_bucket{code="200",method="GET",route="r",le="0.1"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.025 `,
		`app_requests_total{code="200",method="GET",route="r"} 1.0 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 1.0 `,
	} {
		i := strings.Index(om, want)
		if i < 0 {
			t.Fatalf("OpenMetrics lacks %q:\n%s", want, om)
		}
		var ts float64
		if _, err := fmt.Sscan(om[i+len(want):], &ts); err != nil || ts < float64(before.Unix())-1 || ts > float64(time.Now().Unix())+1 {
			t.Errorf("exemplar timestamp %v (%v), want about now", ts, err)
		}
	}
	if text := encode(expfmt.NewFormat(expfmt.TypeTextPlain)); strings.Contains(text, "trace_id") {
		t.Errorf("text format shows exemplars:\n%s", text)
	}
}

// TestExemplarsAreNeverTorn: requests of many goroutines write the exemplars of the same buckets
// while snapshots read them; every exemplar read is one a request wrote whole (its two halves
// agree, and its value is that request's), never a mix of two.
func TestExemplarsAreNeverTorn(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.001})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := uint64(w)<<32 | uint64(i)
				d := time.Duration(n%2000) * time.Microsecond // both buckets
				id := fmt.Sprintf("%016x%016x", n, n^0x5555aaaa5555aaaa)
				agg.EndSampled(agg.Begin(), 1, "GET", 200, d, monotonic(), id)
			}
		}()
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	reads := 0
	for time.Now().Before(deadline) {
		for _, s := range agg.Snapshot().Series {
			for _, e := range s.Exemplars {
				if e.TraceID == "" {
					continue
				}
				reads++
				var hi, lo uint64
				if _, err := fmt.Sscanf(e.TraceID, "%016x%016x", &hi, &lo); err != nil || lo != hi^0x5555aaaa5555aaaa ||
					e.Value != (time.Duration(hi%2000)*time.Microsecond).Seconds() {
					t.Fatalf("torn exemplar %+v", e)
				}
			}
		}
	}
	close(stop)
	wg.Wait()
	if reads == 0 {
		t.Fatal("no exemplar read")
	}
}

// TestCountingSampledDoesNotAllocate: a sampled request's exemplar costs no allocation in the
// metrics layer (the tracing backend formats the trace id; see tracingtest).
func TestCountingSampledDoesNotAllocate(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.1, 1})
	id := "4bf92f3577b34da6a3ce929d0e0e4736"
	svc := Counting(agg)(fixedService{resp: service.Response{Status: 200}})
	ctx, req := context.Background(), sampled(id)
	req.Method, req.Path = "GET", "/"
	_, _ = svc.Handle(ctx, req) // the first sampled answer of a series makes its exemplar slots
	if n := testing.AllocsPerRun(1000, func() { _, _ = svc.Handle(ctx, req) }); n != 0 {
		t.Fatalf("%v allocations per sampled request", n)
	}
	if ex := agg.Snapshot().Series[0].Exemplars; len(ex) != 3 || ex[0].TraceID != id {
		t.Fatalf("exemplars %+v", ex)
	}
}

// TestCountingUnsampledDoesNotAllocate: a request that carries no sampled trace, as every request
// does when tracing is off or the request's trace is not sampled.
func TestCountingUnsampledDoesNotAllocate(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.1, 1})
	svc := Counting(agg)(fixedService{resp: service.Response{Status: 200}})
	ctx, req := context.Background(), service.Request{Method: "GET", Path: "/"}
	_, _ = svc.Handle(ctx, req)
	if n := testing.AllocsPerRun(1000, func() { _, _ = svc.Handle(ctx, req) }); n != 0 {
		t.Fatalf("%v allocations per unsampled request", n)
	}
	if ex := agg.Snapshot().Series[0].Exemplars; ex != nil {
		t.Fatalf("exemplars of unsampled requests: %+v", ex)
	}
}

// TestNoExemplarOfAnUnsampledTrace: a request that carries the id of a trace that is not sampled
// (a caller decided so) leaves no exemplar: the id would name a trace the backend never holds.
func TestNoExemplarOfAnUnsampledTrace(t *testing.T) {
	agg := NewAggregator("other", []string{"r"}, []float64{0.1, 1})
	svc := Counting(agg)(fixedService{resp: service.Response{Status: 200}})
	req := service.Request{Method: "GET", Path: "/", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}
	_, _ = svc.Handle(context.Background(), req)
	if s := agg.Snapshot().Series; len(s) != 1 || s[0].Exemplars != nil {
		t.Fatalf("series %+v: want one, without exemplars", s)
	}
}

// TestUpstreamExemplarsInOpenMetrics: a call of a sampled request leaves its trace id as the
// exemplar of its bucket of app_upstream_request_duration_seconds, with the call's duration, in
// the OpenMetrics exposition; a call of an unsampled request, or of one whose trace is not sampled,
// leaves none on its bucket; and counting either allocates nothing once the series' slots exist.
func TestUpstreamExemplarsInOpenMetrics(t *testing.T) {
	reqs := NewAggregator("other", nil, []float64{0.01, 0.1})
	calls := NewCallCounter([]float64{0.01, 0.1}, 16)
	inv := calls.Register("checkout", "inventory")
	id := "4bf92f3577b34da6a3ce929d0e0e4736"
	count := func(d time.Duration, traceID string, sampled bool) {
		CountingCaller(calls)(fixedCaller{service.CallResult{Status: 200, Duration: d}}).Call(context.Background(),
			service.CallRequest{Call: service.Call{ID: inv}, TraceID: traceID, TraceSampled: sampled})
	}
	count(50*time.Millisecond, id, true)                   // the 0.1 bucket
	count(5*time.Millisecond, "", false)                   // the 0.01 bucket, untraced
	count(500*time.Millisecond, "0000000000000abc", false) // +Inf, a trace the caller did not sample
	f := NewFlusherWithCalls(reqs, calls, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeOpenMetrics))
	for _, mf := range fams {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	om := b.String()
	want := `app_upstream_request_duration_seconds_bucket{call="inventory",code="200",route="checkout",le="0.1"} 2 # {trace_id="` + id + `"} 0.05 `
	if !strings.Contains(om, want) {
		t.Fatalf("OpenMetrics lacks %q:\n%s", want, om)
	}
	if n := strings.Count(om, "# {trace_id="); n != 1 {
		t.Errorf("%d exemplars, want the sampled call's alone:\n%s", n, om)
	}

	call := CountingCaller(calls)(fixedCaller{service.CallResult{Status: 200, Duration: time.Millisecond}})
	for _, req := range []service.CallRequest{{Call: service.Call{ID: inv}}, {Call: service.Call{ID: inv}, TraceID: id, TraceSampled: true}} {
		call.Call(context.Background(), req)
		if n := testing.AllocsPerRun(1000, func() { call.Call(context.Background(), req) }); n != 0 {
			t.Errorf("%v allocations per call (sampled %v)", n, req.TraceSampled)
		}
	}
}
