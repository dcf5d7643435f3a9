package doctor

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestPrometheusURLStaysUnderTheServiceProxy: an in-cluster Prometheus URL may come from the
// cluster (the adapter's --prometheus-url, a ScaledObject's serverAddress), and the doctor asks it
// through the API server with the user's credentials: a path that climbs out of the service proxy
// is refused before anything is asked; one that stays inside is cleaned.
func TestPrometheusURLStaysUnderTheServiceProxy(t *testing.T) {
	for raw, want := range map[string]string{
		"http://prometheus-server.default.svc/../../../../api/v1/namespaces/kube-system/secrets": "",
		"http://prom.monitoring.svc/%2e%2e/%2e%2e/%2e%2e/api/v1/secrets":                         "",
		"http://prom.monitoring.svc/..":                                                          "",
		"http://prom.monitoring.svc/prom/../other/":                                              "/api/v1/namespaces/monitoring/services/http:prom:80/proxy/other/api/v1/query?query=up",
	} {
		var asked []string
		cluster := Cluster{Raw: func(_ context.Context, p string) ([]byte, error) { asked = append(asked, p); return []byte("{}"), nil }}
		_, err := PrometheusGetter(cluster, http.DefaultClient)(raw)(context.Background(), "/api/v1/query?query=up")
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "leaves the service proxy") || len(asked) > 0 {
				t.Errorf("%s: error %v after asking %v; want it refused, nothing asked", raw, err, asked)
			}
			continue
		}
		if err != nil || len(asked) != 1 || asked[0] != want {
			t.Errorf("%s: asked %v (%v), want %s", raw, asked, err, want)
		}
	}
}
