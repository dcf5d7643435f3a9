//go:build external

package test

import (
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
	for _, backend := range chainBackends(j) {
		t.Run(backend.name, func(t *testing.T) {
			service := func(name string) string { return "sys-" + backend.name + "-" + name }
			config := func(name, routes string) string { return backend.config("", service(name), routes) }
			inventory := start(t, config("inventory", `{"name": "items", "match": "/items/*"}`))
			payment := start(t, config("payment", `{"name": "pay", "match": "/pay/*", "methods": ["POST"], "delay": "2ms"}`))
			checkout := start(t, config("checkout", fmt.Sprintf(`{"name": "checkout", "match": "/checkout/*", "call_mode": "parallel", "calls": [
  {"name": "inventory", "url": "%s/items/{path}"}, {"name": "payment", "url": "%s/pay/{path}", "method": "POST"}]}`, inventory.api, payment.api)))
			frontend := start(t, config("frontend", fmt.Sprintf(`{"name": "shop", "match": "/shop/*", "calls": [{"name": "checkout", "url": "%s/checkout/{path}"}]}`, checkout.api)))

			const n = 10
			ours := sendChained(t, frontend.api+"/shop", n)
			for _, tr := range waitForChains(t, j, service("frontend"), 8, ours) {
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
	checkParents(t, tr, map[string]string{
		service("frontend") + " http get":       "",
		service("frontend") + " call checkout":  service("frontend") + " http get",
		service("checkout") + " http get":       service("frontend") + " call checkout",
		service("checkout") + " call inventory": service("checkout") + " http get",
		service("checkout") + " call payment":   service("checkout") + " http get",
		service("inventory") + " http get":      service("checkout") + " call inventory",
		service("payment") + " http post":       service("checkout") + " call payment",
		service("payment") + " delay":           service("payment") + " http post",
	})
	for _, s := range tr.Spans {
		key := spanKey(tr, s)
		if tags := s.TagMap(); strings.HasPrefix(key, service("checkout")+" call") && (tags["span.kind"] != "client" || tags["http.status_code"] != "200") {
			t.Errorf("trace %s: client span %q tags %v", tr.TraceID, key, tags)
		}
	}
}
