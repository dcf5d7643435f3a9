package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"weak"

	"github.com/xeipuuv/gojsonschema"

	"github.com/anyroute/anyroute/service"
)

//go:embed schema.json
var schemaJSON []byte

// compiledSchema is the embedded schema compiled, held only weakly between parses. Compiled, it
// is about 260 kB of live heap (gojsonschema's tree, its regexps, the decoded document): held
// for the process's life it was a fifth of an idle server's live heap, for a document parsed at
// start and on each reload. Compiling takes a few milliseconds, so parses close together (a burst
// of PATCHes, the tests) share one compilation until a GC cycle finds it unused. The schema is a
// constant of the binary: a failure to compile is a build defect, and every test of Parse finds it.
func compiledSchema() *gojsonschema.Schema {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s := schemaHeld.Value(); s != nil {
		return s
	}
	s, err := gojsonschema.NewSchema(gojsonschema.NewBytesLoader(schemaJSON))
	if err != nil {
		panic(fmt.Sprintf("config: embedded schema does not compile: %v", err))
	}
	schemaHeld = weak.Make(s)
	return s
}

var (
	schemaMu   sync.Mutex
	schemaHeld weak.Pointer[gojsonschema.Schema]
)

// Schema returns the JSON Schema every configuration file must satisfy.
func Schema() []byte { return bytes.Clone(schemaJSON) }

// MaxFileBytes bounds a configuration file: more is surely not a config (check-config /dev/zero
// must not eat the machine's memory). No more than this and one byte is ever read.
const MaxFileBytes = 4 << 20

// Load reads, checks and decodes the configuration file at path. Every problem found is returned
// at once in an *Error, so a user fixes a file in one round.
func Load(path string) (Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(path, data)
}

// ReadFile reads the configuration file at path, up to MaxFileBytes; a file it cannot read, or a
// larger one, is an *Error. The running service keeps what it read as the document its config
// came from, which a route patch merges into.
//
// It reads regular files only, symlinks followed (a mounted ConfigMap's config.json is a link
// through ..data), and never waits: the file is opened non-blocking, so a FIFO put in its place
// neither holds up a reload (nor the shutdown waiting for it) nor is read, and the opened file
// itself is checked, so nothing swapped in between a check and the open gets read. A device
// (/dev/zero) is refused before a byte is read; a regular file larger than the cap is refused by
// its size, and one that grows while read costs at most the cap and a byte.
func ReadFile(path string) ([]byte, error) {
	fail := func(reason string) ([]byte, error) {
		return nil, &Error{File: path, Problems: []Problem{{Reason: reason}}}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fail("cannot read file: " + unwrapPathError(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail("cannot read file: " + unwrapPathError(err))
	}
	tooLarge := fmt.Sprintf("file is larger than %d MiB (%d bytes), the most a configuration may be; a configuration is a few KiB", MaxFileBytes>>20, MaxFileBytes)
	switch {
	case !st.Mode().IsRegular():
		return fail(fmt.Sprintf("not a regular file (%s): a configuration is read from a file only", fileKind(st.Mode())))
	case st.Size() > MaxFileBytes:
		return fail(tooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return fail("cannot read file: " + unwrapPathError(err))
	}
	if len(data) > MaxFileBytes {
		return fail(tooLarge)
	}
	return data, nil
}

// fileKind names what a file that is not regular is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
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
	res, err := compiledSchema().Validate(gojsonschema.NewBytesLoader(data))
	if err != nil {
		return fail(Problem{Reason: "cannot validate: " + err.Error()})
	}
	// Durations the schema's pattern lets through and time.Duration cannot hold: found here, every
	// one with its pointer and beside the schema's problems, since a decoder stops at the first
	// and names no field.
	schemaPs := schemaProblems(res.Errors())
	durationPs := durationProblems(doc, reflect.TypeFor[Config](), "")
	ps := append(schemaPs, durationPs...)
	// The semantic checks run beside those problems, so that one round shows every problem (a
	// duplicate route name beside an overflowing duration): on the document with every value the
	// schema refused taken out (the default stands in) and every overflowing duration made the
	// largest one. What they find that may stem from a stand-in is left out (echoes). Where the
	// rest still does not decode, only the problems found so far are reported.
	for _, p := range schemaPs {
		blank(doc, p.Pointer, nil)
	}
	for _, p := range durationPs {
		blank(doc, p.Pointer, time.Duration(math.MaxInt64).String())
	}
	// Decoded from the document as read: the schema counts 200.0 and 1e3 as integers, and so does
	// this, where decoding the original text into an int would refuse them (naming no index).
	// Integers written as such keep every digit (a seed past 2^53 stays itself).
	normalized, err := json.Marshal(doc)
	if err != nil {
		return fail(append(ps, Problem{Reason: "cannot re-encode: " + err.Error()})...)
	}
	cfg := Default()
	dec := json.NewDecoder(bytes.NewReader(normalized))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		if len(ps) > 0 {
			return fail(sorted(ps)...)
		}
		return fail(decodeProblem(err))
	}
	for _, cp := range cfg.Check() {
		if !slices.ContainsFunc(schemaPs, func(p Problem) bool { return echoesDefault(cp.Pointer, p.Pointer) }) &&
			!slices.ContainsFunc(durationPs, func(p Problem) bool { return echoesLargest(cp.Pointer, p.Pointer) }) {
			ps = append(ps, cp)
		}
	}
	if len(ps) > 0 {
		return fail(sorted(ps)...)
	}
	// Each phase of a scenario lays its patches over the routes: the routes as each phase leaves
	// them are checked too, so that a phase never fails to apply while the scenario runs.
	if _, err := PhaseConfigs(normalized, cfg); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			return fail(sorted(ce.Problems)...)
		}
		return fail(Problem{Pointer: "/scenario", Reason: err.Error()})
	}
	return cfg, nil
}

