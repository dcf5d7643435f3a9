package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
)

// Scenario is a course of phases that change the routes over time: each phase lays its merge
// patches over the routes of the base document (the file's, with the PATCHes made since) for its
// duration, as PATCH /-/routes/{name} would.
type Scenario struct {
	Name string `json:"name"`
	// Start is when the course starts: at_start (as the process starts, and again when a reload
	// changes the scenario) or on_demand (POST /-/scenario/start).
	Start  string  `json:"start"`
	Repeat Repeat  `json:"repeat"`
	Phases []Phase `json:"phases"`
}

// The start modes of a scenario.
const (
	StartAtStart  = "at_start"
	StartOnDemand = "on_demand"
)

// Phase is one stretch of a scenario. Ramp, when set, moves the numbers of the routes from what
// ran as the phase began to the phase's own over its first Ramp of Duration.
type Phase struct {
	Name     string   `json:"name"`
	Duration Duration `json:"duration"`
	Ramp     Duration `json:"ramp,omitempty"`
	// Routes holds a JSON merge patch per route name, kept as written so that it merges into the
	// base document as a PATCH would (no number goes through a float64).
	Routes map[string]json.RawMessage `json:"routes,omitempty"`
}

// Repeat is how many times a scenario plays its phases: false (or 1) once, true for ever, a
// count that many times in all. In Go, 0 is once and RepeatForever for ever.
type Repeat int

// RepeatForever is true's Repeat.
const RepeatForever Repeat = -1

// Runs is how many times the phases play; 0 is for ever.
func (r Repeat) Runs() int {
	switch {
	case r == RepeatForever:
		return 0
	case r <= 1:
		return 1
	}
	return int(r)
}

// MarshalJSON writes the value back as it is written: false, true or a count.
func (r Repeat) MarshalJSON() ([]byte, error) {
	switch r {
	case RepeatForever:
		return []byte("true"), nil
	case 0:
		return []byte("false"), nil
	}
	return []byte(strconv.Itoa(int(r))), nil
}

// UnmarshalJSON reads true, false or a count (the schema has checked the shape).
func (r *Repeat) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*r = RepeatForever
		return nil
	case "false", "null":
		*r = 0
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("repeat must be true, false or a count: %w", err)
	}
	*r = Repeat(n)
	return nil
}

// MaxPhases bounds a scenario's phases, and so the series of the phase gauge (the schema says
// it too).
const MaxPhases = 32

