package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xeipuuv/gojsonschema"

	"github.com/anyroute/anyroute/service"
)

//go:embed schema.json
var schemaJSON []byte

// compiled once: the schema is a constant of the binary, so a failure here is a build defect.
var schema = func() *gojsonschema.Schema {
	s, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(schemaJSON))
	if err != nil {
		panic(fmt.Sprintf("config: embedded schema does not compile: %v", err))
	}
	return s
}()

// Schema returns the JSON Schema every configuration file must satisfy.
func Schema() []byte { return bytes.Clone(schemaJSON) }

// MaxFileBytes bounds a configuration file: more is surely not a config (check-config /dev/zero
// must not eat the machine's memory).
const MaxFileBytes = 4 << 20

// Load reads, checks and decodes the configuration file at path. Every problem found is returned
// at once in an *Error, so a user fixes a file in one round.
func Load(path string) (Config, error) {
	fail := func(reason string) (Config, error) {
		return Config{}, &Error{File: path, Problems: []Problem{{Reason: reason}}}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail("cannot read file: " + unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return fail("cannot read file: " + unwrapPathError(err))
	}
	if len(data) > MaxFileBytes {
		return fail(fmt.Sprintf("file is larger than %d MiB; a configuration is a few KiB", MaxFileBytes>>20))
	}
	return Parse(path, data)
}

// Parse checks and decodes a configuration document; name only labels the errors.
func Parse(name string, data []byte) (Config, error) {
	fail := func(ps ...Problem) (Config, error) { return Config{}, &Error{File: name, Problems: ps} }
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(Problem{Reason: "file is empty; it must hold a JSON object (use {} for all defaults)"})
	}
	doc, p, ok := syntaxProblem(data)
	if !ok {
		return fail(p)
	}
	res, err := schema.Validate(gojsonschema.NewBytesLoader(data))
	if err != nil {
		return fail(Problem{Reason: "cannot validate: " + err.Error()})
	}
	// Durations the schema's pattern lets through and time.Duration cannot hold: found here, every
	// one with its pointer and beside the schema's problems, since a decoder stops at the first
	// and names no field.
	ps := append(schemaProblems(res.Errors()), durationProblems(doc, reflect.TypeFor[Config](), "")...)
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Pointer < ps[j].Pointer })
		return fail(dedupe(ps)...)
	}
	// Decoded from the document as read: the schema counts 200.0 and 1e3 as integers, and so does
	// this, where decoding the original text into an int would refuse them (naming no index).
	normalized, err := json.Marshal(doc)
	if err != nil {
		return fail(Problem{Reason: "cannot re-encode: " + err.Error()})
	}
	cfg := Default()
	dec := json.NewDecoder(bytes.NewReader(normalized))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fail(decodeProblem(err))
	}
	if ps := cfg.Check(); len(ps) > 0 {
		return fail(ps...)
	}
	return cfg, nil
}

