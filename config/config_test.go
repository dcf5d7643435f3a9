package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
		t.Run(tt.name, func(t *testing.T) {
			got := parseProblems(t, tt.doc)
			if tt.pointers == nil {
				if got != nil {
					t.Fatalf("refused: %v", got)
				}
				return
			}
			assertNamed(t, got, tt.pointers...)
			if len(got) != len(tt.pointers) {
				t.Errorf("%d problems, want %d: %v", len(got), len(tt.pointers), got)
			}
		})
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

func TestOversizedFileIsRefusedWithoutReadingIt(t *testing.T) {
	got := problems(t, "/dev/zero")
	if len(got) != 1 || !strings.Contains(got[0], "larger than 4 MiB") {
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
		{"sequential calls past write_timeout", route(`, "calls": [{"name": "a", "url": "http://a/", "timeout": "6s"}, {"name": "b", "url": "http://b/", "timeout": "5s"}]`), []string{"/routes/0/calls"}},
		{"parallel calls within it", route(`, "call_mode": "parallel", "calls": [{"name": "a", "url": "http://a/", "timeout": "6s"}, {"name": "b", "url": "http://b/", "timeout": "5s"}]`), nil},
		{"calls and delay past write_timeout", route(`, "delay": "5s", "calls": [{"name": "a", "url": "http://a/", "timeout": "5s"}]`), []string{"/routes/0/delay"}},
		{"unknown call_mode", route(`, "call_mode": "whenever"`), []string{"/routes/0/call_mode"}},
		{"max_delay without overrides", route(`, "max_delay": "1s"`), []string{"/routes/0/max_delay"}},
		{"max_delay past write_timeout", route(`, "allow_overrides": true, "max_delay": "10s"`), []string{"/routes/0/max_delay"}},
		{"max_hops 0", `{"max_hops": 0}`, []string{"/max_hops"}},
		{"a seed", `{"seed": 42}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseProblems(t, tt.doc)
			if tt.pointers == nil {
				if got != nil {
					t.Fatalf("refused: %v", got)
				}
				return
			}
			assertNamed(t, got, tt.pointers...)
			if len(got) != len(tt.pointers) {
				t.Errorf("%d problems, want %d: %v", len(got), len(tt.pointers), got)
			}
		})
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
