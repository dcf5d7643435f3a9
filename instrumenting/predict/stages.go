package predict

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anyroute/anyroute/transport/load/stages"
)

// Load is what predict is told about the load: its stages (the schedule `anyroute load -stages`
// sends, read by the same package), and how its requests split over the routes of the anyroute
// config (weights; none: evenly over the routes).
type Load struct {
	stages.Plan
	Routes map[string]float64
}

// MaxLoadDuration bounds a prediction's length: the simulation steps every 100 ms.
const MaxLoadDuration = 24 * time.Hour

// ParseLoad reads {"stages": [{"duration": "30s", "target_rate": 500}, ...], "routes": {"name": weight}}.
func ParseLoad(b []byte) (Load, error) {
	var raw struct {
		Stages stages.List        `json:"stages"`
		Routes map[string]float64 `json:"routes"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Load{}, fmt.Errorf("load: %w", err)
	}
	plan := stages.Plan{Stages: raw.Stages}
	if err := plan.Validate(stages.Limits{MaxDuration: MaxLoadDuration}); err != nil {
		return Load{}, fmt.Errorf("load: %w", err)
	}
	for _, name := range sortedNames(raw.Routes) {
		if w := raw.Routes[name]; w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return Load{}, fmt.Errorf("load: /routes/%s: a weight is a number, 0 or more", name)
		}
	}
	return Load{Plan: plan, Routes: raw.Routes}, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
