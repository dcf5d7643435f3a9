package load

import (
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/transport/load/stages"
)

// TestCheckNamesWhatIsWrong: each bad spec is refused with a problem naming its field.
func TestCheckNamesWhatIsWrong(t *testing.T) {
	ok := Target{URL: "http://127.0.0.1:1/"}
	rate := func(s Spec) Spec { s.Rate, s.Duration = 10, stages.Duration(time.Second); return s }
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{rate(Spec{}), "targets: none given"},
		{rate(Spec{Targets: []Target{{URL: "127.0.0.1:8080"}}}), "targets[0].url"},
		{rate(Spec{Targets: []Target{{URL: "http:///x"}}}), `targets[0].url: "http:///x" has no host`},
		{rate(Spec{Targets: []Target{ok, {URL: ok.URL, Name: "t0"}}}), `targets[1].name: "t0" is also targets[0]'s`},
		{rate(Spec{Targets: []Target{{URL: ok.URL, Method: "GE T"}}}), `targets[0].method: "GE T"`},
		{rate(Spec{Targets: []Target{{URL: ok.URL, Headers: map[string]string{"x-a": "b\r\nx-evil: 1"}}}}), `targets[0].headers["x-a"]: the value holds a line break`},
		{rate(Spec{Targets: []Target{{URL: ok.URL, Headers: map[string]string{"host": "x"}}}}), "targets[0].headers: Host is taken from the URL"},
		{rate(Spec{Targets: []Target{{URL: ok.URL, Weight: -1}}}), "targets[0].weight: -1"},
		{rate(Spec{Targets: []Target{{URL: ok.URL, Body: strings.Repeat("x", maxBodyBytes+1)}}}), "targets[0].body"},
		{rate(Spec{Targets: []Target{{URL: ok.URL, Name: strings.Repeat("n", 65)}}}), "targets[0].name"},
		{Spec{Targets: []Target{ok}}, "rate: none given"},
		{Spec{Targets: []Target{ok}, Rate: 10}, "duration: 0s is outside"},
		{Spec{Targets: []Target{ok}, Rate: 30000, Duration: stages.Duration(time.Second)}, "rate: 30000 is outside (0, 20000]"},
		{Spec{Targets: []Target{ok}, Stages: []stages.Stage{{Duration: stages.Duration(time.Second), TargetRate: 1}}, Rate: 5}, "not both"},
		{Spec{Targets: []Target{ok}, Concurrency: 5000, Duration: stages.Duration(time.Second)}, "concurrency: 5000 is outside [1, 1000]"},
		{Spec{Targets: []Target{ok}, Concurrency: 5}, "duration: 0s is outside"},
		{rate(Spec{Targets: []Target{ok}, Timeout: stages.Duration(time.Hour)}), "timeout: 1h0m0s is outside"},
		{rate(Spec{Targets: []Target{ok}, MaxInFlight: 1 << 20}), "max_in_flight: 1048576 is outside"},
	} {
		err := c.spec.WithDefaults().Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) = %v; want it to say %q", c.spec, err, c.want)
		}
	}
	if err := rate(Spec{Targets: []Target{ok}}).WithDefaults().Check(); err != nil {
		t.Errorf("a good spec: %v", err)
	}
}

// TestParseSpecLaysTracingOverTheDefaults: a tracing section keeps the defaults it does not name.
func TestParseSpecLaysTracingOverTheDefaults(t *testing.T) {
	s, err := ParseSpec([]byte(`{"targets":[{"url":"http://a/"}],"rate":1,"duration":"1s","tracing":{"backend":"otlp"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tracing.Backend != "otlp" || s.Tracing.ServiceName != "anyroute-load" || s.Tracing.Sampler.Type != "const" || s.Tracing.OTLP.Endpoint == "" {
		t.Errorf("tracing %+v", *s.Tracing)
	}
	if _, err := ParseSpec([]byte(`{"targets":[],"rat":1}`)); err == nil || !strings.Contains(err.Error(), `unknown field "rat"`) {
		t.Errorf("a misspelt field: %v", err)
	}
}
