package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/service"
)

func TestDefaultPassesItsOwnChecks(t *testing.T) {
	if ps := Default().Check(); len(ps) > 0 {
		t.Fatalf("Default() fails Check: %v", ps)
	}
	// The defaults, written out, are a valid file: the schema and Default agree.
	data, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("defaults", data); err != nil {
		t.Fatalf("marshalled defaults do not load: %v", err)
	}
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load(filepath.Join("examples", "full.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 8 || cfg.Routes[1].Delay.D() != 20*time.Millisecond || cfg.Tracing.Sampler.Param != 0.01 {
		t.Fatalf("example decoded wrongly: %+v", cfg)
	}
}

func TestOmittedKeysKeepDefaults(t *testing.T) {
	cfg, err := Parse("partial", []byte(`{"http": {"addr": ":9000"}, "routes": [{"name": "a", "match": "/a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.HTTP.Addr = ":9000"
	if cfg.HTTP != want.HTTP || cfg.Admin != want.Admin || cfg.Metrics.FlushInterval != want.Metrics.FlushInterval {
		t.Fatalf("got %+v", cfg)
	}
}

// problems loads a file and returns its problems as "POINTER: REASON" lines.
func problems(t *testing.T, file string) []string {
	t.Helper()
	_, err := Load(file)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load(%s) = %v, want *config.Error", file, err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

func assertNamed(t *testing.T, got []string, wantPointers ...string) {
	t.Helper()
	for _, ptr := range wantPointers {
		if !slices.ContainsFunc(got, func(line string) bool { return strings.HasPrefix(line, ptr+": ") }) {
			t.Errorf("no problem named %s; got:\n  %s", ptr, strings.Join(got, "\n  "))
		}
	}
}

func TestSchemaViolationsAreAllNamed(t *testing.T) {
	got := problems(t, filepath.Join("testdata", "bad.json"))
	assertNamed(t, got,
		"/http/addr",              // wrong type
		"/http/timeout",           // unknown key
		"/metrics/flush_interval", // bad duration
		"/metrics/max_routes",     // out of range
		"/tracing/backend",        // not in enum
		"/tracing/sampler/param",  // negative
		"/log/access_sample",      // above 1
		"/routes/0/name",          // pattern
		"/routes/0/match",
		"/routes/0/status",
		"/routes/0/error_rate",
		"/routes/1/name", // missing
	)
	if len(got) != 12 {
		t.Errorf("got %d problems, want 12:\n  %s", len(got), strings.Join(got, "\n  "))
	}
}

func TestSemanticViolationsAreAllNamed(t *testing.T) {
	got := problems(t, filepath.Join("testdata", "semantic.json"))
	assertNamed(t, got, "/routes", "/routes/1/name", "/routes/1/match", "/metrics/buckets/1", "/tracing/sampler/param")
}

func TestUnusableFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]string{
		write("empty.json", "  \n"):                                       "file is empty",
		write("broken.json", "{\n  \"http\": {,\n}"):                      "not valid JSON at line 2",
		write("array.json", "[]"):                                         "must be a JSON object",
		filepath.Join(dir, "missing.json"):                                "cannot read file: no such file or directory",
		write("overflow.json", `{"shutdown": {"grace": "99999999999h"}}`): "/shutdown/grace: \"99999999999h\" is too long a duration",
	}
	for file, want := range tests {
		got := problems(t, file)
		if len(got) != 1 || !strings.Contains(got[0], want) {
			t.Errorf("%s: got %q, want one problem containing %q", filepath.Base(file), got, want)
		}
	}
}

// TestEveryOverflowingDurationIsNamed: durations the schema's pattern accepts but time.Duration
// cannot hold are all reported, each at its own pointer, array indexes included, beside the other
// problems of the file.
func TestEveryOverflowingDurationIsNamed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overflow.json")
	doc := `{"shutdown": {"grace": "99999999999h", "drain_delay": "1s"},
  "http": {"idle_timeout": "9999999999999s"},
  "routes": [{"name": "a", "match": "/a"}, {"name": "b", "match": "/b", "delay": "3000000h"}]}`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	got := problems(t, file)
	assertNamed(t, got, "/shutdown/grace", "/http/idle_timeout", "/routes/1/delay")
	if len(got) != 3 {
		t.Errorf("got %d problems, want 3:\n  %s", len(got), strings.Join(got, "\n  "))
	}
}

// TestLongBadValuesAreCut: a problem quotes at most the start of a long bad value.
func TestLongBadValuesAreCut(t *testing.T) {
	long := strings.Repeat("9", 256<<10)
	file := filepath.Join(t.TempDir(), "long.json")
	if err := os.WriteFile(file, []byte(`{"shutdown": {"grace": "`+long+`h", "drain_delay": "`+long+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got := problems(t, file)
	assertNamed(t, got, "/shutdown/grace", "/shutdown/drain_delay")
	for _, p := range got {
		if len(p) > 200 {
			t.Errorf("a %d-byte problem line: %.120s...", len(p), p)
		}
	}
}

func TestSchemaIsServed(t *testing.T) {
	var v map[string]any
	if err := json.Unmarshal(Schema(), &v); err != nil || v["$schema"] == nil {
		t.Fatalf("Schema() is not a JSON Schema document: %v", err)
	}
}

// parseProblems parses a document and returns its problems as "POINTER: REASON" lines; nil when
// it is valid.
func parseProblems(t *testing.T, doc string) []string {
	t.Helper()
	_, err := Parse("doc", []byte(doc))
	if err == nil {
		return nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse = %v, want *config.Error", err)
	}
	var out []string
	for _, p := range ce.Problems {
		out = append(out, p.String())
	}
	return out
}

// assertRefusedAt parses doc and asserts it is accepted when pointers is nil, and otherwise
// refused with a problem named at each pointer. It returns the problems for the tables whose rows
// list every problem their doc has (assertProblems); the others may let a doc say more.
func assertRefusedAt(t *testing.T, doc string, pointers []string) []string {
	t.Helper()
	got := parseProblems(t, doc)
	if pointers == nil {
		if got != nil {
			t.Fatalf("refused: %v", got)
		}
		return nil
	}
	assertNamed(t, got, pointers...)
	return got
}

// assertProblems is assertRefusedAt for a row that lists every problem its doc has: no other is
// reported.
func assertProblems(t *testing.T, doc string, pointers []string) {
	t.Helper()
	if got := assertRefusedAt(t, doc, pointers); pointers != nil && len(got) != len(pointers) {
		t.Errorf("%d problems, want %d: %v", len(got), len(pointers), got)
	}
}

// TestAcceptedMeansServable sweeps the values that once passed the check and then broke requests:
// each is refused at its pointer, and the values just inside the limits are accepted.
func TestAcceptedMeansServable(t *testing.T) {
	route := func(extra string) string {
		return `{"routes": [{"name": "a", "match": "/a"}, {"name": "b", "match": "/b"` + extra + `}]}`
	}
	for _, tt := range []struct {
		name, doc string
		pointers  []string // nil: valid
	}{
		{"every HTTP timeout 0", `{"http": {"read_header_timeout": "0s", "read_timeout": "0s", "write_timeout": "0s", "idle_timeout": "0s"}}`,
			[]string{"/http/idle_timeout", "/http/read_header_timeout", "/http/read_timeout", "/http/write_timeout"}},
		{"timeouts of 1ns", `{"http": {"read_header_timeout": "1ns", "read_timeout": "1ns", "write_timeout": "1ns", "idle_timeout": "1ns"}}`, nil},
		{"status 100", route(`, "status": 100`), []string{"/routes/1/status"}},
		{"status 101", route(`, "status": 101`), []string{"/routes/1/status"}},
		{"status 103", route(`, "status": 103`), []string{"/routes/1/status"}},
		{"status 199", route(`, "status": 199`), []string{"/routes/1/status"}},
		{"status 200", route(`, "status": 200`), nil},
		{"status 204", route(`, "status": 204`), nil},
		{"status 304", route(`, "status": 304`), nil},
		{"status 599", route(`, "status": 599`), nil},
		{"status 600", route(`, "status": 600`), []string{"/routes/1/status"}},
		{"status 200.0 is an integer", route(`, "status": 200.0`), nil},
		{"status 200.5", route(`, "status": 200.5`), []string{"/routes/1/status"}},
		{"body_bytes 1e3 is an integer", route(`, "body_bytes": 1e3`), nil},
		{"max_body_bytes 1e3 is an integer", `{"http": {"max_body_bytes": 1e3}}`, nil},
		{"delay at write_timeout", `{"http": {"write_timeout": "10s"}, "routes": [{"name": "a", "match": "/a", "delay": "10s"}]}`, []string{"/routes/0/delay"}},
		{"delay and jitter past write_timeout", `{"http": {"write_timeout": "10s"}, "routes": [{"name": "a", "match": "/a", "delay": "6s", "jitter": "4s"}]}`, []string{"/routes/0/delay"}},
		{"delay under write_timeout", `{"http": {"write_timeout": "10s"}, "routes": [{"name": "a", "match": "/a", "delay": "6s", "jitter": "3999ms"}]}`, nil},
		{"jitter at the largest duration", route(`, "jitter": "2562047h"`), []string{"/routes/1/delay"}},
		{"delay and jitter that overflow together", route(`, "delay": "2562047h", "jitter": "2562047h"`), []string{"/routes/1/delay"}},
		{"bucket of 1e10 s", `{"metrics": {"buckets": [1, 1e10]}}`, []string{"/metrics/buckets/1"}},
		{"bucket of a year", `{"metrics": {"buckets": [1, 31536000]}}`, nil},
		{"max_header_bytes 4096", `{"http": {"max_header_bytes": 4096}}`, []string{"/http/max_header_bytes"}},
		{"max_header_bytes 8192", `{"http": {"max_header_bytes": 8192}}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) { assertProblems(t, tt.doc, tt.pointers) })
	}
	cfg, err := Parse("doc", []byte(route(`, "status": 204.0, "body_bytes": 1e3`)))
	if err != nil || cfg.Routes[1].Status != 204 || cfg.Routes[1].BodyBytes != 1000 {
		t.Fatalf("integral numbers decoded as %+v, %v", cfg.Routes[1], err)
	}
}

// TestEveryDurationKeyAtItsExtremes: each duration key of the config takes a value of the largest
// duration and one past it; the one past is refused at that key, alone.
func TestEveryDurationKeyAtItsExtremes(t *testing.T) {
	keys := []string{"http/read_header_timeout", "http/read_timeout", "http/write_timeout", "http/idle_timeout",
		"metrics/flush_interval", "shutdown/grace", "shutdown/drain_delay", "shutdown/metrics_linger"}
	for _, key := range keys {
		section, name, _ := strings.Cut(key, "/")
		doc := `{"` + section + `": {"` + name + `": "2562048h"}}`
		got := parseProblems(t, doc)
		if len(got) != 1 || !strings.HasPrefix(got[0], "/"+key+": ") || !strings.Contains(got[0], "too long a duration") {
			t.Errorf("%s past the largest duration: %v", key, got)
		}
	}
}

// TestDevZeroIsRefusedWithoutReadingIt: a device is refused for what it is, before a byte is read
// (it was read up to the size cap before); a regular file past the cap is TestReadFileCapsWhatItReads'.
func TestDevZeroIsRefusedWithoutReadingIt(t *testing.T) {
	got := problems(t, "/dev/zero")
	if len(got) != 1 || !strings.Contains(got[0], "not a regular file (a character device)") {
		t.Fatalf("/dev/zero: %v", got)
	}
}

// TestUpstreamAndLatencyChecks: the keys of issue 13 are checked beyond the schema, each problem at
// its pointer, and the valid forms decode to the service's rule as they should.
func TestUpstreamAndLatencyChecks(t *testing.T) {
	route := func(extra string) string {
		return `{"http": {"write_timeout": "10s"}, "routes": [{"name": "a", "match": "/a"` + extra + `}]}`
	}
	for _, tt := range []struct {
		name, doc string
		pointers  []string
	}{
		{"lognormal", route(`, "latency": {"distribution": "lognormal", "median": "20ms", "p99": "200ms"}`), nil},
		{"lognormal without p99", route(`, "latency": {"distribution": "lognormal", "median": "20ms"}`), []string{"/routes/0/latency/p99"}},
		{"key of another distribution", route(`, "latency": {"distribution": "normal", "mean": "20ms", "p99": "1s"}`), []string{"/routes/0/latency/p99"}},
		{"latency beside the shorthand", route(`, "delay": "1s", "latency": {"distribution": "fixed", "delay": "2s"}`), []string{"/routes/0/latency"}},
		{"p99 below the median", route(`, "latency": {"distribution": "lognormal", "median": "2s", "p99": "1s"}`), []string{"/routes/0/latency"}},
		{"percentiles out of order", route(`, "latency": {"distribution": "percentiles", "p50": "2s", "p90": "1s", "p99": "3s"}`), []string{"/routes/0/latency"}},
		{"percentiles past write_timeout", route(`, "latency": {"distribution": "percentiles", "p50": "1s", "p90": "5s", "p99": "9s"}`), []string{"/routes/0/latency"}},
		{"max past write_timeout", route(`, "latency": {"distribution": "normal", "mean": "1s", "max": "10s"}`), []string{"/routes/0/latency"}},
		{"error mix over 1", route(`, "error_rate": 0.5, "errors": [{"status": 503, "rate": 0.4}, {"status": 429, "rate": 0.2}]`), []string{"/routes/0/errors"}},
		{"error mix of exactly 1", route(`, "errors": [{"status": 503, "rate": 0.75}, {"status": 429, "rate": 0.25}]`), nil},
		{"error mix of a 2xx", route(`, "errors": [{"status": 204, "rate": 0.5}]`), []string{"/routes/0/errors/0/status"}},
		{"calls", route(`, "calls": [{"name": "inv", "url": "http://inv:8080/items/{path}", "timeout": "500ms"}, {"name": "pay", "url": "https://pay/"}], "call_mode": "parallel", "on_call_error": "ignore"`), nil},
		{"duplicate call names", route(`, "calls": [{"name": "inv", "url": "http://a/"}, {"name": "inv", "url": "http://b/"}]`), []string{"/routes/0/calls/1/name"}},
		{"call without a url", route(`, "calls": [{"name": "inv"}]`), []string{"/routes/0/calls/0/url"}},
		{"call url of another scheme", route(`, "calls": [{"name": "inv", "url": "ftp://inv/"}]`), []string{"/routes/0/calls/0/url"}},
		{"{path} in a call's host", route(`, "calls": [{"name": "inv", "url": "http://{path}"}]`), []string{"/routes/0/calls/0/url"}},
		{"{path} in a call's port", route(`, "calls": [{"name": "inv", "url": "http://inv:{path}/x"}]`), []string{"/routes/0/calls/0/url"}},
		{"{path} in a call's query", route(`, "calls": [{"name": "inv", "url": "http://inv/x?p={path}"}]`), nil},
		{"a route calling itself", `{"http": {"addr": ":8080"}, "routes": [{"name": "a", "match": "/*", "calls": [{"name": "self", "url": "http://127.0.0.1:8080/{path}"}]}]}`, []string{"/routes/0/calls/0/url"}},
		{"calling itself as localhost", `{"http": {"addr": "127.0.0.1:9000"}, "routes": [{"name": "a", "match": "/a", "calls": [{"name": "self", "url": "http://localhost:9000/a"}]}]}`, []string{"/routes/0/calls/0/url"}},
		{"calling itself by the default port", `{"http": {"addr": "0.0.0.0:80"}, "routes": [{"name": "a", "match": "/a/{id}", "calls": [{"name": "self", "url": "http://[::1]/a/{path}"}]}]}`, []string{"/routes/0/calls/0/url"}},
		{"calling itself as named", `{"http": {"addr": "svc.example:8080"}, "routes": [{"name": "a", "match": "/a", "calls": [{"name": "self", "url": "http://SVC.example:8080/a"}]}]}`, []string{"/routes/0/calls/0/url"}},
		{"two routes calling each other", `{"http": {"addr": ":8080"}, "routes": [
  {"name": "a", "match": "/a/*", "calls": [{"name": "b", "url": "http://127.0.0.1:8080/b/{path}"}]},
  {"name": "b", "match": "/b/{id}/*", "methods": ["GET"], "calls": [{"name": "a", "url": "http://127.0.0.1:8080/a/"}]}]}`, []string{"/routes/0/calls/0/url", "/routes/1/calls/0/url"}},
		{"calling an own route without calls", `{"http": {"addr": ":8080"}, "routes": [
  {"name": "front", "match": "/front/*", "calls": [{"name": "items", "url": "http://127.0.0.1:8080/items/{path}"}, {"name": "pay", "url": "http://localhost:8080/pay", "method": "POST"}]},
  {"name": "pay", "match": "/pay", "methods": ["POST"]},
  {"name": "pay_get", "match": "/pay", "calls": [{"name": "x", "url": "http://x/"}]}]}`, nil},
		{"a call to another port of this machine", `{"http": {"addr": ":8080"}, "routes": [{"name": "a", "match": "/*", "calls": [{"name": "b", "url": "http://127.0.0.1:8090/{path}"}]}]}`, nil},
		{"a call to another host on the same port", `{"http": {"addr": ":8080"}, "routes": [{"name": "a", "match": "/*", "calls": [{"name": "b", "url": "http://checkout:8080/{path}"}]}]}`, nil},
		{"16 calls, max_hops 4", fanOut(16, 4), nil},
		{"16 calls, max_hops 5", fanOut(16, 5), []string{"/routes/0/calls"}},
		{"3 calls, default max_hops", fanOut(3, 0), nil},
		{"4 calls, default max_hops", fanOut(4, 0), []string{"/routes/0/calls"}},
		{"4 calls, max_hops 8", fanOut(4, 8), nil},
		{"sequential calls past write_timeout", route(`, "calls": [{"name": "a", "url": "http://a/", "timeout": "6s"}, {"name": "b", "url": "http://b/", "timeout": "5s"}]`), []string{"/routes/0/calls"}},
		{"parallel calls within it", route(`, "call_mode": "parallel", "calls": [{"name": "a", "url": "http://a/", "timeout": "6s"}, {"name": "b", "url": "http://b/", "timeout": "5s"}]`), nil},
		{"calls and delay past write_timeout", route(`, "delay": "5s", "calls": [{"name": "a", "url": "http://a/", "timeout": "5s"}]`), []string{"/routes/0/delay"}},
		{"unknown call_mode", route(`, "call_mode": "whenever"`), []string{"/routes/0/call_mode"}},
		{"max_delay without overrides", route(`, "max_delay": "1s"`), []string{"/routes/0/max_delay"}},
		{"max_delay past write_timeout", route(`, "allow_overrides": true, "max_delay": "10s"`), []string{"/routes/0/max_delay"}},
		{"max_hops 0", `{"max_hops": 0}`, []string{"/max_hops"}},
		{"a seed", `{"seed": 42}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) { assertProblems(t, tt.doc, tt.pointers) })
	}
}

func TestRouteRule(t *testing.T) {
	cfg, err := Parse("doc", []byte(`{"http": {"write_timeout": "10s"}, "routes": [
  {"name": "a", "match": "/a", "delay": "20ms", "jitter": "5ms", "error_rate": 0.1},
  {"name": "b", "match": "/b", "latency": {"distribution": "lognormal", "median": "20ms", "p99": "200ms"},
   "errors": [{"status": 503, "rate": 0.02}], "error_rate": 0.01, "error_status": 429,
   "calls": [{"name": "inv", "url": "http://inv/", "timeout": "2s"}], "allow_overrides": true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Routes[0].Rule(cfg.HTTP), cfg.Routes[1].Rule(cfg.HTTP)
	if a.Latency.Distribution != "uniform" || a.Latency.Delay != 20*time.Millisecond || a.Latency.Jitter != 5*time.Millisecond ||
		len(a.Errors) != 1 || a.Errors[0].Status != 500 || a.Errors[0].Rate != 0.1 || !a.FailOnCallError || a.Parallel {
		t.Errorf("shorthands: %+v", a)
	}
	if len(b.Errors) != 2 || b.Errors[1].Status != 429 || b.Calls[0].Method != "GET" || b.Calls[0].Timeout != 2*time.Second {
		t.Errorf("mix and call defaults: %+v", b)
	}
	// The lognormal has no bound of its own: capped at 90% of what the calls leave of the write
	// timeout, which is also the default max_delay of the overrides.
	if want := (10*time.Second - 2*time.Second) * 9 / 10; b.Latency.Max != want || b.MaxDelay != want {
		t.Errorf("implicit cap %v, max_delay %v; want %v", b.Latency.Max, b.MaxDelay, want)
	}
}

func TestRestartOnly(t *testing.T) {
	running := Default()
	next := Default()
	next.Routes = []Route{{Name: "a", Match: "/a"}}
	next.MaxHops = 3
	seed := uint64(7)
	next.Seed = &seed
	if ps := RestartOnly(running, next); len(ps) != 0 {
		t.Fatalf("routes, seed and max_hops are reloadable, got %v", ps)
	}
	next.HTTP.Addr = ":9999"
	next.Tracing.Backend = "otlp"
	next.Metrics.Buckets = []float64{1, 2}
	var got []string
	for _, p := range RestartOnly(running, next) {
		got = append(got, p.Pointer)
	}
	if want := []string{"/http/addr", "/metrics/buckets", "/tracing/backend"}; !slices.Equal(got, want) {
		t.Fatalf("restart-only changes %v, want %v", got, want)
	}
}

func TestNativeHistogramsKey(t *testing.T) {
	if Default().Metrics.NativeHistograms {
		t.Fatal("native histograms on by default")
	}
	cfg, err := Parse("native", []byte(`{"metrics": {"native_histograms": true}}`))
	if err != nil || !cfg.Metrics.NativeHistograms {
		t.Fatalf("native_histograms true: %v %+v", err, cfg.Metrics)
	}
	_, err = Parse("native", []byte(`{"metrics": {"native_histograms": "yes"}}`))
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.HasPrefix(ce.Problems[0].String(), "/metrics/native_histograms: ") {
		t.Fatalf("a string for native_histograms: %v", err)
	}
}

// TestBoundsNeverOverflow: every bound check adds durations without wrapping, so a value near the
// largest duration is refused at its pointer instead of wrapping negative and passing. The first
// case is issue 23's: a p99 of 2000000h put the percentiles' top at twice the largest duration, a
// bound that wrapped negative, and requests went unanswered for years.
func TestBoundsNeverOverflow(t *testing.T) {
	route := func(wt, extra string) string {
		return `{"http": {"write_timeout": "` + wt + `"}, "routes": [{"name": "a", "match": "/a"` + extra + `}]}`
	}
	const big = "2000000h" // more than half the largest duration (2562047h)
	for _, tt := range []struct {
		name, doc string
		pointers  []string
	}{
		{"percentiles with a p99 of 2000000h", route("1m", `, "latency": {"distribution": "percentiles", "p50": "10ms", "p90": "50ms", "p99": "`+big+`"}`), []string{"/routes/0/latency"}},
		{"the same under the largest write_timeout", route("2562047h", `, "latency": {"distribution": "percentiles", "p50": "10ms", "p90": "50ms", "p99": "`+big+`"}`), []string{"/routes/0/latency"}},
		{"sequential calls that add up past the largest duration", route("2562047h", `, "calls": [{"name": "a", "url": "http://a/", "timeout": "`+big+`"}, {"name": "b", "url": "http://b/", "timeout": "`+big+`"}]`), []string{"/routes/0/calls"}},
		{"max_delay and calls that add up past it", route("2562047h", `, "allow_overrides": true, "max_delay": "`+big+`", "call_mode": "parallel", "calls": [{"name": "a", "url": "http://a/", "timeout": "`+big+`"}]`), []string{"/routes/0/max_delay"}},
		{"a delay and calls that add up past it", route("2562047h", `, "delay": "`+big+`", "calls": [{"name": "a", "url": "http://a/", "timeout": "`+big+`"}]`), []string{"/routes/0/delay"}},
		{"calls that leave a nanosecond for an unbounded latency", route("1s", `, "latency": {"distribution": "normal", "mean": "1ms"}, "calls": [{"name": "a", "url": "http://a/", "timeout": "999999999ns"}]`), []string{"/routes/0/calls"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseProblems(t, tt.doc)
			assertNamed(t, got, tt.pointers...)
			if len(got) != len(tt.pointers) {
				t.Errorf("%d problems, want %d: %v", len(got), len(tt.pointers), got)
			}
		})
	}
	// An unbounded distribution is capped at nine tenths of write_timeout: computed as wt*9/10,
	// the largest write_timeout wrapped to a negative cap, which means none.
	for _, wt := range []string{"2562047h", "1000000h", "1m"} {
		cfg, err := Parse("doc", []byte(route(wt, `, "latency": {"distribution": "normal", "mean": "1s", "stddev": "1s"}`)))
		if err != nil {
			t.Fatal(err)
		}
		rule := cfg.Routes[0].Rule(cfg.HTTP)
		if b, ok := rule.Latency.Bound(); !ok || b <= 0 || b >= cfg.HTTP.WriteTimeout.D() {
			t.Errorf("write_timeout %s: the latency is capped at %s (bounded %v)", wt, b, ok)
		}
	}
}

// TestSeedIsExact: a seed decodes to the very integer written, past 2^53 too and up to the
// schema's own maximum, the largest uint64; one past it is refused at /seed. Decoded through a
// float64 before, 2^53+1 became 2^53 and the largest uint64 was refused as a wrong type.
func TestSeedIsExact(t *testing.T) {
	for doc, want := range map[string]uint64{
		`{"seed": 9007199254740993}`:     1<<53 + 1,
		`{"seed": 18446744073709551615}`: math.MaxUint64,
		`{"seed": 42}`:                   42,
		`{"seed": 1e3}`:                  1000,
		`{"seed": 42.0}`:                 42,
	} {
		cfg, err := Parse("doc", []byte(doc))
		if err != nil || cfg.Seed == nil || *cfg.Seed != want {
			t.Errorf("%s: seed %v, %v; want %d", doc, cfg.Seed, err, want)
		}
	}
	for _, doc := range []string{`{"seed": 18446744073709551616}`, `{"seed": -1}`, `{"seed": 1.5}`} {
		got := parseProblems(t, doc)
		if len(got) != 1 || !strings.HasPrefix(got[0], "/seed: ") {
			t.Errorf("%s: %v, want one problem at /seed", doc, got)
		}
	}
	// The schema's maximum is the largest seed the config holds.
	var s struct {
		Properties map[string]struct {
			Maximum json.Number `json:"maximum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	if got := s.Properties["seed"].Maximum.String(); got != strconv.FormatUint(math.MaxUint64, 10) {
		t.Errorf("the schema's seed maximum is %s, want the largest uint64", got)
	}
}

// TestEveryProblemAtOnce: the semantic checks run beside the schema's problems and the overflowing
// durations, so one round of check-config names every problem, each once: a semantic problem that
// only echoes one already named (a latency that overflows and so reaches write_timeout) is left
// out. Before, a duplicate route name, or too many routes, went unreported beside any of them.
func TestEveryProblemAtOnce(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		pointers  []string
	}{
		{"a duplicate name beside an overflowing delay",
			`{"routes": [{"name": "a", "match": "/a", "delay": "99999999999h"}, {"name": "a", "match": "/b"}]}`,
			[]string{"/routes/0/delay", "/routes/1/name"}},
		{"a duplicate name beside an overflowing p99",
			`{"routes": [{"name": "a", "match": "/a", "latency": {"distribution": "percentiles", "p50": "1ms", "p90": "2ms", "p99": "99999999999h"}}, {"name": "a", "match": "/b"}]}`,
			[]string{"/routes/0/latency/p99", "/routes/1/name"}},
		{"a duplicate name on the route of an overflowing jitter",
			`{"routes": [{"name": "a", "match": "/a"}, {"name": "a", "match": "/b", "jitter": "99999999999h"}]}`,
			[]string{"/routes/1/jitter", "/routes/1/name"}},
		{"a duplicate name and a bad match beside the schema's problems",
			`{"http": {"addr": 5}, "routes": [{"name": "a", "match": "/a", "status": 700, "bogus": 1}, {"name": "a", "match": "/b{x}"}]}`,
			[]string{"/http/addr", "/routes/0/bogus", "/routes/0/status", "/routes/1/match", "/routes/1/name"}},
		{"no echo of a default standing in for a refused value",
			`{"tracing": {"sampler": {"type": "sometimes", "param": 5}}, "routes": [{"name": "a", "match": "/a", "allow_overrides": "yes", "max_delay": "1s"}]}`,
			[]string{"/tracing/sampler/type", "/routes/0/allow_overrides"}},
		{"too many routes beside one route's bad status",
			`{"metrics": {"max_routes": 1}, "routes": [{"name": "a", "match": "/a"}, {"name": "b", "match": "/b", "status": "x"}]}`,
			[]string{"/routes", "/routes/1/status"}},
		{"an overflowing write_timeout beside buckets out of order",
			`{"http": {"write_timeout": "99999999999h"}, "metrics": {"buckets": [2, 1]}}`,
			[]string{"/http/write_timeout", "/metrics/buckets/1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseProblems(t, tt.doc)
			assertNamed(t, got, tt.pointers...)
			if len(got) != len(tt.pointers) {
				t.Errorf("%d problems, want %d:\n  %s", len(got), len(tt.pointers), strings.Join(got, "\n  "))
			}
		})
	}
}

// TestFaultAndQuotaChecks: faults and rate_limit are checked beyond the schema, each problem at its
// pointer, and decode to the service's rule: kinds by name, in order, and a quota's default burst.
func TestFaultAndQuotaChecks(t *testing.T) {
	route := func(extra string) string {
		return `{"routes": [{"name": "a", "match": "/a"` + extra + `}]}`
	}
	for _, tt := range []struct {
		name, doc string
		pointers  []string
	}{
		{"every kind", route(`, "faults": [{"kind": "reset", "rate": 0.1}, {"kind": "close", "rate": 0.1}, {"kind": "hang", "rate": 0.1},
			{"kind": "slow_body", "rate": 0.1, "bytes_per_second": 100}, {"kind": "truncate", "rate": 0.1}, {"kind": "malformed", "rate": 0.1}]`), nil},
		{"unknown kind", route(`, "faults": [{"kind": "explode", "rate": 0.1}]`), []string{"/routes/0/faults/0/kind"}},
		{"no rate", route(`, "faults": [{"kind": "reset"}]`), []string{"/routes/0/faults/0/rate"}},
		{"slow_body without its rate", route(`, "faults": [{"kind": "slow_body", "rate": 0.1}]`), []string{"/routes/0/faults/0/bytes_per_second"}},
		{"bytes_per_second of another kind", route(`, "faults": [{"kind": "reset", "rate": 0.1, "bytes_per_second": 5}]`), []string{"/routes/0/faults/0/bytes_per_second"}},
		{"faults and errors over 1", route(`, "error_rate": 0.5, "faults": [{"kind": "reset", "rate": 0.3}, {"kind": "close", "rate": 0.3}]`), []string{"/routes/0/faults"}},
		{"faults and errors of exactly 1", route(`, "errors": [{"status": 503, "rate": 0.5}], "faults": [{"kind": "reset", "rate": 0.5}]`), nil},
		{"truncate of a bodiless status", route(`, "status": 204, "faults": [{"kind": "truncate", "rate": 0.1}, {"kind": "reset", "rate": 0.1}]`), []string{"/routes/0/faults/0/kind"}},
		{"rate_limit", route(`, "rate_limit": {"rps": 0.5, "burst": 3}`), nil},
		{"rate_limit of 0 rps", route(`, "rate_limit": {"rps": 0}`), []string{"/routes/0/rate_limit/rps"}},
		{"rate_limit without rps", route(`, "rate_limit": {"burst": 3}`), []string{"/routes/0/rate_limit/rps"}},
		{"burst 0", route(`, "rate_limit": {"rps": 5, "burst": 0}`), []string{"/routes/0/rate_limit/burst"}},
	} {
		t.Run(tt.name, func(t *testing.T) { assertProblems(t, tt.doc, tt.pointers) })
	}
	cfg, err := Parse("doc", []byte(route(`, "faults": [{"kind": "truncate", "rate": 0.2}, {"kind": "slow_body", "rate": 0.1, "bytes_per_second": 64}],
		"rate_limit": {"rps": 50}`)))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0].Rule(cfg.HTTP)
	want := []service.Fault{{Kind: service.FaultTruncate, Rate: 0.2}, {Kind: service.FaultSlowBody, Rate: 0.1, BytesPerSecond: 64}}
	if !slices.Equal(r.Faults, want) || r.RateLimit != (service.RateLimit{RPS: 50, Burst: DefaultBurst}) {
		t.Errorf("rule faults %+v, quota %+v", r.Faults, r.RateLimit)
	}
	if _, err := service.New(nil, []service.Rule{r}, service.Options{}); err != nil {
		t.Errorf("an accepted route does not compile: %v", err)
	}
}

// TestMaxCallsPerRouteIsTheSchemas: the upstream metrics size their slots from MaxCallsPerRoute, so
// it must be what the schema lets a route have.
func TestMaxCallsPerRouteIsTheSchemas(t *testing.T) {
	var s struct {
		Definitions struct {
			Route struct {
				Properties struct {
					Calls struct {
						MaxItems int `json:"maxItems"`
					} `json:"calls"`
				} `json:"properties"`
			} `json:"route"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	if got := s.Definitions.Route.Properties.Calls.MaxItems; got != MaxCallsPerRoute {
		t.Fatalf("the schema allows %d calls a route, MaxCallsPerRoute is %d", got, MaxCallsPerRoute)
	}
}

// fanOut is a config of one route making n parallel calls, with max_hops (0: the default).
func fanOut(n, maxHops int) string {
	var calls []string
	for i := range n {
		calls = append(calls, fmt.Sprintf(`{"name": "c%d", "url": "http://up%d:8080/"}`, i, i))
	}
	hops := ""
	if maxHops > 0 {
		hops = fmt.Sprintf(`"max_hops": %d, `, maxHops)
	}
	return `{` + hops + `"routes": [{"name": "a", "match": "/a", "call_mode": "parallel", "calls": [` + strings.Join(calls, ", ") + `]}]}`
}

// TestSelfCallChecksAreCheap: a config of 999 routes of 16 calls to the service's own address,
// none reaching a route with calls (those take POST, the calls GET), made the loop check match
// every candidate path against every route for every call: minutes of check-config (and of each
// reload). Answers are now remembered by method and path; the bound is generous, the property is
// that the cost no longer multiplies.
func TestSelfCallChecksAreCheap(t *testing.T) {
	var routes []string
	for i := range 999 {
		var calls []string
		for j := range MaxCallsPerRoute {
			calls = append(calls, fmt.Sprintf(`{"name": "k%d", "url": "http://127.0.0.1:8080/{path}", "timeout": "10ms"}`, j))
		}
		routes = append(routes, fmt.Sprintf(`{"name": "c%d", "match": "/c%d/*", "methods": ["POST"], "call_mode": "parallel", "calls": [%s]}`,
			i, i, strings.Join(calls, ", ")))
	}
	routes = append(routes, `{"name": "leaf", "match": "/*"}`)
	doc := `{"metrics": {"max_routes": 1000}, "max_hops": 1, "routes": [` + strings.Join(routes, ",\n") + `]}`
	begin := time.Now()
	if _, err := Parse("doc", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 30*time.Second {
		t.Fatalf("checking took %v", took)
	}
}

// TestSchemaIsNotHeld: the compiled schema is shared by parses close together and let go when
// none uses it, so an idle server does not keep it; a parse after that compiles it again and
// still finds the same problems.
func TestSchemaIsNotHeld(t *testing.T) {
	a, b := compiledSchema(), compiledSchema()
	if a != b {
		t.Fatal("two parses in a row compiled the schema twice")
	}
	deadline := time.Now().Add(10 * time.Second)
	for schemaHeld.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the compiled schema is still held after collections with no parse using it")
		}
		runtime.GC()
	}
	_, err := Parse("x.json", []byte(`{"routes": [{"name": "a", "match": "/a", "statuss": 200}]}`))
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(err.Error(), "statuss") {
		t.Fatalf("after the schema was let go, an unknown key gave %v", err)
	}
}

// TestGRPCConfig: grpc.addr is empty (off) by default and takes a listen address; a gRPC call
// must name its method in full; grpc_code takes the codes' names, OK and others refused.
func TestGRPCConfig(t *testing.T) {
	if c, err := Parse("doc", []byte(`{}`)); err != nil || c.GRPC.Addr != "" {
		t.Fatalf("default grpc.addr %q, %v", c.GRPC.Addr, err)
	}
	good := `{"grpc": {"addr": ":9090"}, "routes": [{"name": "a", "match": "/a.B/*", "grpc_code": "DATA_LOSS",
  "errors": [{"status": 500, "rate": 0.1, "grpc_code": "ABORTED"}], "calls": [{"name": "up", "url": "grpc://up:9090/x.Y/Z"}]}]}`
	c, err := Parse("doc", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Routes[0].Rule(c.HTTP); r.GRPCCode != 15 || r.Errors[0].GRPCCode != 10 {
		t.Errorf("rule codes %d and %d, want 15 and 10", r.GRPCCode, r.Errors[0].GRPCCode)
	}
	for _, bad := range []struct{ doc, pointer string }{
		{`{"grpc": {"addr": "9090"}}`, "/grpc/addr"},
		{`{"routes": [{"name": "a", "match": "/*", "grpc_code": "OK"}]}`, "/routes/0/grpc_code"},
		{`{"routes": [{"name": "a", "match": "/*", "errors": [{"status": 500, "rate": 0.1, "grpc_code": "data_loss"}]}]}`, "/routes/0/errors/0/grpc_code"},
		{`{"routes": [{"name": "a", "match": "/*", "calls": [{"name": "up", "url": "grpc://up:9090/x.Y"}]}]}`, "/routes/0/calls/0/url"},
		{`{"routes": [{"name": "a", "match": "/*", "calls": [{"name": "up", "url": "grpc://up:9090/x.Y/{path}"}]}]}`, "/routes/0/calls/0/url"},
	} {
		_, err := Parse("doc", []byte(bad.doc))
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(ce.Error(), bad.pointer+":") {
			t.Errorf("%s: %v, want a problem at %s", bad.doc, err, bad.pointer)
		}
	}
}