// sorted orders problems by pointer, repeats dropped.
func sorted(ps []Problem) []Problem {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Pointer < ps[j].Pointer })
	return dedupe(ps)
}

// inside reports whether pointer a is inside b, b being deeper than a top-level key: a section
// as a whole (the count of /routes) is never said to hold what one of its values got wrong.
func inside(a, b string) bool {
	return strings.HasPrefix(a, b+"/") && strings.Count(b, "/") >= 2
}

// parent is the pointer of the object or array holding ptr.
func parent(ptr string) string {
	return ptr[:strings.LastIndexByte(ptr, '/')]
}

// echoesDefault reports whether a semantic problem at ptr may stem from the default standing in for
// the value the schema refused at named: the same pointer, one inside the other, or a value beside
// it in the same object below a top-level key (a const sampler's param beside a refused type, a
// route's max_delay beside a refused allow_overrides). The rest of such an object is checked in
// the next round.
func echoesDefault(ptr, named string) bool {
	return ptr == named || inside(ptr, named) || inside(named, ptr) ||
		(strings.Count(named, "/") >= 3 && inside(ptr, parent(named)))
}

// echoesLargest reports whether a semantic problem at ptr may stem from the largest duration
// standing in for the one at named that overflows: the same pointer, one inside the other, or a
// bound of the same route (its delay, latency, calls or max_delay reaching write_timeout). A
// route's name, match, status or error mix are checked as ever.
func echoesLargest(ptr, named string) bool {
	if ptr == named || inside(ptr, named) || inside(named, ptr) {
		return true
	}
	if !strings.HasPrefix(named, "/routes/") {
		return false
	}
	route := named[:len("/routes/")+strings.IndexByte(named[len("/routes/"):]+"/", '/')]
	switch strings.TrimPrefix(ptr, route+"/") {
	case "delay", "latency", "calls", "max_delay":
		return true
	}
	return false
}

