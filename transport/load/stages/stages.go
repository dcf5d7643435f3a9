// Package stages describes the shape of a load over time: a list of stages, each a duration and
// the arrival rate reached at its end, the rate moving linearly from the previous stage's (0
// before the first). `anyroute load` sends on this schedule and `anyroute predict` models what
// the autoscaling chain does under it, so both read the same JSON:
//
//	{"stages": [{"duration": "30s", "target_rate": 500}, {"duration": "1m", "target_rate": 500}]}
//
// A ramp is a stage whose target differs from the rate before it, a hold one whose target is the
// same, a step a stage of duration "0s" (the rate jumps to its target), a ramp down a stage to a
// lower target. The package holds only the arithmetic of the schedule (the rate at a time, the
// requests due by a time and the time of the n-th request), with no clock, I/O or randomness, so
// the sender and the predictor agree on every number.
package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Stage is one piece of the schedule: over Duration the rate moves linearly from the previous
// stage's target (0 before the first stage) to TargetRate, in requests per second.
type Stage struct {
	Duration   Duration `json:"duration"`
	TargetRate float64  `json:"target_rate"`
}

// List is the stages of a schedule, in order.
type List []Stage

// UnmarshalJSON reads the stages one by one, so that an error names its stage (stages[i]).
func (l *List) UnmarshalJSON(doc []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		return fmt.Errorf("stages: %w", err)
	}
	out := make(List, len(raw))
	for i, d := range raw {
		if err := out[i].UnmarshalJSON(d); err != nil {
			return fmt.Errorf("stages[%d]: %w", i, err)
		}
	}
	*l = out
	return nil
}

// Plan is a whole schedule, in the JSON shape of the package comment.
type Plan struct {
	Stages List `json:"stages"`
}

// Duration is a time.Duration written as Go writes one ("30s", "1m30s") in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string ("30s", "1m30s", "0s").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Limits bound what a plan may ask for; zero fields bound nothing.
type Limits struct {
	MaxRate     float64       // requests per second, at any time
	MaxDuration time.Duration // the whole plan
}

// Parse reads a plan from JSON, rejecting unknown fields, and validates it against lim.
func Parse(doc []byte, lim Limits) (Plan, error) {
	var p Plan
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Plan{}, fmt.Errorf("stages: %w", err)
	}
	if dec.More() {
		return Plan{}, errors.New("stages: more than one JSON value")
	}
	return p, p.Validate(lim)
}

