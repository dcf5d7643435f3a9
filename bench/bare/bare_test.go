package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkBareHandler is the baseline of cmd/anyroute's BenchmarkRequestPathTracing/none: the
// same request through the bare handler, with the same kind of discarding writer.
//
//	go test -run '^$' -bench . -benchmem ./bench/bare/ ./cmd/anyroute/
func BenchmarkBareHandler(b *testing.B) {
	h := newHandler("bench")
	req := httptest.NewRequest("GET", "/orders/42?expand=1", nil)
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func TestHandlerEchoes(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler("i").ServeHTTP(rec, httptest.NewRequest("PUT", "/a?b=1", nil))
	want := `{"method":"PUT","path":"/a","query":"b=1","route":"other","status":200,"instance":"i","trace_id":""}` + "\n"
	if rec.Body.String() != want {
		t.Fatalf("got %s", rec.Body.String())
	}
}
