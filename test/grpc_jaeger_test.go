//go:build external

package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestGRPCChainIsOneTrace runs HTTP → gRPC → HTTP across three anyroute processes, for each
// tracing backend: front answers HTTP and calls mid's gRPC listener (grpc://), whose route calls
// back over HTTP. Every trace front started holds, in a real Jaeger, the five spans of the three
// processes linked parent to child (front's server span → "call mid" → mid's gRPC server span →
// "call back" → back's server span), and every hop counted exactly what its client saw.
func TestGRPCChainIsOneTrace(t *testing.T) {
	j := kit.StartJaeger(t)
	for _, backend := range chainBackends(j) {
		t.Run(backend.name, func(t *testing.T) {
			service := func(name string) string { return "grpcchain-" + backend.name + "-" + name }
			config := func(name, routes string) string {
				return backend.config(`"metrics": {"flush_interval": "200ms"}, `, service(name), routes)
			}
			back := start(t, config("back", `{"name": "items", "match": "/items/*"}`))
			mid := startGRPC(t, config("mid", fmt.Sprintf(`{"name": "relay", "match": "/chain.Mid/*", "calls": [{"name": "back", "url": "%s/items/x"}]}`, back.api)))
			front := start(t, config("front", fmt.Sprintf(`{"name": "shop", "match": "/shop/*", "calls": [{"name": "mid", "url": "grpc://%s/chain.Mid/Relay"}]}`, mid.grpcAddr)))

			const n = 10
			ours := sendChained(t, front.api+"/shop", n)
			for _, tr := range waitForChains(t, j, service("front"), 5, ours) {
				checkParents(t, tr, map[string]string{
					service("front") + " http get": "",
					service("front") + " call mid": service("front") + " http get",
					service("mid") + " grpc":       service("front") + " call mid",
					service("mid") + " call back":  service("mid") + " grpc",
					service("back") + " http get":  service("mid") + " call back",
				})
			}
			for _, hop := range []struct {
				p      *proc
				method string
			}{{front, "GET"}, {mid.proc, "GRPC"}, {back, "GET"}} {
				kit.WaitFor(t, 5*time.Second, "every request counted on every hop", func() bool {
					return hop.p.metrics(t).Sum("app_requests_total", "method", hop.method, "code", "200") == n
				})
			}
			for _, c := range []struct {
				p           *proc
				route, call string
			}{{front, "shop", "mid"}, {mid.proc, "relay", "back"}} {
				kit.WaitFor(t, 5*time.Second, fmt.Sprintf("%s's calls to %s counted", c.route, c.call), func() bool {
					return c.p.metrics(t).Sum("app_upstream_requests_total", "route", c.route, "call", c.call, "code", "200") == n
				})
			}
		})
	}
}
