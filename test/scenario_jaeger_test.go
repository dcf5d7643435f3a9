//go:build external

package test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestScenarioPhaseOnSpans: in a real Jaeger, the server span and the delay span of a request
// answered during a scenario phase carry scenario.phase with that phase, and those of a request
// answered once the scenario stopped carry none.
func TestScenarioPhaseOnSpans(t *testing.T) {
	j := kit.StartJaeger(t)
	const service = "anyroute-it-scenario"
	p := start(t, fmt.Sprintf(`{"admin": {"lifecycle": true},
  "tracing": {"backend": "jaeger", "service_name": %q, "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  "routes": [{"name": "api", "match": "/api", "delay": "2ms"}],
  "scenario": {"name": "drill", "start": "on_demand", "phases": [
    {"name": "calm", "duration": "1m"},
    {"name": "slow", "duration": "1m", "routes": {"api": {"delay": "20ms"}}}]}}`, service, j.AgentUDP))
	ctx := context.Background()
	post := func(path string) {
		t.Helper()
		if code, body := kit.Do(ctx, "POST", p.admin+path, nil, nil); code != 200 {
			t.Fatalf("POST %s: %d %s", path, code, body)
		}
	}
	get := func() {
		t.Helper()
		if code, _ := kit.Get(p.api + "/api"); code != 200 {
			t.Fatalf("/api: %d", code)
		}
	}
	post("/-/scenario/start")
	get()
	post("/-/scenario/skip?phase=slow")
	get()
	post("/-/scenario/stop")
	get()
	p.SignalT(t, syscall.SIGTERM) // the spans still in the reporter go with the flush at shutdown
	if code := p.WaitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var got []string
	for _, tr := range waitTraces(t, j, service, 3, 6) {
		for _, s := range tr.Spans {
			phase, ok := s.TagMap()["scenario.phase"]
			if !ok {
				phase = "(none)"
			}
			got = append(got, s.OperationName+" "+phase)
		}
	}
	slices.Sort(got)
	want := []string{"HTTP GET (none)", "HTTP GET calm", "HTTP GET slow", "delay (none)", "delay calm", "delay slow"}
	if !slices.Equal(got, want) {
		t.Errorf("spans by operation and scenario.phase: %v, want %v", got, want)
	}
}
