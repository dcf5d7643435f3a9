package test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jaegerProc is a real Jaeger v2 (all-in-one, in-memory storage) on free loopback ports, started
// from the binary `make tools` builds, with the project's config and every port overridden.
type jaegerProc struct {
	query    string // host:port of the query HTTP API
	agentUDP string // jaeger-client-go's UDP agent protocol (thrift compact)
	zipkin   string // Zipkin v2 HTTP
	otlpHTTP string // OTLP/HTTP
	logs     *syncBuffer
}

func startJaeger(t *testing.T) *jaegerProc {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", ".tools", "bin", "jaeger"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Jaeger is not built (%v): run `make tools` (or `scripts/tools.sh jaeger`) first; `make test` does it for you", err)
	}
	configFile, err := filepath.Abs(filepath.Join("..", "scripts", "jaeger-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	j := &jaegerProc{logs: &syncBuffer{}}
	health := freeAddr(t)
	endpoints := map[string]string{ // config key → address; every listener of the config moves
		"extensions.jaeger_query.http.endpoint":              freeAddr(t),
		"extensions.jaeger_query.grpc.endpoint":              freeAddr(t),
		"extensions.remote_sampling.http.endpoint":           freeAddr(t),
		"extensions.remote_sampling.grpc.endpoint":           freeAddr(t),
		"extensions.healthcheckv2.http.endpoint":             health,
		"extensions.healthcheckv2.grpc.endpoint":             freeAddr(t),
		"receivers.otlp.protocols.grpc.endpoint":             freeAddr(t),
		"receivers.otlp.protocols.http.endpoint":             freeAddr(t),
		"receivers.jaeger.protocols.grpc.endpoint":           freeAddr(t),
		"receivers.jaeger.protocols.thrift_http.endpoint":    freeAddr(t),
		"receivers.jaeger.protocols.thrift_binary.endpoint":  freeUDPAddr(t),
		"receivers.jaeger.protocols.thrift_compact.endpoint": freeUDPAddr(t),
		"receivers.zipkin.endpoint":                          freeAddr(t),
	}
	j.query = endpoints["extensions.jaeger_query.http.endpoint"]
	j.agentUDP = endpoints["receivers.jaeger.protocols.thrift_compact.endpoint"]
	j.zipkin = endpoints["receivers.zipkin.endpoint"]
	j.otlpHTTP = endpoints["receivers.otlp.protocols.http.endpoint"]
	// Jaeger's own metrics listener (8888) is an array entry --set cannot reach: turn it off.
	args := []string{"--config", "file:" + configFile, "--set=service.telemetry.metrics.level=none"}
	for key, addr := range endpoints {
		args = append(args, "--set="+key+"="+addr)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "JAEGER_LISTEN_HOST=127.0.0.1")
	cmd.Stdout, cmd.Stderr = j.logs, j.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("jaeger output:\n%s", j.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _ := get("http://" + health + "/status")
		qcode, _ := get("http://" + j.query + "/api/services")
		if code == http.StatusOK && qcode == http.StatusOK {
			return j
		}
		select {
		case <-done:
			t.Fatalf("jaeger exited before it was ready:\n%s", j.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not ready after 60s:\n%s", j.logs.String())
		}
	}
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// jaegerTrace is a trace as Jaeger's query API (/api/traces) returns it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
		ProcessID string `json:"processID"`
	} `json:"spans"`
}

func (j *jaegerProc) traces(t *testing.T, service string) []jaegerTrace {
	t.Helper()
	code, body := get("http://" + j.query + "/api/traces?limit=1000&lookback=1h&service=" + url.QueryEscape(service))
	if code == http.StatusNotFound { // no trace of the service yet
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("jaeger query: %d %s", code, body)
	}
	var resp struct{ Data []jaegerTrace }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("jaeger query: %v: %.500s", err, body)
	}
	return resp.Data
}

