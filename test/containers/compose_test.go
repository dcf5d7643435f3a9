//go:build integration

package containers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/test/kit"
)

// Deterministic calls for the frontend of the compose stack (deployments/compose/frontend.json);
// its flaky rule answers 503 at random and is left to siege, and its shop route calls the rest of
// the system, whose payment service has a 2% error mix.
var composeCalls = []call{
	{"GET", "/api/hello", 200, "api"},
	{"POST", "/api/orders?id=1", 200, "api"},
	{"GET", "/slow/work", 200, "slow"},
	{"DELETE", "/anything/else", 200, "other"},
	{"PURGE", "/cache", 200, "other"},
}

// compose runs docker-compose (v1) on the project's compose file under its own project name and
// ports, so it never meets a stack that `make up` started.
type compose struct {
	t       *testing.T
	project string
	file    string
	env     []string
}

func (c *compose) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := kit.Run(ctx, kit.Cmd{Path: "docker-compose", Args: append([]string{"-p", c.project, "-f", c.file}, args...), Env: c.env})
	return r.Output, err
}

func (c *compose) must(timeout time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.run(timeout, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// TestCompose brings up deployments/compose with its load generators (siege, anyroute load) scaled to 0, checks the same three
// facts as TestContainers (answers, the exact count in Prometheus, the traces in Jaeger), then
// starts siege and checks that its load arrives and that the avg_requests rule yields a rate.
// The stack is taken down with its volumes whatever happens.
func TestCompose(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatalf("docker-compose (v1) is required: %v", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	httpPort, adminPort, promPort, jaegerPort := kit.FreePort(t), kit.FreePort(t), kit.FreePort(t), kit.FreePort(t)
	grpcPort := kit.FreePort(t) // published, never used here: only so that it takes no fixed port
	c := &compose{
		t:       t,
		project: "anyroute-it-" + hex.EncodeToString(suffix),
		file:    filepath.Join(repoRoot, "deployments", "compose", "docker-compose.yml"),
		env: []string{
			"ANYROUTE_IMAGE=" + images.anyroute,
			"PROMETHEUS_IMAGE=" + images.prometheus,
			"JAEGER_IMAGE=" + images.jaeger,
			"SIEGE_IMAGE=" + images.siege,
			"ANYROUTE_HTTP_PORT=" + strconv.Itoa(httpPort),
			"ANYROUTE_ADMIN_PORT=" + strconv.Itoa(adminPort),
			"ANYROUTE_GRPC_PORT=" + strconv.Itoa(grpcPort),
			"PROMETHEUS_PORT=" + strconv.Itoa(promPort),
			"JAEGER_UI_PORT=" + strconv.Itoa(jaegerPort),
			"SIEGE_CONCURRENCY=2",
			"SIEGE_TIME=1M",
		},
	}
	// Registered before `up`, so a stack that came up halfway is taken down too.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(time.Minute, "logs", "--no-color", "--tail=40")
			t.Logf("--- compose logs (tail) ---\n%s", out)
		}
		if out, err := c.run(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down: %v", err)
		} else {
			t.Logf("compose down: %s", strings.TrimSpace(out))
		}
	})
	c.must(3*time.Minute, "up", "-d", "--scale", "siege=0", "--scale", "load=0")

	services := []string{"frontend", "checkout", "inventory", "payment"}
	for _, name := range services {
		id := strings.TrimSpace(c.must(time.Minute, "ps", "-q", name))
		if id == "" {
			t.Fatalf("compose started no %s container", name)
		}
		waitHealthy(t, id, 60*time.Second)
		if ro := inspectField(t, id, "{{.HostConfig.ReadonlyRootfs}}"); ro != "true" {
			t.Fatalf("compose's %s runs with ReadonlyRootfs=%s, want true", name, ro)
		}
		if caps := inspectField(t, id, "{{.HostConfig.CapDrop}}"); caps != "[ALL]" {
			t.Fatalf("compose's %s drops capabilities %s, want [ALL]", name, caps)
		}
	}

	api := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	jaegerURL := fmt.Sprintf("http://127.0.0.1:%d", jaegerPort)
	kit.WaitHTTP(t, nil, promURL+"/-/ready", nil, 60*time.Second)
	kit.WaitHTTP(t, nil, jaegerURL+"/api/services", nil, 60*time.Second)
	prom := kit.NewPromT(t, promURL)
	prom.WaitEquals(t, `sum(up{job="anyroute"})`, float64(len(services)), 30*time.Second) // 5 s scrape interval
	waitAlertsEvaluated(t, prom, filepath.Join(repoRoot, "deployments", "compose", "prometheus-alerts.yml"))
	// Grafana is on request only (profile grafana): `up` without the profile leaves it out, so no
	// grafana/grafana pull is ever attempted here.
	if id := strings.TrimSpace(c.must(time.Minute, "ps", "-q", "grafana")); id != "" {
		t.Fatalf("compose started grafana (%s) without its profile", id)
	}

	const rounds = 4
	traceIDs := sendTraffic(t, api, composeCalls, rounds)
	// The shop: each request crosses the four services; payment's error mix may fail one (503).
	const shopping = 10
	shopIDs := map[string]bool{}
	for i := range shopping {
		code, e := kit.Echo(t, "GET", fmt.Sprintf("%s/shop/cart-%d", api, i), nil)
		if (code != 200 && code != 503) || e.Route != "shop" || len(e.Calls) != 1 || !traceIDPattern.MatchString(e.TraceID) {
			t.Fatalf("/shop/cart-%d: %d %+v", i, code, e)
		}
		shopIDs[strings.TrimLeft(e.TraceID, "0")] = true
		traceIDs = append(traceIDs, e.TraceID)
	}
	sent := float64(len(traceIDs))
	t.Logf("sent %d requests to %s", len(traceIDs), api)
	prom.WaitEquals(t, `sum(app_requests_total{instance="frontend:8081"})`, sent, 30*time.Second)
	prom.WaitEquals(t, `sum(app_requests_total{route="slow"})`, rounds, 10*time.Second)
	for _, hop := range []string{"checkout", "inventory", "payment"} {
		prom.WaitEquals(t, fmt.Sprintf(`sum(app_requests_total{instance="%s:8081"})`, hop), shopping, 10*time.Second)
	}
	// Every shop trace holds spans of all four services, child under parent across them.
	traces := waitJaegerTraces(t, jaegerURL, "frontend", traceIDs, 30*time.Second)
	for id := range shopIDs {
		tr := traces[id]
		seen := map[string]bool{}
		for _, s := range tr.Spans {
			seen[tr.Service(s)] = true
			if len(s.References) == 0 && tr.Service(s) != "frontend" {
				t.Errorf("trace %s: a root span %q of %s: the trace broke at a hop", id, s.OperationName, tr.Service(s))
			}
		}
		if len(seen) != len(services) {
			t.Errorf("trace %s: spans of %v, want all of %v", id, seen, services)
		}
	}

	// Now siege's load: the count grows past what the test sent, and the recording rule docs/deployment.md
	// points at (avg_requests) has a rate.
	c.must(3*time.Minute, "up", "-d", "siege")
	got := prom.WaitValue(t, `sum(app_requests_total{instance="frontend:8081"})`, 60*time.Second, fmt.Sprintf("above %g (siege's load)", sent),
		func(v float64) bool { return v > sent }, nil)
	t.Logf("with siege: sum(app_requests_total) = %g", got)
	rate := prom.WaitValue(t, `sum(avg_requests)`, 60*time.Second, "above 0",
		func(v float64) bool { return v > 0 }, nil)
	t.Logf("avg_requests = %.2f requests/s", rate)
}

