// Package runtimemetrics serves the Go runtime's figures the bench driver reads from every bare
// server (allocations, bytes allocated, GC cycles, heap in use, live heap), under the names
// client_golang's Go collector gives them, read from runtime/metrics by hand so that a baseline's
// live heap does not grow by a metrics library. The bare servers share it, so that each reports
// the same figures the same way.
package runtimemetrics

import (
	"fmt"
	"net/http"
	"runtime/metrics"
)

// runtimeMetrics are the exposed names and the runtime/metrics samples each sums, as client_golang's
// Go collector defines them (go_memstats_mallocs_total counts tiny allocations too), plus the
// runtime/metrics rules' names for GC cycles and the live heap.
var runtimeMetrics = []struct {
	name, kind string
	samples    []string
}{
	{"go_memstats_mallocs_total", "counter", []string{"/gc/heap/allocs:objects", "/gc/heap/tiny/allocs:objects"}},
	{"go_memstats_alloc_bytes_total", "counter", []string{"/gc/heap/allocs:bytes"}},
	{"go_gc_cycles_total_gc_cycles_total", "counter", []string{"/gc/cycles/total:gc-cycles"}},
	{"go_memstats_heap_inuse_bytes", "gauge", []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes"}},
	{"go_gc_heap_live_bytes", "gauge", []string{"/gc/heap/live:bytes"}},
}

// Serve answers the runtime figures in Prometheus' text format.
func Serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range runtimeMetrics {
		samples := make([]metrics.Sample, len(m.samples))
		for i, name := range m.samples {
			samples[i].Name = name
		}
		metrics.Read(samples)
		var v uint64
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v += s.Value.Uint64()
			}
		}
		fmt.Fprintf(w, "# TYPE %s %s\n%s %d\n", m.name, m.kind, m.name, v)
	}
}
