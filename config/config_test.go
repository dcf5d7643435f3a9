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
	if len(cfg.Routes) != 6 || cfg.Routes[1].Delay.D() != 20*time.Millisecond || cfg.Tracing.Sampler.Param != 0.01 {
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
