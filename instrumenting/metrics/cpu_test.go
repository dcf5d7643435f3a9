package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCPUBurnedIsExactAndBounded: CPU added by routes is published by the flush exactly (every add
// in one flush, none twice, however they race it), by route, a route that burned none has no
// series, and an unknown route id is counted under the catch-all.
func TestCPUBurnedIsExactAndBounded(t *testing.T) {
	agg := NewAggregator("other", []string{"burn", "idle"}, []float64{1})
	burn := agg.RouteID("burn")
	f := NewFlusher(agg, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{}))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() { // flushes racing the adds
		for {
			select {
			case <-stop:
				return
			default:
				f.Flush()
			}
		}
	}()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				agg.AddCPU(burn, 5*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	agg.AddCPU(99, time.Second) // no such route: the catch-all's
	f.Flush()

	want := `
# HELP app_cpu_burned_seconds_total CPU time the route rule's cost (its cpu key) burned on requests, by route rule, as the burning threads' CPU clocks measured it.
# TYPE app_cpu_burned_seconds_total counter
app_cpu_burned_seconds_total{route="burn"} 40
app_cpu_burned_seconds_total{route="other"} 1
`
	if err := testutil.CollectAndCompare(reg, strings.NewReader(want), "app_cpu_burned_seconds_total"); err != nil {
		t.Fatal(err)
	}
	if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
		t.Fatalf("metric lint: %v %v", lint, err)
	}
}

// TestCPUBurnedSurvivesReRegistering: a route registered again (a reload) keeps its CPU count.
func TestCPUBurnedSurvivesReRegistering(t *testing.T) {
	agg := NewAggregator("other", []string{"a"}, []float64{1})
	agg.AddCPU(agg.RouteID("a"), time.Second)
	agg.Register("b")
	agg.AddCPU(agg.Register("a"), time.Second)
	snap := agg.Snapshot()
	if len(snap.CPU) != 1 || snap.CPU[0] != (RouteCPU{Route: "a", Seconds: 2}) {
		t.Fatalf("CPU %+v, want a: 2s", snap.CPU)
	}
}