// waitTraces polls Jaeger until it holds want traces of the service with spans spans in all.
func (j *jaegerProc) waitTraces(t *testing.T, service string, want, spans int) []jaegerTrace {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := j.traces(t, service)
		n := 0
		for _, tr := range got {
			n += len(tr.Spans)
		}
		if len(got) == want && n == spans {
			return got
		}
		if time.Now().After(deadline) {
			ids := make([]string, 0, len(got))
			for _, tr := range got {
				ids = append(ids, fmt.Sprintf("%s(%d spans)", tr.TraceID, len(tr.Spans)))
			}
			t.Fatalf("jaeger holds %d traces with %d spans of %s, want %d with %d: %v", len(got), n, service, want, spans, ids)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func randomHex(t *testing.T, bytes int) string {
	t.Helper()
	b := make([]byte, bytes)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// getEcho sends a request with headers and returns its status and echo.
func getEcho(t *testing.T, target string, header http.Header) (int, echo) {
	t.Helper()
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("GET %s: %d: %v", target, resp.StatusCode, err)
	}
	return resp.StatusCode, e
}

// sameID compares trace or span ids as hex, whatever their case and leading zeros.
func sameID(a, b string) bool {
	return strings.TrimLeft(strings.ToLower(a), "0") == strings.TrimLeft(strings.ToLower(b), "0")
}

// callerHeader builds the headers by which a caller hands over its trace and span.
type callerHeader func(traceID, spanID string) http.Header

var (
	uberTraceID callerHeader = func(tr, sp string) http.Header {
		return http.Header{"Uber-Trace-Id": {tr + ":" + sp + ":0:1"}}
	}
	b3Multi callerHeader = func(tr, sp string) http.Header {
		return http.Header{"X-B3-Traceid": {tr}, "X-B3-Spanid": {sp}, "X-B3-Sampled": {"1"}}
	}
	b3Single callerHeader = func(tr, sp string) http.Header {
		return http.Header{"B3": {tr + "-" + sp + "-1"}}
	}
	traceparent callerHeader = func(tr, sp string) http.Header {
		return http.Header{"Traceparent": {"00-" + tr + "-" + sp + "-01"}}
	}
)

// TestTracingReachesJaeger runs the real binary against a real Jaeger for every backend: each
// request is one trace in Jaeger, with its server span tagged and its delay as a child span; a
// caller's trace header is continued (and echoed); and the spans of the last request, answered
// just before SIGTERM, are delivered by the flush at shutdown.
func TestTracingReachesJaeger(t *testing.T) {
	j := startJaeger(t)
	tests := []struct {
		backend string
		target  string // the tracing config's keys for the backend
		callers map[string]callerHeader
	}{
		{"jaeger", fmt.Sprintf(`"jaeger": {"agent_addr": %q}`, j.agentUDP),
			map[string]callerHeader{"uber-trace-id": uberTraceID, "B3": b3Multi}},
		{"zipkin", fmt.Sprintf(`"zipkin": {"url": "http://%s/api/v2/spans"}`, j.zipkin),
			map[string]callerHeader{"B3": b3Multi, "b3 single": b3Single}},
		{"otlp", fmt.Sprintf(`"otlp": {"endpoint": %q, "insecure": true}`, j.otlpHTTP),
			map[string]callerHeader{"traceparent": traceparent}},
	}
	for _, tc := range tests {
		t.Run(tc.backend, func(t *testing.T) {
			service := "anyroute-it-" + tc.backend
			p := start(t, fmt.Sprintf(`{
  "tracing": {"backend": %q, "service_name": %q, "sampler": {"type": "const", "param": 1}, %s},
  "routes": [{"name": "work", "match": "/work/*", "delay": "2ms"}, {"name": "boom", "match": "/boom", "status": 503}]
}`, tc.backend, service, tc.target))

			const n = 10
			ours := map[string]bool{} // trace ids the service started
			for i := range n {
				code, e := getEcho(t, p.api+"/work/"+strconv.Itoa(i)+"?secret=1", nil)
				if code != 200 || len(e.TraceID) != 32 || ours[e.TraceID] {
					t.Fatalf("request %d: %d trace_id %q", i, code, e.TraceID)
				}
				ours[e.TraceID] = true
			}
			callers := map[string]string{} // caller's trace id → caller's span id
			for name, header := range tc.callers {
				traceID, spanID := randomHex(t, 16), randomHex(t, 8)
				code, e := getEcho(t, p.api+"/work/continued", header(traceID, spanID))
				if code != 200 || e.TraceID != traceID {
					t.Errorf("%s: %d trace_id %q, want the caller's %s", name, code, e.TraceID, traceID)
				}
				callers[traceID] = spanID
			}
			code, boom := getEcho(t, p.api+"/boom", nil)
			if code != 503 {
				t.Fatalf("/boom: %d", code)
			}
			ours[boom.TraceID] = true
			_, last := getEcho(t, p.api+"/work/last", nil)
			ours[last.TraceID] = true
			p.signal(t, syscall.SIGTERM) // at once: the last spans are still in the reporter
			if code := p.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}

			want := len(ours) + len(callers)
			traces := j.waitTraces(t, service, want, 2*want-1) // server + delay span each, /boom has no delay
			t.Logf("%s: Jaeger holds %d traces of %s (%d started here, %d continued from callers)",
				tc.backend, len(traces), service, len(ours), len(callers))
			for _, tr := range traces {
				checkTrace(t, tr, ours, callers, boom.TraceID)
			}
		})
	}
}

// checkTrace checks one trace from Jaeger: known id, server span tags, delay span under it, and
// for a continued trace the caller's span as the server span's parent.
func checkTrace(t *testing.T, tr jaegerTrace, ours map[string]bool, callers map[string]string, boomID string) {
	t.Helper()
	callerSpan := ""
	for id, sp := range callers {
		if sameID(id, tr.TraceID) {
			callerSpan = sp
		}
	}
	known := callerSpan != ""
	for id := range ours {
		known = known || sameID(id, tr.TraceID)
	}
	if !known {
		t.Errorf("trace %s: not one the test made", tr.TraceID)
		return
	}
	var serverID, delayParent string
	for _, s := range tr.Spans {
		tags := map[string]string{}
		for _, tag := range s.Tags {
			tags[tag.Key] = fmt.Sprint(tag.Value)
		}
		switch strings.ToLower(s.OperationName) { // Zipkin lowercases span names
		case "http get":
			serverID = s.SpanID
			route, status := "work", "200"
			if sameID(tr.TraceID, boomID) {
				route, status = "boom", "503"
				if tags["error"] != "true" {
					t.Errorf("trace %s: a 503 without error=true: %v", tr.TraceID, tags)
				}
			}
			if tags["http.method"] != "GET" || !strings.HasPrefix(tags["http.url"], "/") || strings.Contains(tags["http.url"], "?") ||
				tags["http.status_code"] != status || tags["route"] != route || tags["span.kind"] != "server" {
				t.Errorf("trace %s: server span tags %v", tr.TraceID, tags)
			}
			if callerSpan != "" {
				if len(s.References) != 1 || !sameID(s.References[0].SpanID, callerSpan) {
					t.Errorf("trace %s: server span references %+v, want the caller's span %s", tr.TraceID, s.References, callerSpan)
				}
			} else if len(s.References) != 0 {
				t.Errorf("trace %s: a trace started here has a parent: %+v", tr.TraceID, s.References)
			}
		case "delay":
			if len(s.References) == 1 {
				delayParent = s.References[0].SpanID
			}
			if tags["delay"] != "2ms" {
				t.Errorf("trace %s: delay span tags %v", tr.TraceID, tags)
			}
		default:
			t.Errorf("trace %s: unexpected span %q", tr.TraceID, s.OperationName)
		}
	}
	if serverID == "" || (!sameID(tr.TraceID, boomID) && !sameID(delayParent, serverID)) {
		t.Errorf("trace %s: server span %q, delay span's parent %q", tr.TraceID, serverID, delayParent)
	}
}

// TestTracingBackendDown points every backend at a closed port, and one at a port that never
// answers: requests are answered at the
// speed of an untraced service, the lost spans are counted, the complaints are throttled, and
// shutdown does not wait on the backend.
func TestTracingBackendDown(t *testing.T) {
	closedUDP, closedTCP, stuck := freeUDPAddr(t), freeAddr(t), stuckAddr(t)
	configs := []struct{ name, tracing string }{
		{"none", `{"backend": "none"}`},
		{"jaeger-udp", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"agent_addr": %q}}`, closedUDP)},
		{"jaeger-http", fmt.Sprintf(`{"backend": "jaeger", "jaeger": {"collector_url": "http://%s/api/traces"}}`, closedTCP)},
		{"zipkin", fmt.Sprintf(`{"backend": "zipkin", "zipkin": {"url": "http://%s/api/v2/spans"}}`, closedTCP)},
		{"otlp", fmt.Sprintf(`{"backend": "otlp", "otlp": {"endpoint": %q}}`, closedTCP)},
		// A backend that takes the connection and never answers: sends hang until their timeout.
		{"otlp-stuck", fmt.Sprintf(`{"backend": "otlp", "otlp": {"endpoint": %q}}`, stuck)},
	}
	const n = 200
	var baseline time.Duration
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, `{"tracing": `+c.tracing+`}`)
			took := make([]time.Duration, 0, n)
			for i := range n {
				begin := time.Now()
				code, e := getEcho(t, p.api+"/x/"+strconv.Itoa(i), nil)
				took = append(took, time.Since(begin))
				if code != 200 || (c.name != "none" && e.TraceID == "") {
					t.Fatalf("request %d: %d trace_id %q", i, code, e.TraceID)
				}
			}
			slices.Sort(took)
			median, slowest := took[n/2], took[n-1]
			t.Logf("%s: median %v, slowest %v over %d requests", c.name, median, slowest, n)
			if c.name == "none" {
				baseline = median
				return
			}
			if slowest > time.Second || (baseline > 0 && median > 3*baseline+2*time.Millisecond) {
				t.Errorf("with the backend down: median %v (untraced %v), slowest %v", median, baseline, slowest)
			}

			// A send fails within a report interval or two. Over UDP nothing can tell that the
			// agent is missing (jaeger-client-go redials and sends again), so only an overflowing
			// queue would be counted there.
			deadline := time.Now().Add(15 * time.Second)
			for dropped := droppedSpans(t, p); dropped == 0 && c.name != "jaeger-udp"; dropped = droppedSpans(t, p) {
				if time.Now().After(deadline) {
					t.Fatal("app_tracing_spans_dropped_total stayed 0 with the backend down")
				}
				getEcho(t, p.api+"/more", nil)
				time.Sleep(100 * time.Millisecond)
			}

			begin := time.Now()
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("exit code %d", code)
			}
			if d := time.Since(begin); d > 7*time.Second {
				t.Errorf("shutdown took %v with the backend down", d)
			}
			if w := strings.Count(p.logs.String(), "component=tracing"); w > 5 {
				t.Errorf("%d tracing complaints logged; they should be throttled:\n%s", w, p.logs.String())
			}
		})
	}
}

// stuckAddr is the address of a listener that accepts connections and never answers.
func stuckAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c:
			default:
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

var droppedLine = regexp.MustCompile(`(?m)^app_tracing_spans_dropped_total\{reason="(\w+)"\} (\S+)$`)

// droppedSpans sums app_tracing_spans_dropped_total over its reasons.
func droppedSpans(t *testing.T, p *proc) float64 {
	t.Helper()
	code, body := get(p.admin + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	matches := droppedLine.FindAllStringSubmatch(body, -1)
	if len(matches) != 2 {
		t.Fatalf("app_tracing_spans_dropped_total: want one series per reason, got %q", matches)
	}
	var sum float64
	reasons := make([]string, 0, 2)
	for _, m := range matches {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
		reasons = append(reasons, m[1])
	}
	sort.Strings(reasons)
	if !slices.Equal(reasons, []string{"queue_full", "send_failed"}) {
		t.Fatalf("reasons %v", reasons)
	}
	return sum
}
