//go:build external

package test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// exemplarLine matches a bucket line of the OpenMetrics exposition that carries an exemplar: the
// metric with its labels, the trace id and the exemplar's value.
var exemplarLine = regexp.MustCompile(`(?m)^(\w+)_bucket\{([^}]*)\} \S+ # \{trace_id="([0-9a-f]+)"\} (\S+)`)

// TestSlowSpansSayWhy: in a real Jaeger, the server span and the delay span of every request to a
// lognormal route that burns 5ms of CPU carry distribution=lognormal, the draw's quantile (the
// one at which the lognormal gives back the delay the span reports) and the CPU seconds burned;
// the exemplars /metrics shows under OpenMetrics on app_request_duration_seconds and on
// app_upstream_request_duration_seconds (the route calls a second anyroute) each name a trace
// Jaeger holds, with those tags, and a call span for the upstream one.
func TestSlowSpansSayWhy(t *testing.T) {
	j := kit.StartJaeger(t)
	const service, n = "anyroute-it-why", 30
	const median, p99 = 4 * time.Millisecond, 40 * time.Millisecond
	leaf := start(t, `{"routes": [{"name": "leaf", "match": "/*", "delay": "1ms"}]}`)
	p := start(t, fmt.Sprintf(`{
  "tracing": {"backend": "jaeger", "service_name": %q, "sampler": {"type": "const", "param": 1}, "jaeger": {"agent_addr": %q}},
  "routes": [{"name": "tail", "match": "/tail", "cpu": "5ms",
    "latency": {"distribution": "lognormal", "median": %q, "p99": %q, "max": "1s"},
    "calls": [{"name": "leaf", "url": "%s/", "timeout": "5s"}]}]
}`, service, j.AgentUDP, median.String(), p99.String(), leaf.api))
	for range n {
		if code, body := kit.Get(p.api + "/tail"); code != 200 {
			t.Fatalf("/tail: %d %s", code, body)
		}
	}

	// The exemplars, once the flusher has counted every request.
	exemplars := map[string]string{} // metric → trace id of its slowest bucket with an exemplar
	kit.WaitUntil(t, 10*time.Second, "the requests and their exemplars on /metrics", func() (bool, string, error) {
		code, om := kit.Do(context.Background(), http.MethodGet, p.admin+"/metrics",
			http.Header{"Accept": {"application/openmetrics-text; version=1.0.0"}}, nil)
		if code != 200 {
			return false, "", fmt.Errorf("/metrics: %d", code)
		}
		if !strings.Contains(om, fmt.Sprintf(`app_requests_total{code="200",method="GET",route="tail"} %d`, n)) {
			return false, "requests not all counted yet", nil
		}
		for _, m := range exemplarLine.FindAllStringSubmatch(om, -1) {
			if strings.Contains(m[2], `route="tail"`) {
				exemplars[m[1]] = m[3] // buckets come in increasing le: the last is the slowest
			}
		}
		return len(exemplars) == 2, fmt.Sprintf("exemplars %v", exemplars), nil
	})

	p.SignalT(t, syscall.SIGTERM) // the spans still in the reporter go with the flush at shutdown
	if code := p.WaitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	traces := waitTraces(t, j, service, n, 3*n) // the server span, the call's and the delay's
	mu := math.Log(float64(median))
	sigma := (math.Log(float64(p99)) - mu) / 2.3263478740408408
	byID := map[string]kit.Trace{}
	for _, tr := range traces {
		byID[strings.TrimLeft(tr.TraceID, "0")] = tr
		var server, delay map[string]string
		calls := 0
		for _, s := range tr.Spans {
			switch s.OperationName {
			case "HTTP GET":
				server = s.TagMap()
			case "delay":
				delay = s.TagMap()
			case "call leaf":
				calls++
			}
		}
		if server == nil || delay == nil || calls != 1 {
			t.Errorf("trace %s: spans %v, want a server span, a delay span and a call", tr.TraceID, tr.Spans)
			continue
		}
		drawn, err := time.ParseDuration(delay["delay"])
		if err != nil {
			t.Errorf("trace %s: delay tag %q: %v", tr.TraceID, delay["delay"], err)
			continue
		}
		for name, tags := range map[string]map[string]string{"server": server, "delay": delay} {
			q, qErr := strconv.ParseFloat(tags["quantile"], 64)
			cpu, cpuErr := strconv.ParseFloat(tags["cpu"], 64)
			if tags["distribution"] != "lognormal" || qErr != nil || q <= 0 || q >= 1 || cpuErr != nil || cpu < 0.005 || cpu > 0.5 {
				t.Errorf("trace %s: %s span tags %v; want distribution lognormal, a quantile in (0, 1), cpu at least 0.005 s", tr.TraceID, name, tags)
				continue
			}
			// The lognormal's value at the quantile is the delay drawn (a quantile kept to six
			// decimals moves it by far less than 2%).
			z := math.Sqrt2 * math.Erfinv(2*q-1)
			if want := math.Exp(mu + sigma*z); math.Abs(float64(drawn)-want) > 0.02*want {
				t.Errorf("trace %s: %s span: delay %v at quantile %v; the lognormal has %v there", tr.TraceID, name, drawn, q, time.Duration(want))
			}
		}
	}
	for metric, id := range exemplars {
		tr, ok := byID[strings.TrimLeft(id, "0")]
		if !ok {
			t.Errorf("the exemplar of %s names trace %s, which Jaeger does not hold", metric, id)
			continue
		}
		t.Logf("%s: exemplar trace %s, %d spans", metric, id, len(tr.Spans))
	}
	if _, ok := exemplars["app_upstream_request_duration_seconds"]; !ok {
		t.Errorf("no exemplar on app_upstream_request_duration_seconds: %v", exemplars)
	}
}
