package instrumenting

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"
)

// FuzzTraceHeaders sends arbitrary trace headers (Jaeger's, B3 single and multi, W3C) through the
// traced handler of every backend: it never panics, always answers, and always echoes a trace id
// of 16 or 32 hex digits, the caller's when valid or a fresh one.
func FuzzTraceHeaders(f *testing.F) {
	f.Add("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1", "", "", "")
	f.Add("", "4bf92f3577b34da6-00f067aa0ba902b7-1", "", "")
	f.Add("", "", "00f067aa0ba902b7", "")
	f.Add("", "", "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("\xff:\xff:0:1", "-", "zz", "00--")
	tracers := map[string]func(){}
	handlers := map[string]http.Handler{}
	for _, backend := range []string{"jaeger", "zipkin", "otlp"} {
		tracer, closeTracer := newTestTracer(f, backend, nil)
		tracers[backend] = closeTracer
		handlers[backend] = tracedHandler(f, tracer, log.NewNopLogger())
	}
	f.Cleanup(func() {
		for _, closeTracer := range tracers {
			closeTracer()
		}
	})
	f.Fuzz(func(t *testing.T, uber, b3, xb3, traceparent string) {
		for backend, h := range handlers {
			req := httptest.NewRequest("GET", "/tea", nil)
			for k, v := range map[string]string{"uber-trace-id": uber, "b3": b3, "X-B3-TraceId": xb3, "X-B3-SpanId": xb3, "traceparent": traceparent} {
				if v != "" {
					req.Header[k] = []string{v}
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			id := echoTraceID(t, rec)
			if rec.Code != 418 || !isHexID(id) {
				t.Fatalf("%s: status %d, trace_id %q", backend, rec.Code, id)
			}
		}
	})
}

func isHexID(s string) bool {
	if len(s) != 16 && len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
