//go:build external

package test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestFaultsShowOnTheirSpans: a request whose answer a fault replaced leaves, in a real Jaeger, a
// server span tagged with the fault (fault=reset) and marked an error, though the client got no
// answer to read a trace id from; a slow_body's span names its fault and is no error, since its
// client got the whole answer.
func TestFaultsShowOnTheirSpans(t *testing.T) {
	j := kit.StartJaeger(t)
	const service = "anyroute-it-faults"
	p := start(t, fmt.Sprintf(`{
  "tracing": {"backend": "jaeger", "service_name": %q, "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  "routes": [
    {"name": "broken", "match": "/broken", "faults": [{"kind": "reset", "rate": 1}]},
    {"name": "slow", "match": "/slow", "faults": [{"kind": "slow_body", "rate": 1, "bytes_per_second": 100000}]}]
}`, service, j.AgentUDP))
	addr := strings.TrimPrefix(p.api, "http://")
	for range 3 {
		if s := rawGet(t, addr, "/broken"); s.code != "reset" {
			t.Fatalf("/broken: the client saw %s, want a reset", s.code)
		}
	}
	if code, _ := kit.Get(p.api + "/slow"); code != 200 {
		t.Fatalf("/slow: %d", code)
	}
	p.SignalT(t, syscall.SIGTERM) // the spans still in the reporter go with the flush at shutdown
	if code := p.WaitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	got := map[string]int{}
	for _, tr := range waitTraces(t, j, service, 4, 4) {
		tags := tr.Spans[0].TagMap()
		got[tags["route"]+" fault="+tags["fault"]+" error="+tags["error"]]++
	}
	if got["broken fault=reset error=true"] != 3 || got["slow fault=slow_body error="] != 1 {
		t.Errorf("server spans by route, fault and error tags: %v", got)
	}
}
