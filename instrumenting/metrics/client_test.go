package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestClientCollector: a client's requests, counted on an aggregator whose routes are its targets,
// are served as requests_total and request_duration_seconds by target, method and code (error
// kinds by name), pass the pedantic registry and the linter, and a sampled request's trace id is
// the exemplar of its bucket.
func TestClientCollector(t *testing.T) {
	agg := NewAggregator("other", []string{"cart", "order"}, []float64{0.1, 1}, MaxRoutes(3))
	f := NewFlusher(agg, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewClientCollector("load", f, "Time from each request's due time to its answer."))
	cart, order := agg.RouteID("cart"), agg.RouteID("order")
	agg.End(agg.Begin(), cart, "GET", 200, 50*time.Millisecond)
	agg.End(agg.Begin(), cart, "GET", 200, 500*time.Millisecond)
	agg.End(agg.Begin(), order, "POST", CodeTimeout, 2*time.Second)
	agg.EndSampled(agg.Begin(), order, "POST", 503, 20*time.Millisecond, Monotonic(), "4bf92f3577b34da6a3ce929d0e0e4736")
	f.Flush()
	want := `
# HELP load_requests_total Requests that ended, by target, method and status code (timeout, error or canceled when no answer came).
# TYPE load_requests_total counter
load_requests_total{code="200",method="GET",target="cart"} 2
load_requests_total{code="503",method="POST",target="order"} 1
load_requests_total{code="timeout",method="POST",target="order"} 1
`
	if err := testutil.CollectAndCompare(reg, strings.NewReader(want), "load_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "load_request_duration_seconds"); n != 3 {
		t.Errorf("%d latency series, want 3", n)
	}
	if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
		t.Errorf("lint: %v %v", lint, err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, fam := range fams {
		if fam.GetName() != "load_request_duration_seconds" {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil && e.GetLabel()[0].GetValue() == "4bf92f3577b34da6a3ce929d0e0e4736" && b.GetUpperBound() == 0.1 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error("the sampled request's trace id is not the exemplar of its 0.1 bucket")
	}
	if CodeLabel(CodeCanceled) != "canceled" || CodeLabel(404) != "404" {
		t.Errorf("CodeLabel: %q, %q", CodeLabel(CodeCanceled), CodeLabel(404))
	}
}
