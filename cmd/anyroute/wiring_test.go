package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-kit/log"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/service"
	"github.com/anyroute/anyroute/transport"
)

// TestWiring drives the assembled API handler, every layer real, through httptest.
func TestWiring(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "config", "examples", "full.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.MaxBodyBytes = 64
	a, err := newApp(cfg, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target string
		body           io.Reader
		status         int
		route          string
	}{
		{"GET", "/healthz", nil, 200, "health"},
		{"POST", "/healthz", nil, 200, "other"},
		{"POST", "/orders", strings.NewReader(`{"qty":1}`), 201, "create_order"},
		{"GET", "/orders/42?expand=1", nil, 200, "order"},
		{"PURGE", "/tea", nil, 418, "teapot"},
		{"DELETE", "/metrics", nil, 200, "other"},
		{"PUT", "/orders/7", strings.NewReader(strings.Repeat("x", 65)), 413, "order"},
		{"PUT", "/orders/8", iotest.ErrReader(errors.New("reset")), 400, "order"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		a.api.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, tt.body))
		var echo transport.Echo
		if err := json.Unmarshal(rec.Body.Bytes(), &echo); err != nil {
			t.Fatalf("%s %s: %q: %v", tt.method, tt.target, rec.Body.String(), err)
		}
		if rec.Code != tt.status || echo.Status != tt.status || echo.Route != tt.route || echo.Method != tt.method || echo.Instance == "" {
			t.Errorf("%s %s: got %d %+v, want %d route %s", tt.method, tt.target, rec.Code, echo, tt.status, tt.route)
		}
		if tt.route == "order" && tt.status == 200 && (len(echo.Padding) != 2048 || echo.Query != "expand=1") {
			t.Errorf("%s %s: padding %d bytes, query %q", tt.method, tt.target, len(echo.Padding), echo.Query)
		}
	}

	// Every answer, refusals of the body included, is counted under its route.
	a.flusher.Flush()
	rec := httptest.NewRecorder()
	a.admin.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "process_resident_memory_bytes") {
		t.Fatalf("admin /metrics: %d", rec.Code)
	}
	for _, want := range []string{
		`app_requests_total{code="413",method="PUT",route="order"} 1`,
		`app_requests_total{code="400",method="PUT",route="order"} 1`,
		`app_requests_total{code="418",method="OTHER",route="teapot"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestCheckConfigExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := realMain([]string{"check-config", filepath.Join("..", "..", "config", "examples", "full.json")}, &out, &errOut); code != 0 {
		t.Fatalf("valid example: exit %d: %s", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := realMain([]string{"check-config", filepath.Join("..", "..", "config", "testdata", "bad.json")}, &out, &errOut); code != 2 {
		t.Fatalf("bad config: exit %d, want 2", code)
	}
	if lines := strings.Count(errOut.String(), "\n"); lines != 12 {
		t.Fatalf("want one line per violation (12), got %d:\n%s", lines, errOut.String())
	}
	out.Reset()
	if code := realMain([]string{"schema"}, &out, io.Discard); code != 0 || !json.Valid(out.Bytes()) {
		t.Fatalf("schema: exit %d, valid JSON %v", code, json.Valid(out.Bytes()))
	}
	if code := realMain([]string{"-no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("unknown flag: exit %d, want 2", code)
	}
	out.Reset()
	if code := realMain([]string{"-version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "anyroute ") {
		t.Fatalf("-version: exit %d %q", code, out.String())
	}
}

// boomService panics on /boom and answers everything else as the real service does.
type boomService struct{ service.Service }

func (b boomService) Handle(ctx context.Context, req service.Request) (service.Response, error) {
	if req.Path == "/boom" {
		panic("forced by the test")
	}
	return b.Service.Handle(ctx, req)
}

func TestPanicAnswers500AndServingGoesOn(t *testing.T) {
	var logs bytes.Buffer
	a, err := newAppWith(config.Default(), log.NewLogfmtLogger(&logs), func(s service.Service) service.Service { return boomService{s} })
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path   string
		status int
	}{{"/boom", 500}, {"/fine", 200}, {"/boom", 500}, {"/fine", 200}} {
		rec := httptest.NewRecorder()
		a.api.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.status {
			t.Fatalf("%s: %d, want %d", tt.path, rec.Code, tt.status)
		}
		if tt.status == 500 && strings.Contains(rec.Body.String(), "forced") {
			t.Fatalf("the panic value leaked to the client: %s", rec.Body.String())
		}
	}
	if !strings.Contains(logs.String(), `panic="forced by the test"`) {
		t.Fatalf("panic not logged: %s", logs.String())
	}
	a.flusher.Flush()
	rec := httptest.NewRecorder()
	a.admin.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		"app_panics_total 2",
		`app_requests_total{code="500",method="GET",route="other"} 2`,
		`app_requests_total{code="200",method="GET",route="other"} 2`,
		// A panicked request is the catch-all's, not a route the aggregator did not know.
		"app_metrics_folded_requests_total 0",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestLogLevelFiltersEveryComponent: with log.level error, the access log (info) and the tracing
// backend's complaints (warn) are silent, and a panic (error) is still logged; with log.level
// info, the access log's lines carry level=info.
func TestLogLevelFiltersEveryComponent(t *testing.T) {
	for _, tt := range []struct {
		level string
		want  []string // a substring of every line, in order of the lines; nil: any number of lines, each with level=error
	}{
		{"error", nil},
		{"info", []string{"level=info"}},
	} {
		t.Run(tt.level, func(t *testing.T) {
			cfg := config.Default()
			cfg.Log.Level, cfg.Log.AccessSample = tt.level, 1
			cfg.Tracing.Backend = "zipkin"
			cfg.Tracing.Zipkin.URL = "http://" + closedTCPAddr(t) + "/api/v2/spans" // sends fail: warnings
			var logs bytes.Buffer
			a, err := newAppWith(cfg, newLogger(&logs, cfg.Log), func(s service.Service) service.Service { return boomService{s} })
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []*http.Request{
				httptest.NewRequest("GET", "/fine", nil),
				httptest.NewRequest("GET", "/boom", nil),
				httptest.NewRequest("POST", "/broken", iotest.ErrReader(errors.New("connection reset"))),
			} {
				a.api.ServeHTTP(httptest.NewRecorder(), r)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = a.tracing.Close(ctx) // the failed send of the spans is logged by now
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if tt.want == nil {
				if !strings.Contains(logs.String(), "panic while handling a request") {
					t.Errorf("the panic is not logged at level error:\n%s", logs.String())
				}
				for _, l := range lines {
					if !strings.Contains(l, "level=error") {
						t.Errorf("log.level error let through: %s", l)
					}
				}
				return
			}
			var access []string
			for _, l := range lines {
				if strings.Contains(l, "component=access") {
					access = append(access, l)
				}
				if !strings.Contains(l, "level=") {
					t.Errorf("a line without a level: %s", l)
				}
			}
			if len(access) != 3 {
				t.Fatalf("%d access lines for 3 requests:\n%s", len(access), logs.String())
			}
			for _, l := range access {
				if !strings.Contains(l, tt.want[0]) {
					t.Errorf("access line without %s: %s", tt.want[0], l)
				}
			}
		})
	}
}

// closedTCPAddr is a local TCP address nothing listens on: a connection to it is refused at once.
func closedTCPAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
