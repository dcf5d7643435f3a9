package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-kit/log"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/service"
)

// TestOneTraceIDInEveryLayer: the tracing decorator resolves a request's trace once and every layer
// below reads it from the request, so the assembled app names one trace id in the echo, the access
// log line, the panic's log line and the exemplars, for a trace it starts and for a caller's trace
// it continues. A caller's trace that is not sampled is named in the echo and the log lines but
// leaves no exemplar.
func TestOneTraceIDInEveryLayer(t *testing.T) {
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name, uberTraceID string // the caller's header, "" for none
		sampled           bool
	}{
		{"a trace of its own", "", true},
		{"the caller's sampled trace", callerTrace + ":00f067aa0ba902b7:0:1", true},
		{"the caller's unsampled trace", callerTrace + ":00f067aa0ba902b7:0:0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Tracing.Backend = "jaeger"
			cfg.Tracing.Sampler = config.Sampler{Type: "const", Param: 1}
			cfg.Tracing.Jaeger.AgentAddr = closedUDPAddr(t)
			cfg.Log.AccessSample = 1
			var logs bytes.Buffer
			a, err := newAppWith(cfg, log.NewLogfmtLogger(&logs), func(s service.Service) service.Service { return boomService{s} })
			if err != nil {
				t.Fatal(err)
			}
			closeTracingAtEnd(t, a)
			req := httptest.NewRequest("GET", "/boom", nil)
			if tc.uberTraceID != "" {
				req.Header.Set("uber-trace-id", tc.uberTraceID)
			}
			rec := httptest.NewRecorder()
			a.api.ServeHTTP(rec, req)
			var echo struct {
				TraceID string `json:"trace_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &echo); err != nil || rec.Code != 500 {
				t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
			}
			if len(echo.TraceID) != 32 || (tc.uberTraceID != "" && echo.TraceID != callerTrace) {
				t.Fatalf("echo's trace id %q", echo.TraceID)
			}
			for _, msg := range []string{`msg="panic while handling a request"`, "msg=request"} {
				if !hasLine(logs.String(), msg, "trace_id="+echo.TraceID) {
					t.Errorf("no line with %s and trace_id=%s:\n%s", msg, echo.TraceID, logs.String())
				}
			}
			ids := flushedExemplarIDs(t, a)
			if !tc.sampled {
				if len(ids) != 0 {
					t.Fatalf("exemplars %v of a trace that is not sampled", ids)
				}
				return
			}
			// one on the counter, one on the request's bucket
			if len(ids) != 2 || ids[0] != echo.TraceID || ids[1] != echo.TraceID {
				t.Fatalf("exemplars %v, echo's trace id %q", ids, echo.TraceID)
			}
		})
	}
}

// hasLine reports whether one line of logs holds every one of parts.
func hasLine(logs string, parts ...string) bool {
	for line := range strings.Lines(logs) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
