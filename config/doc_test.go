package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/xeipuuv/gojsonschema"

	"github.com/anyroute/anyroute/service"
)

// updateDocs rewrites the generated reference docs instead of comparing them (make docs).
var updateDocs = flag.Bool("update-docs", false, "rewrite docs/configuration.md from the embedded schema")

const configurationDoc = "../docs/configuration.md"

// TestConfigurationDoc keeps docs/configuration.md what the embedded schema (the one `anyroute
// schema` prints) renders to, so the reference cannot drift from the rules a file is checked by.
func TestConfigurationDoc(t *testing.T) {
	got := renderConfigurationDoc(t, Schema())
	compareGeneratedDoc(t, configurationDoc, got, "go test ./config -run TestConfigurationDoc -update-docs")
}

// TestConfigurationDocFollowsTheSchema: a description changed in the schema changes the rendered
// doc, so the comparison above fails until the doc is regenerated.
func TestConfigurationDocFollowsTheSchema(t *testing.T) {
	const old = "How long a kept-alive connection may wait for its next request; positive."
	if !bytes.Contains(Schema(), []byte(old)) {
		t.Fatalf("the schema no longer holds %q; pick another description", old)
	}
	changed := bytes.Replace(Schema(), []byte(old), []byte("Something else."), 1)
	if bytes.Equal(renderConfigurationDoc(t, changed), renderConfigurationDoc(t, Schema())) {
		t.Fatal("a changed description left the rendered doc as it was")
	}
}

// TestSchemaDescribesEveryKey: every key of the schema has a description and an example, which the
// schema accepts, and a default the schema accepts too when it has one.
func TestSchemaDescribesEveryKey(t *testing.T) {
	root := decodeOrdered(t, Schema())
	keys := schemaKeys(root)
	if len(keys) < 60 {
		t.Fatalf("only %d keys walked: the walk misses some", len(keys))
	}
	for _, k := range keys {
		if k.description == "" {
			t.Errorf("%s: no description", k.path)
		}
		if len(k.examples) == 0 {
			t.Errorf("%s: no example", k.path)
		}
		values := slices.Clone(k.examples)
		if k.def != nil {
			values = append(values, k.def)
		}
		for _, v := range values {
			if problems := validateAgainst(t, root, k.schema, v); problems != nil {
				t.Errorf("%s: %s is refused by the key's own schema: %v", k.path, compactJSON(t, v), problems)
			}
		}
	}
}