func inspectField(t *testing.T, id, format string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", format, id).CombinedOutput()
	if err != nil {
		t.Fatalf("docker inspect %s: %v: %s", id, err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitHealthy waits until the container's HEALTHCHECK reports healthy.
func waitHealthy(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	kit.WaitUntil(t, timeout, "container "+id+" to be healthy", func() (bool, string, error) {
		status := inspectField(t, id, "{{if .State.Health}}{{.State.Health.Status}}{{else}}no healthcheck{{end}}")
		if status == "no healthcheck" {
			return false, "", fmt.Errorf("container %s has no health check", id)
		}
		return status == "healthy", status, nil
	})
}

// waitAlertsEvaluated waits until Prometheus has loaded every alert of the rules file and
// evaluated each without error: the file is mounted where prometheus.yml's rule_files looks.
func waitAlertsEvaluated(t *testing.T, prom *kit.Prom, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	want := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			want[r.Alert] = true
		}
	}
	kit.WaitUntil(t, 30*time.Second, fmt.Sprintf("Prometheus to evaluate the %d alerts of %s", len(want), filepath.Base(file)), func() (bool, string, error) {
		res, err := prom.API.Rules(context.Background(), nil)
		if err != nil {
			return false, err.Error(), nil
		}
		health := map[string]string{}
		for _, g := range res.Groups {
			for _, r := range g.Rules {
				if a, ok := r.(promv1.AlertingRule); ok {
					health[a.Name] = string(a.Health)
					if a.Health == promv1.RuleHealthBad {
						return false, "", fmt.Errorf("alert %s: %s", a.Name, a.LastError)
					}
				}
			}
		}
		for name := range want {
			if health[name] != string(promv1.RuleHealthGood) {
				return false, fmt.Sprintf("%v", health), nil
			}
		}
		return true, "", nil
	})
	t.Logf("Prometheus evaluates the %d alerts of %s", len(want), filepath.Base(file))
}
