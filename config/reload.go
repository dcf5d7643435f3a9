package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
)

// Reloadable are the top-level keys a running service takes from a new config without a restart:
// its route rules and what they share, the process-level memory cost, and the scenario that
// changes the routes over time. Every other key (listeners, timeouts, metrics, tracing,
// logging, shutdown) is read at start only.
var Reloadable = []string{"routes", "seed", "max_hops", "resident", "leak", "scenario"}

// RestartOnly names, as problems, every key outside Reloadable whose value differs between the
// running config and a new one: a reload that changes any of them is refused whole, since what it
// asks would not happen without a restart.
func RestartOnly(running, next Config) []Problem {
	a, b := withoutReloadable(running), withoutReloadable(next)
	var ps []Problem
	diff(a, b, "", func(ptr string) {
		ps = append(ps, Problem{Pointer: ptr, Reason: "takes effect only at a restart; the reload is refused (restart the process, or leave the key as it runs)"})
	})
	slices.SortFunc(ps, func(x, y Problem) int {
		switch {
		case x.Pointer < y.Pointer:
			return -1
		case x.Pointer > y.Pointer:
			return 1
		}
		return 0
	})
	return ps
}

// withoutReloadable is the config as a JSON document, the reloadable keys left out.
func withoutReloadable(c Config) map[string]any {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("config: a Config does not marshal: %v", err)) // every field is plain data
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	for _, k := range Reloadable {
		delete(m, k)
	}
	return m
}

// diff calls differ with the pointer of every leaf where a and b differ.
func diff(a, b any, ptr string, differ func(string)) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			diff(am[k], bm[k], ptr+"/"+escapePointer(k), differ)
		}
		return
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		for i := range as {
			diff(as[i], bs[i], ptr+"/"+strconv.Itoa(i), differ)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		differ(ptr)
	}
}
