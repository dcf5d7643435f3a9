//go:build integration

package containers

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/anyroute/anyroute/test/kit"
)

// The anyroute config of TestContainers: two rules, tracing to Jaeger's UDP agent on the network.
const stackConfig = `{
  "metrics": {"flush_interval": "1s"},
  "tracing": {
    "backend": "jaeger",
    "sampler": {"type": "const", "param": 1},
    "jaeger": {"agent_addr": "jaeger:6831"}
  },
  "routes": [
    {"name": "create_order", "match": "/orders", "methods": ["POST"], "status": 201},
    {"name": "user", "match": "/users/{id}"}
  ]
}`

// Prometheus scrapes anyroute's admin listener every second.
const stackPrometheus = `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: anyroute
    static_configs:
      - targets: ["anyroute:8081"]
`

var stackCalls = []call{
	{"GET", "/", 200, "other"},
	{"POST", "/orders", 201, "create_order"},
	{"GET", "/users/42", 200, "user"},
	{"PUT", "/users/7?x=1", 200, "user"},
	{"DELETE", "/any/deep/path", 200, "other"},
	{"PATCH", "/metrics", 200, "other"}, // an ordinary route on the API listener
	{"PURGE", "/cache/key", 200, "other"},
}

// TestContainers runs the anyroute image read-only beside Prometheus and Jaeger on a network of
// its own, sends requests of several methods and paths, and checks the answers, that Prometheus
// scraped exactly as many requests as were sent, and that Jaeger holds a trace for each.
func TestContainers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	nw, err := network.New(ctx)
	testcontainers.CleanupNetwork(t, nw)
	if err != nil {
		t.Fatalf("network: %v", err)
	}

	jaeger := start(t, "jaeger", images.jaeger,
		network.WithNetwork([]string{"jaeger"}, nw),
		testcontainers.WithExposedPorts("16686/tcp"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/api/services").WithPort("16686/tcp").
			WithStartupTimeout(60*time.Second)),
	)

	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(stackConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	// A bind mount, not a copied file: the daemon refuses to copy into a read-only root filesystem.
	anyroute := start(t, "anyroute", images.anyroute,
		network.WithNetwork([]string{"anyroute"}, nw),
		testcontainers.WithCmd("-config", "/etc/anyroute/config.json"),
		testcontainers.WithExposedPorts("8080/tcp", "8081/tcp"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.ReadonlyRootfs = true
			hc.CapDrop = []string{"ALL"}
			hc.SecurityOpt = []string{"no-new-privileges:true"}
			hc.Binds = append(hc.Binds, cfg+":/etc/anyroute/config.json:ro")
		}),
		// The image's own HEALTHCHECK (anyroute healthcheck → admin /healthz) must turn healthy.
		testcontainers.WithWaitStrategy(wait.ForHealthCheck().WithStartupTimeout(60*time.Second)),
	)

	prometheus := start(t, "prometheus", images.prometheus,
		network.WithNetwork([]string{"prometheus"}, nw),
		testcontainers.WithExposedPorts("9090/tcp"),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader(stackPrometheus),
			ContainerFilePath: "/etc/prometheus/prometheus.yml",
			FileMode:          0o644,
		}),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/-/ready").WithPort("9090/tcp").
			WithStartupTimeout(60*time.Second)),
	)

	state, err := anyroute.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if state.Health == nil || state.Health.Status != "healthy" {
		t.Fatalf("anyroute container health: %+v, want healthy", state.Health)
	}
	inspect, err := anyroute.Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !inspect.HostConfig.ReadonlyRootfs || len(inspect.HostConfig.CapDrop) != 1 || inspect.HostConfig.CapDrop[0] != "ALL" {
		t.Fatalf("anyroute container: read-only root %v, dropped capabilities %v; want true and [ALL]",
			inspect.HostConfig.ReadonlyRootfs, inspect.HostConfig.CapDrop)
	}

	api := endpoint(t, anyroute, "8080/tcp")
	promURL := endpoint(t, prometheus, "9090/tcp")
	jaegerURL := endpoint(t, jaeger, "16686/tcp")

	// Prometheus must see the target before the count means anything: wait for up == 1.
	prom := kit.NewPromT(t, promURL)
	prom.WaitEquals(t, `up{job="anyroute"}`, 1, 30*time.Second)

	const rounds = 5
	traceIDs := sendTraffic(t, api, stackCalls, rounds)
	sent := float64(len(traceIDs))
	t.Logf("sent %d requests to %s", len(traceIDs), api)

	prom.WaitEquals(t, `sum(app_requests_total)`, sent, 30*time.Second)
	prom.WaitEquals(t, `sum(app_requests_total{route="create_order",method="POST",code="201"})`, rounds, 10*time.Second)
	prom.WaitEquals(t, `sum(app_requests_total{route="user"})`, 2*rounds, 10*time.Second)
	prom.WaitEquals(t, `sum(app_requests_total{method="OTHER"})`, rounds, 10*time.Second)
	waitJaegerTraces(t, jaegerURL, "anyroute", traceIDs, 30*time.Second)
}

// start runs a container, schedules its removal (and, when the test failed, a dump of its log)
// before looking at the error, and fails the test when it did not start.
func start(t *testing.T, name, image string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	opts = append(opts, testcontainers.WithHostConfigModifier(publishOnLoopback))
	ctr, err := testcontainers.Run(context.Background(), image, opts...)
	testcontainers.CleanupContainer(t, ctr)
	if ctr != nil {
		t.Cleanup(func() {
			if t.Failed() {
				dumpLogs(t, name, ctr)
			}
		})
	}
	if err != nil {
		t.Fatalf("%s (%s): %v", name, image, err)
	}
	return ctr
}

// publishOnLoopback publishes every port on 127.0.0.1 only (the daemon's default is every address).
func publishOnLoopback(hc *container.HostConfig) {
	// Runs before testcontainers adds its own bindings for the exposed ports, which keeps these.
	for _, p := range []string{"8080/tcp", "8081/tcp", "9090/tcp", "16686/tcp"} {
		hc.PortBindings = setBinding(hc.PortBindings, p)
	}
}

func setBinding(pm mobynet.PortMap, port string) mobynet.PortMap {
	if pm == nil {
		pm = mobynet.PortMap{}
	}
	pm[mobynet.MustParsePort(port)] = []mobynet.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
	return pm
}

func endpoint(t *testing.T, ctr *testcontainers.DockerContainer, port string) string {
	t.Helper()
	u, err := ctr.PortEndpoint(context.Background(), port, "http")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func dumpLogs(t *testing.T, name string, ctr *testcontainers.DockerContainer) {
	rc, err := ctr.Logs(context.Background())
	if err != nil {
		t.Logf("%s logs: %v", name, err)
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("--- %s logs (tail) ---\n%s", name, b)
}
