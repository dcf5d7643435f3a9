package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// JaegerQuery is a client of a Jaeger query API (the /api/traces the UI reads).
type JaegerQuery struct {
	URL string // http://host:port
}

// Trace is a trace as Jaeger's query API returns it.
type Trace struct {
	TraceID   string `json:"traceID"`
	Spans     []Span `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// Service returns the name of the service that recorded span.
func (tr Trace) Service(span Span) string { return tr.Processes[span.ProcessID].ServiceName }

// Span is one span of a Trace.
type Span struct {
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
}

// TagMap returns the span's tags, their values printed.
func (s Span) TagMap() map[string]string {
	tags := make(map[string]string, len(s.Tags))
	for _, tag := range s.Tags {
		tags[tag.Key] = fmt.Sprint(tag.Value)
	}
	return tags
}

// Traces returns the traces Jaeger holds of a service from the last hour; none (and no error)
// while it has seen no span of the service.
func (j JaegerQuery) Traces(ctx context.Context, service string) ([]Trace, error) {
	u := j.URL + "/api/traces?limit=10000&lookback=1h&service=" + url.QueryEscape(service)
	code, body := Do(ctx, http.MethodGet, u, nil, nil)
	switch code {
	case http.StatusOK:
	case http.StatusNotFound: // "service not found"
		return nil, nil
	default:
		return nil, fmt.Errorf("jaeger query: %d %.300s", code, body)
	}
	var resp struct{ Data []Trace }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, fmt.Errorf("jaeger query: %w: %.300s", err, body)
	}
	return resp.Data, nil
}

// HasTrace reports whether Jaeger holds a trace of the id, with spans.
func (j JaegerQuery) HasTrace(ctx context.Context, traceID string) (bool, error) {
	code, body := Do(ctx, http.MethodGet, j.URL+"/api/traces/"+url.PathEscape(traceID), nil, nil)
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		return false, fmt.Errorf("jaeger trace %s: %d %.300s", traceID, code, body)
	}
	var resp struct{ Data []Trace }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return false, fmt.Errorf("jaeger trace %s: %w", traceID, err)
	}
	return len(resp.Data) == 1 && len(resp.Data[0].Spans) > 0, nil
}

// Jaeger is a real Jaeger v2 (all-in-one, in-memory storage) that a test runs from the binary
// scripts/tools.sh builds, with the project's config and every listener moved to a free
// loopback port.
type Jaeger struct {
	JaegerQuery        // its query API
	AgentUDP    string // jaeger-client-go's UDP agent protocol (thrift compact)
	Zipkin      string // host:port of Zipkin v2 over HTTP
	OTLPHTTP    string // host:port of OTLP over HTTP
	Proc        *Proc
}

// StartJaeger runs Jaeger and waits until its health check and query API answer.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin := ProjectTool(t, "jaeger")
	config := RepoPath(t, "scripts", "jaeger-config.yaml")
	health := FreeAddr(t)
	endpoints := map[string]string{ // config key → address; every listener of the config moves
		"extensions.jaeger_query.http.endpoint":              FreeAddr(t),
		"extensions.jaeger_query.grpc.endpoint":              FreeAddr(t),
		"extensions.remote_sampling.http.endpoint":           FreeAddr(t),
		"extensions.remote_sampling.grpc.endpoint":           FreeAddr(t),
		"extensions.healthcheckv2.http.endpoint":             health,
		"extensions.healthcheckv2.grpc.endpoint":             FreeAddr(t),
		"receivers.otlp.protocols.grpc.endpoint":             FreeAddr(t),
		"receivers.otlp.protocols.http.endpoint":             FreeAddr(t),
		"receivers.jaeger.protocols.grpc.endpoint":           FreeAddr(t),
		"receivers.jaeger.protocols.thrift_http.endpoint":    FreeAddr(t),
		"receivers.jaeger.protocols.thrift_binary.endpoint":  FreeUDPAddr(t),
		"receivers.jaeger.protocols.thrift_compact.endpoint": FreeUDPAddr(t),
		"receivers.zipkin.endpoint":                          FreeAddr(t),
	}
	// Jaeger's own metrics listener (8888) is an array entry --set cannot reach: turn it off.
	args := []string{"--config", "file:" + config, "--set=service.telemetry.metrics.level=none"}
	for key, addr := range endpoints {
		args = append(args, "--set="+key+"="+addr)
	}
	j := &Jaeger{
		JaegerQuery: JaegerQuery{URL: "http://" + endpoints["extensions.jaeger_query.http.endpoint"]},
		AgentUDP:    endpoints["receivers.jaeger.protocols.thrift_compact.endpoint"],
		Zipkin:      endpoints["receivers.zipkin.endpoint"],
		OTLPHTTP:    endpoints["receivers.otlp.protocols.http.endpoint"],
	}
	j.Proc = StartT(t, Cmd{Name: "jaeger", Path: bin, Args: args, Env: []string{"JAEGER_LISTEN_HOST=127.0.0.1"},
		Grace: 10 * time.Second})
	WaitHTTP(t, j.Proc, "http://"+health+"/status", nil, 60*time.Second)
	WaitHTTP(t, j.Proc, j.URL+"/api/services", nil, 60*time.Second)
	return j
}
