package runtimemetrics

import (
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestRuntimeMetrics: the exposition carries every figure the driver reads, with a value that
// moves with allocations.
func TestRuntimeMetrics(t *testing.T) {
	read := func() map[string]float64 {
		w := httptest.NewRecorder()
		Serve(w, httptest.NewRequest("GET", "/metrics", nil))
		m := map[string]float64{}
		for _, line := range strings.Split(w.Body.String(), "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, value, ok := strings.Cut(line, " ")
			if !ok {
				t.Fatalf("line %q: no value", line)
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			m[name] = v
		}
		return m
	}
	before := read()
	for _, m := range runtimeMetrics {
		if _, ok := before[m.name]; !ok {
			t.Errorf("%s missing", m.name)
		}
	}
	sink = make([]byte, 1<<20)
	runtime.GC()
	after := read()
	if after["go_memstats_alloc_bytes_total"]-before["go_memstats_alloc_bytes_total"] < 1<<20 {
		t.Errorf("bytes allocated moved from %v to %v after a 1 MiB allocation", before["go_memstats_alloc_bytes_total"], after["go_memstats_alloc_bytes_total"])
	}
	if after["go_gc_cycles_total_gc_cycles_total"] <= before["go_gc_cycles_total_gc_cycles_total"] {
		t.Errorf("GC cycles did not move over runtime.GC")
	}
	if after["go_memstats_heap_inuse_bytes"] <= 0 || after["go_gc_heap_live_bytes"] <= 0 {
		t.Errorf("heap in use %v, live heap %v", after["go_memstats_heap_inuse_bytes"], after["go_gc_heap_live_bytes"])
	}
}

var sink []byte
