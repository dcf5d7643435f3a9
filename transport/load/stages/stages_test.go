package stages

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, doc string) Plan {
	t.Helper()
	p, err := Parse([]byte(doc), Limits{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	return p
}

func TestConstantRateSendsEvenly(t *testing.T) {
	p := Constant(500, 3*time.Second)
	if got := p.Total(); got != 1500 {
		t.Fatalf("Total = %d, want 1500", got)
	}
	for _, n := range []int64{0, 1, 499, 500, 1499} {
		at, ok := p.SendTime(n)
		want := time.Duration(n) * 2 * time.Millisecond
		if !ok || (at-want).Abs() > time.Microsecond {
			t.Errorf("SendTime(%d) = %v, %v; want %v", n, at, ok, want)
		}
	}
	if _, ok := p.SendTime(1500); ok {
		t.Error("SendTime(1500) is past the plan's end and must say so")
	}
	if r := p.RateAt(time.Second); r != 500 {
		t.Errorf("RateAt(1s) = %v, want 500", r)
	}
	if r := p.RateAt(3 * time.Second); r != 0 {
		t.Errorf("RateAt(end) = %v, want 0", r)
	}
}

// TestRampFollowsTheIntegral: the requests due in each second of a ramp, step, hold, ramp down and
// pause are the integral of the rate over that second, within the one request rounding allows.
func TestRampFollowsTheIntegral(t *testing.T) {
	p := mustParse(t, `{"stages":[
		{"duration":"5s","target_rate":200},
		{"duration":"3s","target_rate":200},
		{"duration":"0s","target_rate":600},
		{"duration":"2s","target_rate":600},
		{"duration":"4s","target_rate":0},
		{"duration":"2s","target_rate":0},
		{"duration":"2s","target_rate":100}]}`)
	if d := p.Duration(); d != 18*time.Second {
		t.Fatalf("Duration = %v", d)
	}
	// 0-5 s: 500, 5-8 s: 600, 8-10 s: 1200, 10-14 s: 1200, 14-16 s: 0, 16-18 s: 100.
	if got, want := p.Total(), int64(500+600+1200+1200+100); got != want {
		t.Fatalf("Total = %d, want %d", got, want)
	}
	perSecond := make([]int, 18)
	last := time.Duration(-1)
	for n := range p.Total() {
		at, ok := p.SendTime(n)
		if !ok {
			t.Fatalf("SendTime(%d) not ok below Total", n)
		}
		if at < last {
			t.Fatalf("SendTime(%d) = %v goes back before %v", n, at, last)
		}
		last = at
		if c := p.CountAt(at); c > float64(n)+1e-6 {
			t.Fatalf("request %d due at %v, where %v are already due", n, at, c)
		}
		perSecond[at/time.Second]++
	}
	for s := range perSecond {
		want := p.CountAt(time.Duration(s+1)*time.Second) - p.CountAt(time.Duration(s)*time.Second)
		if math.Abs(float64(perSecond[s])-want) > 1 {
			t.Errorf("second %d: %d requests due, the integral says %.2f", s, perSecond[s], want)
		}
	}
	for s := 14; s < 16; s++ {
		if perSecond[s] != 0 {
			t.Errorf("second %d is a pause at rate 0 but has %d requests", s, perSecond[s])
		}
	}
	if r := p.RateAt(2500 * time.Millisecond); math.Abs(r-100) > 1e-9 {
		t.Errorf("RateAt(2.5s) = %v, want 100 halfway up the ramp", r)
	}
	if r := p.RateAt(8 * time.Second); r != 600 {
		t.Errorf("RateAt at the step = %v, want 600", r)
	}
	if r := p.RateAt(12 * time.Second); math.Abs(r-300) > 1e-9 {
		t.Errorf("RateAt(12s) = %v, want 300 halfway down", r)
	}
}

func TestPauseFirstSendsNothingUntilTheRamp(t *testing.T) {
	p := mustParse(t, `{"stages":[{"duration":"2s","target_rate":0},{"duration":"1s","target_rate":10}]}`)
	at, ok := p.SendTime(0)
	if !ok || at != 2*time.Second {
		t.Fatalf("first request at %v, %v; want 2s, when the ramp starts", at, ok)
	}
	if p.Total() != 5 {
		t.Fatalf("Total = %d, want 5", p.Total())
	}
}

func TestJSONShape(t *testing.T) {
	doc := `{"stages":[{"duration":"30s","target_rate":500},{"duration":"1m0s","target_rate":2000}]}`
	p := mustParse(t, doc)
	if p.Stages[1].Duration != Duration(time.Minute) || p.Stages[1].TargetRate != 2000 {
		t.Fatalf("decoded %+v", p)
	}
	out, err := json.Marshal(p)
	if err != nil || string(out) != doc {
		t.Fatalf("encoded %s, %v; want %s", out, err, doc)
	}
}

func TestValidateNamesWhatIsWrong(t *testing.T) {
	lim := Limits{MaxRate: 1000, MaxDuration: time.Minute}
	for doc, want := range map[string][]string{
		`{"stages":[]}`: {"none given"},
		`{"stages":[{"duration":"1s","target_rate":5},{"duration":"1s"}]}`:                    {"stages[1]: no target_rate"},
		`{"stages":[{"target_rate":5}]}`:                                                      {"stages[0]: no duration"},
		`{"stages":[{"duration":"-1s","target_rate":5}]}`:                                     {"stages[0].duration", "negative"},
		`{"stages":[{"duration":"1s","target_rate":-5}]}`:                                     {"stages[0].target_rate", "not a rate"},
		`{"stages":[{"duration":"1s","target_rate":5},{"duration":"1s","target_rate":2000}]}`: {"stages[1].target_rate", "cap of 1000"},
		`{"stages":[{"duration":"2m","target_rate":5}]}`:                                      {"total duration 2m0s", "cap of 1m0s"},
		`{"stages":[{"duration":"0s","target_rate":5}]}`:                                      {"total duration is 0"},
		`{"stages":[{"duration":"5","target_rate":5}]}`:                                       {"duration \"5\"", "missing unit"},
		`{"stages":[{"duration":5,"target_rate":5}]}`:                                         {"a duration is a string"},
		`{"stages":[{"duration":"1s","rate":5}]}`:                                             {"unknown field \"rate\""},
		`{"stages":[{"duration":"1s","target_rate":5}]} {}`:                                   {"more than one JSON value"},
	} {
		_, err := Parse([]byte(doc), lim)
		if err == nil {
			t.Errorf("Parse(%s) accepted it", doc)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%s) = %q, want it to say %q", doc, err, w)
			}
		}
	}
}

// TestNoDriftOverLongPlans: the n-th request of an hour at 20,000/s is due within a microsecond of
// n/20000 s, so float error never adds up to a rate off schedule.
func TestNoDriftOverLongPlans(t *testing.T) {
	p := Constant(20000, time.Hour)
	n := p.Total() - 1
	at, ok := p.SendTime(n)
	want := time.Duration(float64(n) / 20000 * float64(time.Second))
	if !ok || (at-want).Abs() > time.Microsecond {
		t.Fatalf("SendTime(%d) = %v, %v; want %v", n, at, ok, want)
	}
}
