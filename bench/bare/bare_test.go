package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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
	req := httptest.NewRequest("PUT", "/a?b=1", nil)
	req.Header.Set("X-Request-Id", "r1")
	newHandler("i").ServeHTTP(rec, req)
	want := `{"method":"PUT","path":"/a","query":"b=1","route":"other","status":200,"instance":"i","trace_id":"","request_id":"r1"}` + "\n"
	if rec.Body.String() != want {
		t.Fatalf("got %s", rec.Body.String())
	}
	if got := rec.Header().Get("X-Request-Id"); got != "r1" {
		t.Fatalf("X-Request-Id %q", got)
	}
}

func TestHandlerMakesARequestID(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler("i").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var e echo
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || len(e.RequestID) != 32 || rec.Header().Get("X-Request-Id") != e.RequestID {
		t.Fatalf("request id %q (header %q), err %v", e.RequestID, rec.Header().Get("X-Request-Id"), err)
	}
}

// TestCallingHandler: one call per request, to the path under the upstream URL, with the
// request id and hop count; the upstream's JSON answer nested; its connection reused.
func TestCallingHandler(t *testing.T) {
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() != "/up/a%20b/c" {
			t.Errorf("upstream path %q", r.URL.EscapedPath())
		}
		if r.Header.Get("X-Request-Id") != "r1" || r.Header.Get("X-Anyroute-Hops") != "1" {
			t.Errorf("upstream headers %v", r.Header)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"route":"up"}`))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	h := newCallingHandler("i", up.URL+"/up/")
	for range 3 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/a%20b/c", nil)
		req.Header.Set("X-Request-Id", "r1")
		h.ServeHTTP(rec, req)
		var e echo
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		if len(e.Calls) != 1 || e.Calls[0].Status != 200 || string(e.Calls[0].Answer) != `{"route":"up"}` || e.Calls[0].Error != "" {
			t.Fatalf("echo %s", rec.Body.String())
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("upstream accepted %d connections for 3 sequential calls, want 1", n)
	}
}