// UnmarshalJSON reads a stage, both of whose fields are required (a stage without a target_rate
// would otherwise read as a drop to 0, and one without a duration as a step), and no others.
func (s *Stage) UnmarshalJSON(doc []byte) error {
	var raw struct {
		Duration   *Duration `json:"duration"`
		TargetRate *float64  `json:"target_rate"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	switch {
	case raw.Duration == nil:
		return errors.New(`no duration: give one such as "30s" ("0s" for a step)`)
	case raw.TargetRate == nil:
		return errors.New("no target_rate: give the rate at the stage's end, in requests per second")
	}
	*s = Stage{Duration: *raw.Duration, TargetRate: *raw.TargetRate}
	return nil
}

// Constant is the plan of a fixed rate for d: a step to rate, then a hold.
func Constant(rate float64, d time.Duration) Plan {
	return Plan{Stages: []Stage{{Duration: 0, TargetRate: rate}, {Duration: Duration(d), TargetRate: rate}}}
}

// Validate says what is wrong with the plan, naming the stage (stages[i], from 0): every problem,
// joined, or nil.
func (p Plan) Validate(lim Limits) error {
	var errs []error
	if len(p.Stages) == 0 {
		errs = append(errs, errors.New("stages: none given; a plan needs at least one stage"))
	}
	var total time.Duration
	for i, s := range p.Stages {
		switch {
		case s.Duration < 0:
			errs = append(errs, fmt.Errorf("stages[%d].duration: %s is negative", i, time.Duration(s.Duration)))
		case math.IsNaN(s.TargetRate) || math.IsInf(s.TargetRate, 0) || s.TargetRate < 0:
			errs = append(errs, fmt.Errorf("stages[%d].target_rate: %v is not a rate (a number of requests per second, 0 or more)", i, s.TargetRate))
		case lim.MaxRate > 0 && s.TargetRate > lim.MaxRate:
			errs = append(errs, fmt.Errorf("stages[%d].target_rate: %v is above the cap of %v requests per second", i, s.TargetRate, lim.MaxRate))
		}
		if s.Duration > 0 {
			total += time.Duration(s.Duration)
		}
	}
	if len(p.Stages) > 0 && total == 0 {
		errs = append(errs, errors.New("stages: the total duration is 0; give at least one stage a duration"))
	}
	if lim.MaxDuration > 0 && total > lim.MaxDuration {
		errs = append(errs, fmt.Errorf("stages: the total duration %s is above the cap of %s", total, lim.MaxDuration))
	}
	return errors.Join(errs...)
}

// Duration is the length of the whole plan.
func (p Plan) Duration() time.Duration {
	var total time.Duration
	for _, s := range p.Stages {
		total += time.Duration(s.Duration)
	}
	return total
}

// MaxRate is the highest rate the plan reaches.
func (p Plan) MaxRate() float64 {
	var m float64
	for _, s := range p.Stages {
		m = math.Max(m, s.TargetRate)
	}
	return m
}

// RateAt is the scheduled rate t into the plan, in requests per second; 0 before the start and
// from the end on. At a step's instant it is the step's target.
func (p Plan) RateAt(t time.Duration) float64 {
	if t < 0 {
		return 0
	}
	from, start := 0.0, time.Duration(0)
	for _, s := range p.Stages {
		d := time.Duration(s.Duration)
		if t < start+d {
			frac := float64(t-start) / float64(d)
			return from + (s.TargetRate-from)*frac
		}
		from, start = s.TargetRate, start+d
	}
	return 0
}

// CountAt is the number of requests due in [0, t): the integral of the rate, a real number. The
// n-th request (from 0) is due at the first instant after which CountAt exceeds n: at a constant
// rate r that is n/r, and a stage at rate 0 sends nothing.
func (p Plan) CountAt(t time.Duration) float64 {
	if t <= 0 {
		return 0
	}
	n, from, start := 0.0, 0.0, time.Duration(0)
	for _, s := range p.Stages {
		d := time.Duration(s.Duration)
		if t < start+d {
			x := (t - start).Seconds()
			rate := from + (s.TargetRate-from)*x/d.Seconds()
			return n + (from+rate)/2*x
		}
		n += (from + s.TargetRate) / 2 * d.Seconds()
		from, start = s.TargetRate, start+d
	}
	return n
}

// Total is the number of requests the whole plan sends: ceil of its integral (a request is due
// at every point where the integral reaches a whole number, the first at 0).
func (p Plan) Total() int64 {
	return ceil(p.CountAt(p.Duration()))
}

// ceil rounds up, forgiving the last bits of a float that should be whole (500 × 3 s computed as
// 1500.0000000002 is 1500 requests, not 1501).
func ceil(x float64) int64 {
	r := math.Round(x)
	if math.Abs(x-r) < 1e-9*math.Max(1, math.Abs(x)) {
		return int64(r)
	}
	return int64(math.Ceil(x))
}

// SendTime is when the n-th request (from 0) is due (see CountAt), as an offset from the plan's
// start. ok is false when the plan ends before it (n ≥ Total()).
func (p Plan) SendTime(n int64) (t time.Duration, ok bool) {
	if n < 0 || n >= p.Total() {
		return 0, false
	}
	want := float64(n)
	done, from, start := 0.0, 0.0, time.Duration(0)
	for _, s := range p.Stages {
		d := time.Duration(s.Duration)
		in := (from + s.TargetRate) / 2 * d.Seconds()
		if d > 0 && want < done+in && !sameCount(want, done+in) {
			at := start
			if need := want - done; need > 0 {
				x := solveRamp(from, s.TargetRate, d.Seconds(), need)
				at += time.Duration(x * float64(time.Second))
			}
			return min(at, start+d-1), true
		}
		done += in
		from, start = s.TargetRate, start+d
	}
	return 0, false
}

func sameCount(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(a)) }

// solveRamp returns the x in [0, d] seconds into a stage ramping from r0 to r1 over d seconds at
// which the requests sent since its start reach need: r0·x + (r1-r0)/(2d)·x² = need.
func solveRamp(r0, r1, d, need float64) float64 {
	a := (r1 - r0) / (2 * d)
	if math.Abs(a) < 1e-12 {
		if r0 == 0 {
			return d
		}
		return math.Min(need/r0, d)
	}
	// The root of a·x² + r0·x - need = 0 that lies in [0, d], written to avoid cancellation.
	disc := r0*r0 + 4*a*need
	if disc < 0 {
		disc = 0
	}
	x := 2 * need / (r0 + math.Sqrt(disc))
	if math.IsNaN(x) || math.IsInf(x, 0) {
		x = d
	}
	return math.Max(0, math.Min(x, d))
}
