//go:build external

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestSystemTracesSpanEveryHop runs a system of four anyroute services, for each tracing backend:
// frontend calls checkout, which calls inventory and payment in parallel. Every trace the frontend
// started holds, in a real Jaeger, the spans of all four services linked parent to child across
// the processes (server span → client span "call X" → the upstream's server span), and every
// hop counted every request.
func TestSystemTracesSpanEveryHop(t *testing.T) {
	j := kit.StartJaeger(t)
	for _, backend := range []struct{ name, target string }{
		{"jaeger", fmt.Sprintf(`"jaeger": {"agent_addr": %q}`, j.AgentUDP)},
		{"zipkin", fmt.Sprintf(`"zipkin": {"url": "http://%s/api/v2/spans"}`, j.Zipkin)},
		{"otlp", fmt.Sprintf(`"otlp": {"endpoint": %q}`, j.OTLPHTTP)},
	} {
		t.Run(backend.name, func(t *testing.T) {
			service := func(name string) string { return "sys-" + backend.name + "-" + name }
			config := func(name, routes string) string {
				return fmt.Sprintf(`{"tracing": {"backend": %q, "service_name": %q, "sampler": {"type": "const", "param": 1}, %s}, "routes": [%s]}`,
					backend.name, service(name), backend.target, routes)
			}
			inventory := start(t, config("inventory", `{"name": "items", "match": "/items/*"}`))
			payment := start(t, config("payment", `{"name": "pay", "match": "/pay/*", "methods": ["POST"], "delay": "2ms"}`))
			checkout := start(t, config("checkout", fmt.Sprintf(`{"name": "checkout", "match": "/checkout/*", "call_mode": "parallel", "calls": [
  {"name": "inventory", "url": "%s/items/{path}"}, {"name": "payment", "url": "%s/pay/{path}", "method": "POST"}]}`, inventory.api, payment.api)))
			frontend := start(t, config("frontend", fmt.Sprintf(`{"name": "shop", "match": "/shop/*", "calls": [{"name": "checkout", "url": "%s/checkout/{path}"}]}`, checkout.api)))

			const n = 10
			ours := map[string]bool{}
			for i := range n {
				code, e := kit.Echo(t, "GET", fmt.Sprintf("%s/shop/%d", frontend.api, i), nil)
				if code != 200 || len(e.TraceID) != 32 || len(e.Calls) != 1 || e.Calls[0].Status != 200 {
					t.Fatalf("request %d: %d %+v", i, code, e)
				}
				ours[e.TraceID] = true
			}
			var traces []kit.Trace
			kit.WaitUntil(t, 30*time.Second, "Jaeger to hold the 10 traces with 8 spans each", func() (bool, string, error) {
				var err error
				if traces, err = j.Traces(context.Background(), service("frontend")); err != nil {
					return false, "", err
				}
				complete := 0
				for _, tr := range traces {
					if len(tr.Spans) == 8 {
						complete++
					}
				}
				return len(traces) == n && complete == n, fmt.Sprintf("%d traces, %d with 8 spans", len(traces), complete), nil
			})
			for _, tr := range traces {
				if !ours[strings.TrimLeft(tr.TraceID, "0")] && !ours[tr.TraceID] {
					t.Errorf("trace %s: not one the frontend echoed", tr.TraceID)
				}
				checkTree(t, tr, service)
			}
			for _, p := range []*proc{frontend, checkout, inventory, payment} {
				kit.WaitFor(t, 5*time.Second, "every request counted on every hop", func() bool {
					return p.metrics(t).Sum("app_requests_total", "code", "200") == n
				})
			}
			// And every call, on the side that made it.
			for _, c := range []struct {
				p           *proc
				route, call string
			}{{frontend, "shop", "checkout"}, {checkout, "checkout", "inventory"}, {checkout, "checkout", "payment"}} {
				kit.WaitFor(t, 5*time.Second, fmt.Sprintf("%s's calls to %s counted", c.route, c.call), func() bool {
					m := c.p.metrics(t)
					return m.Sum("app_upstream_requests_total", "route", c.route, "call", c.call, "code", "200") == n &&
						m.HistogramCount("app_upstream_request_duration_seconds", "route", c.route, "call", c.call) == n
				})
			}
		})
	}
}

// checkTree checks one trace's spans: which service made each, and that each has the parent it
// should: the frontend's server span is the root; a client span "call X" is the child of its
// service's server span; an upstream's server span is the child of the client span that called it.
func checkTree(t *testing.T, tr kit.Trace, service func(string) string) {
	t.Helper()
	byID := map[string]kit.Span{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
	}
	parent := func(s kit.Span) (kit.Span, bool) {
		if len(s.References) == 0 {
			return kit.Span{}, false
		}
		p, ok := byID[s.References[0].SpanID]
		return p, ok
	}
	// span (service, operation) → its parent's (service, operation); "" for the root.
	want := map[string]string{
		service("frontend") + " http get":       "",
		service("frontend") + " call checkout":  service("frontend") + " http get",
		service("checkout") + " http get":       service("frontend") + " call checkout",
		service("checkout") + " call inventory": service("checkout") + " http get",
		service("checkout") + " call payment":   service("checkout") + " http get",
		service("inventory") + " http get":      service("checkout") + " call inventory",
		service("payment") + " http post":       service("checkout") + " call payment",
		service("payment") + " delay":           service("payment") + " http post",
	}
	seen := map[string]bool{}
	for _, s := range tr.Spans {
		key := tr.Service(s) + " " + strings.ToLower(s.OperationName) // Zipkin lowercases span names
		wantParent, known := want[key]
		if !known {
			t.Errorf("trace %s: unexpected span %q", tr.TraceID, key)
			continue
		}
		seen[key] = true
		p, hasParent := parent(s)
		got := ""
		if hasParent {
			got = tr.Service(p) + " " + strings.ToLower(p.OperationName)
		}
		if got != wantParent {
			t.Errorf("trace %s: span %q has parent %q, want %q", tr.TraceID, key, got, wantParent)
		}
		if tags := s.TagMap(); strings.HasPrefix(key, service("checkout")+" call") && (tags["span.kind"] != "client" || tags["http.status_code"] != "200") {
			t.Errorf("trace %s: client span %q tags %v", tr.TraceID, key, tags)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("trace %s: spans %v, want one of each of %d", tr.TraceID, seen, len(want))
	}
}