// blank replaces the value at the JSON pointer ptr of doc by with, or takes it out when with is
// nil (an element of an array becomes an empty object, so that the indices after it stand). A
// pointer to nothing (a missing key) changes nothing.
func blank(doc any, ptr string, with any) {
	if ptr == "" {
		return
	}
	tokens := strings.Split(ptr[1:], "/")
	for i, tok := range tokens {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		last := i == len(tokens)-1
		switch v := doc.(type) {
		case map[string]any:
			if last {
				if with == nil {
					delete(v, tok)
				} else if _, ok := v[tok]; ok {
					v[tok] = with
				}
				return
			}
			doc = v[tok]
		case []any:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(v) {
				return
			}
			if last {
				if with == nil {
					with = map[string]any{}
				}
				v[n] = with
				return
			}
			doc = v[n]
		default:
			return
		}
	}
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
	loops := newLoopFinder(c.Routes)
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
		c.checkRoute(r, ptr, loops, add)
	}
	c.checkCallTree(add)
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
	if t := c.HTTP.TLS; t != nil {
		switch auth := t.ClientAuth; {
		case (auth == "optional" || auth == "required") && t.ClientCAFile == "":
			add("/http/tls/client_ca_file", "is required with client_auth %s: client certificates are verified against it", auth)
		case (auth == "" || auth == "none") && t.ClientCAFile != "":
			add("/http/tls/client_auth", "is none, so client_ca_file would not be used: set client_auth to optional or required, or leave client_ca_file out")
		}
	}
	if l := c.Leak; l.PerRequest > 0 && l.Max <= 0 {
		add("/leak/max", "is required with per_request: the leak needs a cap")
	} else if l.PerRequest > l.Max && l.Max > 0 {
		add("/leak/per_request", "%d bytes is more than the cap, max (%d)", l.PerRequest, l.Max)
	}
	c.checkScenario(add)
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
// Numbers are decoded by exactNumbers.
func syntaxProblem(data []byte) (any, Problem, bool) {
	var v any
	err := json.Unmarshal(data, &v)
	if err == nil {
		if _, isObject := v.(map[string]any); !isObject {
			return nil, Problem{Reason: "must be a JSON object"}, false
		}
		if v, err = exactNumbers(data); err != nil { // it decoded once: this cannot fail
			return nil, Problem{Reason: "not valid JSON: " + err.Error()}, false
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

// exactNumbers decodes a valid JSON document with every integer literal kept as written, so that
// an integer past 2^53 (a uint64 seed) decodes exactly; any other number becomes a float64, as
// encoding/json makes it, which re-encodes 200.0 and 1e3 as the integers the schema counts them as.
func exactNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return floatsButIntegers(v), nil
}

// floatsButIntegers replaces every json.Number in v that is not an integer literal by its float64.
func floatsButIntegers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = floatsButIntegers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = floatsButIntegers(e)
		}
	case json.Number:
		if !integerLiteral(string(v)) {
			f, _ := v.Float64() // a number encoding/json decoded into a float64 before
			return f
		}
	}
	return v
}

// integerLiteral reports whether a JSON number is written as an integer: digits, maybe a minus.
func integerLiteral(n string) bool {
	n = strings.TrimPrefix(n, "-")
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
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
		// cpu is a duration or an object: what its first form alone says of it (a string
		// expected) misleads, and its anyOf problem says it whole.
		if strings.HasSuffix(ptr, "/cpu") && e.Type() != "number_any_of" {
			continue
		}
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
			if strings.HasSuffix(ptr, "/cpu") {
				reason = `must be a duration such as "5ms", or a distribution as latency takes ({"distribution": ..., "max": ...})`
				if v, ok := e.Value().(string); ok {
					reason = fmt.Sprintf("%s is not a duration; write one such as 5ms, or a distribution as latency takes", quote(v))
				}
			}

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

var (
	durationType = reflect.TypeFor[Duration]()
	cpuType      = reflect.TypeFor[CPU]()
)

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
	case t == cpuType: // a duration, or a latency object
		if _, ok := v.(string); ok {
			return durationProblems(v, durationType, ptr)
		}
		return durationProblems(v, reflect.TypeFor[Latency](), ptr)
	case t.Kind() == reflect.Pointer: // route latency: its durations were found by no one
		return durationProblems(v, t.Elem(), ptr)
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
