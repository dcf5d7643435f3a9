//go:build integration

package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// call is one request of the test traffic and the answer its route rule gives.
type call struct {
	method, path string
	status       int
	route        string
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// sendTraffic sends every call rounds times to the API at base and checks each answer: status,
// the JSON echo's method, path and route, and a trace id. It returns the trace ids, one a request.
func sendTraffic(t *testing.T, base string, calls []call, rounds int) []string {
	t.Helper()
	var traceIDs []string
	for range rounds {
		for _, c := range calls {
			req, err := http.NewRequest(c.method, base+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.path, err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, resp.StatusCode, c.status, body)
			}
			var echo struct {
				Method  string `json:"method"`
				Path    string `json:"path"`
				Route   string `json:"route"`
				TraceID string `json:"trace_id"`
			}
			if err := json.Unmarshal(body, &echo); err != nil {
				t.Fatalf("%s %s: answer is not the JSON echo: %v: %s", c.method, c.path, err, body)
			}
			wantPath, _, _ := strings.Cut(c.path, "?")
			if echo.Method != c.method || echo.Path != wantPath || echo.Route != c.route {
				t.Fatalf("%s %s: echo %s, want method %s, path %s, route %s", c.method, c.path, body, c.method, wantPath, c.route)
			}
			if !traceIDPattern.MatchString(echo.TraceID) {
				t.Fatalf("%s %s: trace_id %q is not 32 hex digits (is tracing on?): %s", c.method, c.path, echo.TraceID, body)
			}
			traceIDs = append(traceIDs, echo.TraceID)
		}
	}
	return traceIDs
}

// promQuery runs an instant query and returns the value of its single sample; ok is false when
// the result is empty.
func promQuery(ctx context.Context, base, query string) (value float64, ok bool, err error) {
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := getJSON(ctx, base+"/api/v1/query?query="+url.QueryEscape(query), &out); err != nil {
		return 0, false, err
	}
	if out.Status != "success" {
		return 0, false, fmt.Errorf("query %q: %s", query, out.Error)
	}
	switch len(out.Data.Result) {
	case 0:
		return 0, false, nil
	case 1:
	default:
		return 0, false, fmt.Errorf("query %q: %d samples, want one", query, len(out.Data.Result))
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil, err
}

// waitProm polls query until cond holds for its value, and fails at the deadline or, when stop
// holds, at once: a counter that passed its expected value will not come back.
func waitProm(t *testing.T, base, query string, timeout time.Duration, what string, cond, stop func(float64) bool) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		v, ok, err := promQuery(ctx, base, query)
		switch {
		case err != nil:
			last = err.Error()
		case !ok:
			last = "no sample"
		case cond(v):
			return v
		case stop != nil && stop(v):
			t.Fatalf("Prometheus: %s is %g, want %s", query, v, what)
		default:
			last = strconv.FormatFloat(v, 'g', -1, 64)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Prometheus: %s is not %s after %v (last: %s)", query, what, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitPromEquals waits until the query's value is exactly want.
func waitPromEquals(t *testing.T, base, query string, want float64, timeout time.Duration) {
	t.Helper()
	waitProm(t, base, query, timeout, fmt.Sprintf("exactly %g", want),
		func(v float64) bool { return v == want }, func(v float64) bool { return v > want })
}

// jaegerTraces returns the traces Jaeger's query API holds for service: trace id (without leading
// zeros, as jaeger-client-go's 64-bit ids are printed either way) → operation names of its spans.
func jaegerTraces(ctx context.Context, base, service string) (map[string][]string, error) {
	var out struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []struct {
				OperationName string `json:"operationName"`
			} `json:"spans"`
		} `json:"data"`
	}
	u := base + "/api/traces?limit=10000&lookback=1h&service=" + url.QueryEscape(service)
	if err := getJSON(ctx, u, &out); err != nil {
		return nil, err
	}
	traces := map[string][]string{}
	for _, tr := range out.Data {
		var ops []string
		for _, s := range tr.Spans {
			ops = append(ops, s.OperationName)
		}
		sort.Strings(ops)
		traces[strings.TrimLeft(tr.TraceID, "0")] = ops
	}
	return traces, nil
}

// waitJaegerTraces waits until Jaeger holds a trace for each of traceIDs (the ids the echoes
// showed), each with a server span named for its method, and checks that it holds no other
// trace of the service: every request was sampled, and nothing else sent spans.
func waitJaegerTraces(t *testing.T, base string, traceIDs []string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	want := map[string]bool{}
	for _, id := range traceIDs {
		want[strings.TrimLeft(id, "0")] = true
	}
	var last string
	for {
		traces, err := jaegerTraces(ctx, base, "anyroute")
		if err != nil {
			last = err.Error()
		} else {
			found := 0
			for id := range want {
				if _, ok := traces[id]; ok {
					found++
				}
			}
			last = fmt.Sprintf("%d of the %d traces, %d in all", found, len(want), len(traces))
			if found == len(want) {
				if len(traces) != len(want) {
					t.Fatalf("Jaeger: %d traces of service anyroute, want exactly the %d sent", len(traces), len(want))
				}
				for id := range want {
					ops := traces[id]
					if len(ops) == 0 || !strings.HasPrefix(ops[0], "HTTP ") {
						t.Fatalf("Jaeger: trace %s has spans %v, want an HTTP server span", id, ops)
					}
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Jaeger: traces of service anyroute incomplete after %v: %s", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w: %.200s", u, err, body)
	}
	return nil
}

// waitHTTP waits until GET u answers 200.
func waitHTTP(t *testing.T, u string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := httpClient.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not ready after %v: %v", u, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freePort returns a TCP port free on 127.0.0.1 just now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