// Check runs the semantic checks that a JSON Schema cannot express. Parse calls it; it is exported
// so that a Config built in code (flags, tests, the chart's values) is held to the same rules.
func (c Config) Check() []Problem {
	var ps []Problem
	add := func(ptr, format string, args ...any) {
		ps = append(ps, Problem{Pointer: ptr, Reason: fmt.Sprintf(format, args...)})
	}
	if len(c.Routes) > c.Metrics.MaxRoutes {
		add("/routes", "%d routes exceed metrics.max_routes (%d)", len(c.Routes), c.Metrics.MaxRoutes)
	}
	seen := make(map[string]int, len(c.Routes))
	for i, r := range c.Routes {
		ptr := "/routes/" + strconv.Itoa(i)
		if j, dup := seen[r.Name]; dup {
			add(ptr+"/name", "duplicate route name %q (also /routes/%d/name)", r.Name, j)
		} else {
			seen[r.Name] = i
		}
		if _, err := service.ParseMatch(r.Match); err != nil {
			add(ptr+"/match", "%v", err)
		}
		if r.Status != 0 && (r.Status < 200 || r.Status > 599) {
			add(ptr+"/status", "must be between 200 and 599: a 1xx status is not a final answer")
		}
		c.checkRoute(r, ptr, add)
	}
	for i := 1; i < len(c.Metrics.Buckets); i++ {
		if c.Metrics.Buckets[i] <= c.Metrics.Buckets[i-1] {
			add("/metrics/buckets/"+strconv.Itoa(i), "buckets must be strictly increasing (%g after %g)", c.Metrics.Buckets[i], c.Metrics.Buckets[i-1])
		}
	}
	if c.Metrics.FlushInterval.D() < 10*time.Millisecond || c.Metrics.FlushInterval.D() > time.Minute {
		add("/metrics/flush_interval", "must be between 10ms and 1m, got %s", c.Metrics.FlushInterval.D())
	}
	for _, t := range []struct {
		ptr string
		d   Duration
	}{
		{"/http/read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"/http/read_timeout", c.HTTP.ReadTimeout},
		{"/http/write_timeout", c.HTTP.WriteTimeout}, {"/http/idle_timeout", c.HTTP.IdleTimeout},
	} {
		if t.d <= 0 {
			add(t.ptr, "must be positive: 0 would mean no limit, and a slow or idle client would hold a connection forever")
		}
	}
	if c.Shutdown.Grace.D() <= 0 {
		add("/shutdown/grace", "must be positive")
	}
	switch s := c.Tracing.Sampler; s.Type {
	case "const":
		if s.Param != 0 && s.Param != 1 {
			add("/tracing/sampler/param", "a const sampler takes 0 (never) or 1 (always), got %g", s.Param)
		}
	case "probabilistic":
		if s.Param > 1 {
			add("/tracing/sampler/param", "a probability must be between 0 and 1, got %g", s.Param)
		}
	}
	return ps
}

// syntaxProblem decodes the document, or reports where it stops being JSON, as line and column.
func syntaxProblem(data []byte) (any, Problem, bool) {
	var v any
	err := json.Unmarshal(data, &v)
	if err == nil {
		if _, isObject := v.(map[string]any); !isObject {
			return nil, Problem{Reason: "must be a JSON object"}, false
		}
		return v, Problem{}, true
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(data, se.Offset)
		return nil, Problem{Reason: fmt.Sprintf("not valid JSON at line %d, column %d: %v", line, col, se)}, false
	}
	return nil, Problem{Reason: "not valid JSON: " + err.Error()}, false
}

func position(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// schemaProblems turns gojsonschema's results into JSON pointers. For a missing or an unknown key
// the pointer names the key itself, not the object holding it, since that is what a user edits.
func schemaProblems(errs []gojsonschema.ResultError) []Problem {
	ps := make([]Problem, 0, len(errs))
	for _, e := range errs {
		ptr := strings.TrimPrefix(e.Context().String("/"), "(root)")
		reason := e.Description()
		switch e.Type() {
		case "additional_property_not_allowed":
			ptr += "/" + escapePointer(fmt.Sprint(e.Details()["property"]))
			reason = "unknown key"
		case "required":
			ptr += "/" + escapePointer(fmt.Sprint(e.Details()["property"]))
			reason = "is required"
		case "pattern":
			if fmt.Sprint(e.Details()["pattern"]) == durationPattern {
				reason = fmt.Sprintf("%s is not a duration; write one such as 250ms, 1.5s or 1m30s", quote(fmt.Sprint(e.Value())))
			}
		case "number_any_of", "number_one_of":
			reason = "must be empty or " + describeAnyOf(ptr)
		}
		ps = append(ps, Problem{Pointer: ptr, Reason: reason})
	}
	return ps
}

// durationPattern is the pattern of the schema's duration definition, recognised to explain it.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

func describeAnyOf(ptr string) string {
	if strings.HasSuffix(ptr, "_url") {
		return "an http(s) URL"
	}
	return "a valid value"
}

// dedupe drops adjacent repeats, which gojsonschema emits when one value fails a shared definition
// twice; sort first.
func dedupe(ps []Problem) []Problem {
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

var durationType = reflect.TypeFor[Duration]()

// durationProblems walks a decoded document beside the Go type it decodes into and checks every
// value of the schema's duration shape that lands in a Duration, naming each that does not parse
// (other shapes are the schema's to report). The walk follows the struct fields' json names, so it
// knows every duration key without a list that could fall behind.
func durationProblems(v any, t reflect.Type, ptr string) []Problem {
	switch {
	case t == durationType:
		if s, ok := v.(string); ok && durationShape.MatchString(s) {
			if _, err := parseDuration(s); err != nil {
				return []Problem{{Pointer: ptr, Reason: err.Error()}}
			}
		}
	case t.Kind() == reflect.Struct:
		m, _ := v.(map[string]any)
		var ps []Problem
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if val, ok := m[name]; ok && name != "" && name != "-" {
				ps = append(ps, durationProblems(val, f.Type, ptr+"/"+escapePointer(name))...)
			}
		}
		return ps
	case t.Kind() == reflect.Slice:
		arr, _ := v.([]any)
		var ps []Problem
		for i, e := range arr {
			ps = append(ps, durationProblems(e, t.Elem(), ptr+"/"+strconv.Itoa(i))...)
		}
		return ps
	}
	return nil
}

// decodeProblem covers what passes the schema and the checks above but not decoding; nothing
// known does, so this is a last resort that still names the field where the decoder can.
func decodeProblem(err error) Problem {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return Problem{Pointer: "/" + strings.ReplaceAll(te.Field, ".", "/"), Reason: "wrong type: " + te.Error()}
	}
	return Problem{Reason: err.Error()}
}

func unwrapPathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