// TestSchemaDefaultsAreTheDefaults: the defaults the schema (and so the doc) states are the values
// Default gives, and every key outside the route rules that has a value in Default states it.
func TestSchemaDefaultsAreTheDefaults(t *testing.T) {
	raw, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(raw, &def); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, k := range schemaKeys(decodeOrdered(t, Schema())) {
		if strings.HasPrefix(k.path, "routes[]") || strings.HasPrefix(k.path, "scenario.") || strings.HasPrefix(k.path, "http.tls.") { // defaults inside a value Default has none of
			continue
		}
		want, ok := lookup(def, strings.Split(k.path, "."))
		if _, isObject := want.(map[string]any); isObject {
			continue
		}
		switch {
		case !ok && k.def != nil:
			t.Errorf("%s: the schema states a default %s, Default has none", k.path, compactJSON(t, k.def))
		case ok && k.def == nil:
			t.Errorf("%s: Default gives %s, the schema states no default", k.path, compactJSON(t, want))
		case ok && !sameValue(plain(k.def), want):
			t.Errorf("%s: the schema states a default %s, Default gives %s", k.path, compactJSON(t, k.def), compactJSON(t, want))
		case ok:
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("only %d defaults compared", checked)
	}
}

// TestRouteDefaultsChangeNothing: a route key given the default the schema states makes the same
// service rule as the key left out. error_status only matters beside an error_rate.
func TestRouteDefaultsChangeNothing(t *testing.T) {
	checked := 0
	for _, k := range schemaKeys(decodeOrdered(t, Schema())) {
		if k.def == nil || !strings.HasPrefix(k.path, "routes[].") {
			continue
		}
		route := map[string]any{"name": "r", "match": "/r"}
		call := map[string]any{"name": "c", "url": "http://127.0.0.1:1/"}
		quota := map[string]any{"rps": 10}
		route["calls"], route["rate_limit"] = []any{call}, quota
		if k.path == "routes[].error_status" {
			route["error_rate"] = 0.1
		}
		without := ruleOf(t, route)
		if key, ok := strings.CutPrefix(k.path, "routes[].calls[]."); ok {
			call[key] = k.def
		} else if key, ok := strings.CutPrefix(k.path, "routes[].rate_limit."); ok {
			quota[key] = k.def
		} else {
			route[strings.TrimPrefix(k.path, "routes[].")] = k.def
		}
		with := ruleOf(t, route)
		// service.Rule's Status 0 stands for 200.
		without.Status, with.Status = cmp.Or(without.Status, 200), cmp.Or(with.Status, 200)
		if !reflect.DeepEqual(without, with) {
			t.Errorf("%s: its stated default %s changes the rule:\n without %+v\n with    %+v", k.path, compactJSON(t, k.def), without, with)
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d route defaults compared", checked)
	}
}

// ruleOf is the service rule a config with the one route makes.
func ruleOf(t *testing.T, route map[string]any) service.Rule {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"routes": []any{route}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("doc", doc)
	if err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return cfg.Routes[0].Rule(cfg.HTTP)
}

// lookup is the value at a dotted path of a decoded JSON document.
func lookup(doc map[string]any, path []string) (any, bool) {
	v, ok := doc[path[0]]
	if !ok || len(path) == 1 {
		return v, ok
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, false
	}
	return lookup(m, path[1:])
}

// sameValue compares two decoded JSON values, durations by the time they stand for ("60s" is
// "1m0s").
func sameValue(a, b any) bool {
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		da, errA := parseDuration(as)
		db, errB := parseDuration(bs)
		if errA == nil && errB == nil {
			return da == db
		}
	}
	return reflect.DeepEqual(a, b)
}

// validateAgainst validates v against one key's schema, resolved against the root's definitions.
func validateAgainst(t *testing.T, root *object, key *object, v any) []string {
	t.Helper()
	s := map[string]any{"definitions": plain(root.get("definitions"))}
	for _, k := range key.keys {
		s[k] = plain(key.vals[k])
	}
	res, err := gojsonschema.Validate(gojsonschema.NewGoLoader(s), gojsonschema.NewGoLoader(plain(v)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range res.Errors() {
		out = append(out, e.String())
	}
	return out
}

func compactJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(plain(v))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// orderedJSON is v as compact JSON, object keys in the schema's order.
func orderedJSON(v any) string {
	switch v := v.(type) {
	case *object:
		var parts []string
		for _, k := range v.keys {
			kb, _ := json.Marshal(k)
			parts = append(parts, string(kb)+":"+orderedJSON(v.vals[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		var parts []string
		for _, e := range v {
			parts = append(parts, orderedJSON(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case json.Number:
		return v.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// compareGeneratedDoc fails when the file is not want, or with -update-docs writes it.
func compareGeneratedDoc(t *testing.T, file string, want []byte, regenerate string) {
	t.Helper()
	if *updateDocs {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", file)
		return
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v; run\n  %s", err, regenerate)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			if i >= len(gl) || i >= len(wl) || gl[i] != wl[i] {
				g, w := "(end of file)", "(end of file)"
				if i < len(gl) {
					g = gl[i]
				}
				if i < len(wl) {
					w = wl[i]
				}
				t.Fatalf("%s differs from what the schema renders, first at line %d:\n file:   %.200s\n schema: %.200s\nrun\n  %s\n(or make docs)",
					file, i+1, g, w, regenerate)
			}
		}
	}
}

// object is a JSON object that keeps its keys in the order the file writes them, so the doc lists
// keys in the schema's order.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) any {
	if o == nil {
		return nil
	}
	return o.vals[k]
}

func (o *object) str(k string) string {
	s, _ := o.get(k).(string)
	return s
}

func (o *object) obj(k string) *object {
	v, _ := o.get(k).(*object)
	return v
}

// decodeOrdered decodes JSON with objects as *object, numbers as float64.
func decodeOrdered(t *testing.T, data []byte) *object {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers print as the schema writes them
	v, err := decodeValue(dec)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := v.(*object)
	if !ok {
		t.Fatal("the schema is not a JSON object")
	}
	return o
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &object{vals: map[string]any{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k.(string))
			o.vals[k.(string)] = v
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// plain turns *object back into map[string]any, for encoding/json and the validator.
func plain(v any) any {
	switch v := v.(type) {
	case *object:
		m := make(map[string]any, len(v.keys))
		for _, k := range v.keys {
			m[k] = plain(v.vals[k])
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plain(e)
		}
		return out
	case json.Number:
		f, _ := v.Float64()
		return f
	}
	return v
}

// schemaKey is one key of the configuration as the schema describes it.
type schemaKey struct {
	path        string  // dotted, [] for the items of an array: routes[].calls[].timeout
	top         string  // the top-level key it sits under
	schema      *object // its own schema, $ref not resolved
	ref         string  // the definition it refers to, if any
	merged      *object // its schema with the definition's keys beneath its own
	description string
	def         any   // its stated default, nil for none
	examples    []any // its stated examples
	required    bool
}

// schemaKeys walks every key of the schema in its order, depth first.
func schemaKeys(root *object) []schemaKey {
	defs := root.obj("definitions")
	var keys []schemaKey
	var walk func(props *object, required []any, prefix, top string)
	walk = func(props *object, required []any, prefix, top string) {
		for _, name := range props.keys {
			own := props.obj(name)
			k := schemaKey{path: prefix + name, top: cmp.Or(top, name), schema: own, required: slices.Contains(required, any(name))}
			k.merged = own
			if ref, ok := strings.CutPrefix(own.str("$ref"), "#/definitions/"); ok {
				k.ref = ref
				k.merged = &object{vals: map[string]any{}}
				for _, src := range []*object{defs.obj(ref), own} {
					for _, kk := range src.keys {
						if _, seen := k.merged.vals[kk]; !seen {
							k.merged.keys = append(k.merged.keys, kk)
						}
						k.merged.vals[kk] = src.vals[kk]
					}
				}
			}
			k.description = k.merged.str("description")
			k.def = k.merged.get("default")
			k.examples, _ = k.merged.get("examples").([]any)
			keys = append(keys, k)
			m := k.merged
			if items := m.obj("items"); items != nil {
				if ref, ok := strings.CutPrefix(items.str("$ref"), "#/definitions/"); ok {
					items = defs.obj(ref)
				}
				if p := items.obj("properties"); p != nil {
					req, _ := items.get("required").([]any)
					walk(p, req, k.path+"[].", k.top)
				}
			}
			if p := m.obj("properties"); p != nil {
				req, _ := m.get("required").([]any)
				walk(p, req, k.path+".", k.top)
			}
		}
	}
	walk(root.obj("properties"), nil, "", "")
	return keys
}

// renderConfigurationDoc is docs/configuration.md as the schema describes the configuration.
func renderConfigurationDoc(t *testing.T, schemaJSON []byte) []byte {
	t.Helper()
	root := decodeOrdered(t, schemaJSON)
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Configuration reference\n\n")
	p("<!-- Generated from config/schema.json by `make docs` (config/doc_test.go); edit the schema, not this file. -->\n\n")
	p("anyroute reads one JSON file (`-config FILE` or `ANYROUTE_CONFIG`), checks it against the JSON\n")
	p("Schema that `anyroute schema` prints (draft-07, unknown keys refused), then by semantic checks\n")
	p("(distinct route names, valid patterns, increasing buckets, latencies that end before\n")
	p("`http.write_timeout`), and names every problem at once with its JSON pointer:\n\n")
	p("```\n$ anyroute check-config bad.json\n")
	p("bad.json: /http/addr: Invalid type. Expected: string, given: integer\n")
	p("bad.json: /metrics/flush_interval: \"soon\" is not a duration; write one such as 250ms, 1.5s or 1m30s\n")
	p("bad.json: /routes/1/name: duplicate route name \"a\" (also /routes/0/name)\n```\n\n")
	p("%s\n", root.str("description"))
	p("Without a file the defaults below apply; [`config/examples/full.json`](../config/examples/full.json)\n")
	p("sets every key. Route rules, with worked examples: [routes.md](routes.md). Reloads and route\n")
	p("patches: [runtime.md](runtime.md).\n\n")
	p("**applies**: `reload` keys change on a reload (SIGHUP, `POST /-/reload`, a change of the file);\n")
	p("`restart` keys only at a restart, and a reload that changes one is refused whole. Defaults and\n")
	p("examples are written as they appear in the file.\n\n")

	p("## Value types\n\n| type | what | pattern |\n|---|---|---|\n")
	defs := root.obj("definitions")
	for _, name := range defs.keys {
		d := defs.obj(name)
		if d.str("type") != "string" {
			continue
		}
		p("| %s | %s | `%s` |\n", typeName(name), cell(d.str("description")), cell(d.str("pattern")))
	}

	keys := schemaKeys(root)
	for i, k := range keys {
		if i == 0 || keys[i-1].top != k.top {
			p("\n## `%s`\n\n", k.top)
			p("| key | type | default | allowed | applies | example | description |\n|---|---|---|---|---|---|---|\n")
		}
		applies := "restart"
		if slices.Contains(Reloadable, k.top) {
			applies = "reload"
		}
		def := "none"
		switch {
		case k.def != nil:
			def = code(orderedJSON(k.def))
		case k.merged.str("type") == "object":
			def = "" // its keys have theirs
		}
		var examples []string
		for _, e := range k.examples {
			examples = append(examples, code(orderedJSON(e)))
		}
		p("| `%s` | %s | %s | %s | %s | %s | %s |\n", k.path, keyType(k), def, cell(bounds(k)), applies,
			strings.Join(examples, ", "), cell(k.description))
	}
	return b.Bytes()
}

// typeName is how the doc names a value type defined in the schema.
func typeName(def string) string {
	switch def {
	case "duration":
		return "duration"
	case "listen_addr":
		return "listen address"
	case "host_port":
		return "host:port"
	case "url":
		return "URL"
	case "method":
		return "method"
	}
	return def
}

// keyType is the doc's type of a key.
func keyType(k schemaKey) string {
	return valueType(k.merged, k.ref)
}

func valueType(s *object, ref string) string {
	switch ref {
	case "", "route", "latency", "call":
	default:
		return typeName(ref)
	}
	if s.get("enum") != nil {
		return "string"
	}
	if alts, ok := s.get("anyOf").([]any); ok {
		var names []string
		for _, a := range alts {
			ao := a.(*object)
			if c, ok := ao.get("const").(string); ok && c == "" {
				names = append(names, "empty")
				continue
			}
			r, _ := strings.CutPrefix(ao.str("$ref"), "#/definitions/")
			names = append(names, valueType(ao, r))
		}
		return strings.Join(names, " or ")
	}
	if s.str("type") == "array" {
		items := s.obj("items")
		r, _ := strings.CutPrefix(items.str("$ref"), "#/definitions/")
		it := valueType(items, r)
		if it == "object" || it == "" {
			return "array of objects"
		}
		return "array of " + it
	}
	return s.str("type")
}

// bounds says what values a key allows beyond its type: enum, range, length, pattern, required.
func bounds(k schemaKey) string {
	var out []string
	s := k.merged
	if k.required {
		out = append(out, "required")
	}
	if enum, ok := s.get("enum").([]any); ok {
		var vs []string
		for _, e := range enum {
			vs = append(vs, code(fmt.Sprint(e)))
		}
		out = append(out, "one of "+strings.Join(vs, ", "))
	}
	out = append(out, numberRange(s)...)
	if lo, hi := s.get("minLength"), s.get("maxLength"); lo != nil || hi != nil {
		out = append(out, span(lo, hi, "characters"))
	}
	if lo, hi := s.get("minItems"), s.get("maxItems"); lo != nil || hi != nil {
		out = append(out, span(lo, hi, "items"))
	}
	if s.get("uniqueItems") == true {
		out = append(out, "distinct")
	}
	if items := s.obj("items"); items != nil {
		if r := numberRange(items); len(r) > 0 {
			out = append(out, "each "+strings.Join(r, ", "))
		}
	}
	if pat := s.str("pattern"); pat != "" && k.ref == "" {
		out = append(out, "pattern "+code(pat))
	}
	if not := s.obj("not"); not != nil && not.get("const") != nil {
		out = append(out, "not "+code(fmt.Sprint(not.get("const"))))
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "; ")
}

func numberRange(s *object) []string {
	var out []string
	lo, hi := s.get("minimum"), s.get("maximum")
	if x := s.get("exclusiveMinimum"); x != nil {
		out = append(out, fmt.Sprintf("> %v", x))
		if hi != nil {
			out[0] += fmt.Sprintf(", ≤ %v", hi)
		}
		return out
	}
	switch {
	case lo != nil && hi != nil:
		out = append(out, fmt.Sprintf("%v to %v", lo, hi))
	case lo != nil:
		out = append(out, fmt.Sprintf("≥ %v", lo))
	case hi != nil:
		out = append(out, fmt.Sprintf("≤ %v", hi))
	}
	return out
}

func span(lo, hi any, unit string) string {
	switch {
	case lo != nil && hi != nil:
		return fmt.Sprintf("%v to %v %s", lo, hi, unit)
	case lo != nil:
		return fmt.Sprintf("at least %v %s", lo, unit)
	}
	return fmt.Sprintf("at most %v %s", hi, unit)
}

// code is s as inline code in a table cell.
func code(s string) string { return "`" + strings.ReplaceAll(s, "|", `\|`) + "`" }

// cell escapes what would end a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