// checkScenario is Check's part for the scenario: phase names unique, patched routes that exist,
// ramps within their phase.
func (c Config) checkScenario(add func(ptr, format string, args ...any)) {
	s := c.Scenario
	if s == nil {
		return
	}
	names := map[string]int{}
	for i, p := range s.Phases {
		ptr := "/scenario/phases/" + strconv.Itoa(i)
		if j, dup := names[p.Name]; dup {
			add(ptr+"/name", "duplicate phase name %q (also /scenario/phases/%d/name)", p.Name, j)
		} else {
			names[p.Name] = i
		}
		if p.Ramp > p.Duration {
			add(ptr+"/ramp", "%s is longer than the phase (%s)", p.Ramp.D(), p.Duration.D())
		}
		for _, name := range sortedKeys(p.Routes) {
			if !slices.ContainsFunc(c.Routes, func(r Route) bool { return r.Name == name }) {
				add(ptr+"/routes/"+escapePointer(name), "no route is named %q (the routes are %s)", name, routeNames(c.Routes))
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func routeNames(routes []Route) string {
	names := make([]string, len(routes))
	for i, r := range routes {
		names[i] = r.Name
	}
	return fmt.Sprint(names)
}

// PhaseConfigs returns, for each phase of c's scenario, the config that runs during it: doc (the
// base document c was parsed from) with the phase's patches merged into its routes, checked as a
// file is. The scenario is left out of the phases' configs. A phase whose routes do not check
// is named with every problem, under the phase's pointer.
func PhaseConfigs(doc []byte, c Config) ([]Config, error) {
	if c.Scenario == nil {
		return nil, nil
	}
	var whole map[string]json.RawMessage
	if err := json.Unmarshal(doc, &whole); err != nil {
		return nil, fmt.Errorf("the base document: %w", err)
	}
	delete(whole, "scenario")
	var routes []json.RawMessage
	if raw, ok := whole["routes"]; ok {
		if err := json.Unmarshal(raw, &routes); err != nil {
			return nil, fmt.Errorf("the base document's routes: %w", err)
		}
	}
	out := make([]Config, len(c.Scenario.Phases))
	var ps []Problem
	for i, p := range c.Scenario.Phases {
		ptr := "/scenario/phases/" + strconv.Itoa(i) + "/routes"
		patched := slices.Clone(routes)
		bad := false
		for _, name := range sortedKeys(p.Routes) {
			j := slices.IndexFunc(c.Routes, func(r Route) bool { return r.Name == name })
			if j < 0 || j >= len(patched) {
				ps = append(ps, Problem{Pointer: ptr + "/" + escapePointer(name), Reason: fmt.Sprintf("no route is named %q", name)})
				bad = true
				continue
			}
			merged, err := jsonpatch.MergePatch(patched[j], p.Routes[name])
			if err != nil {
				ps = append(ps, Problem{Pointer: ptr + "/" + escapePointer(name), Reason: "not a JSON merge patch: " + err.Error()})
				bad = true
				continue
			}
			patched[j] = merged
		}
		if bad {
			continue
		}
		w := make(map[string]json.RawMessage, len(whole))
		for k, v := range whole {
			w[k] = v
		}
		var err error
		if w["routes"], err = json.Marshal(patched); err != nil {
			return nil, err
		}
		pdoc, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		cfg, err := Parse("phase", pdoc)
		var ce *Error
		if errors.As(err, &ce) {
			for _, q := range ce.Problems {
				ps = append(ps, Problem{Pointer: ptr, Reason: fmt.Sprintf("the routes as phase %q patches them: %s", p.Name, q.String())})
			}
			continue
		} else if err != nil {
			return nil, err
		}
		out[i] = cfg
	}
	if len(ps) > 0 {
		return nil, &Error{Problems: dedupe(ps)}
	}
	return out, nil
}

// Between is the config a ramp runs at progress f (0 to 1) from from to to: to, with every
// number of a route that from also has moved linearly from from's value (latency parameters and
// the delay shorthand, error and fault rates, cpu, memory, rate limits). What is not a number
// takes to's value at once (statuses are never averaged), and so does every object whose other
// values differ between the two (a route whose match or methods change, a latency of another
// distribution, a fault of another kind, an error share of another status): a ramp between two
// kinds of thing has no middle.
func Between(from, to Config, f float64) Config {
	if f >= 1 {
		return to
	}
	f = max(f, 0)
	out := to
	out.Routes = slices.Clone(to.Routes)
	for i, r := range out.Routes {
		j := slices.IndexFunc(from.Routes, func(p Route) bool { return p.Name == r.Name })
		if j < 0 {
			continue
		}
		v := reflect.ValueOf(&out.Routes[i]).Elem()
		lerp(reflect.ValueOf(from.Routes[j]), v, f, false)
	}
	return out
}

// identity are the integer fields that name a thing rather than measure it: never averaged.
var identity = map[string]bool{"Status": true, "ErrorStatus": true}

// lerp moves the numbers of dst (settable, holding to's value) from a's toward their own by f,
// where a and dst are alike in every other value. element says dst is an element of a list,
// where a status that differs makes it another thing (an error share of another status).
func lerp(a, dst reflect.Value, f float64, element bool) {
	switch dst.Kind() {
	case reflect.Int, reflect.Int64:
		x, y := float64(a.Int()), float64(dst.Int())
		dst.SetInt(int64(math.Round(x + f*(y-x))))
	case reflect.Float64:
		x, y := a.Float(), dst.Float()
		dst.SetFloat(x + f*(y-x))
	case reflect.Struct:
		if !alike(a, dst, element) {
			return
		}
		for i := range dst.NumField() {
			if !identity[dst.Type().Field(i).Name] {
				lerp(a.Field(i), dst.Field(i), f, false)
			}
		}
	case reflect.Pointer:
		if dst.IsNil() {
			return
		}
		c := reflect.New(dst.Type().Elem())
		c.Elem().Set(dst.Elem())
		if a.IsNil() { // nothing before: from the same thing at zero
			a = reflect.New(dst.Type().Elem())
			a.Elem().Set(dst.Elem())
			zeroNumbers(a.Elem())
		}
		lerp(a.Elem(), c.Elem(), f, false)
		dst.Set(c)
	case reflect.Slice:
		if a.Len() != dst.Len() || dst.Type().Elem().Kind() != reflect.Struct {
			return
		}
		c := reflect.MakeSlice(dst.Type(), dst.Len(), dst.Len())
		reflect.Copy(c, dst)
		for i := range c.Len() {
			lerp(a.Index(i), c.Index(i), f, true)
		}
		dst.Set(c)
	}
}

// alike reports whether two structs agree on every value that is not a number to move: their
// strings, booleans and lists of other things, and for an element of a list its status.
func alike(a, b reflect.Value, element bool) bool {
	for i := range b.NumField() {
		x, y := a.Field(i), b.Field(i)
		switch y.Kind() {
		case reflect.String, reflect.Bool:
			if x.Interface() != y.Interface() {
				return false
			}
		case reflect.Int, reflect.Int64:
			if element && identity[b.Type().Field(i).Name] && x.Int() != y.Int() {
				return false
			}
		case reflect.Slice:
			if y.Type().Elem().Kind() != reflect.Struct && !reflect.DeepEqual(x.Interface(), y.Interface()) {
				return false
			}
		}
	}
	return true
}

// zeroNumbers sets every number of v (settable) to 0, its other values kept.
func zeroNumbers(v reflect.Value) {
	switch v.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
		v.SetZero()
	case reflect.Struct:
		for i := range v.NumField() {
			if !identity[v.Type().Field(i).Name] {
				zeroNumbers(v.Field(i))
			}
		}
	}
}

// SameScenario reports whether two configs have the same scenario, as written: a reload that
// keeps it keeps its clock.
func SameScenario(a, b Config) bool {
	x, _ := json.Marshal(a.Scenario)
	y, _ := json.Marshal(b.Scenario)
	return bytes.Equal(x, y)
}
