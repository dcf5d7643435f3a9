package doctor

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestMetricsPathStaysUnderThePodProxy: the exporter link GETs a pod's metrics through the API
// server's pod proxy, with the user's credentials, at the path of a prometheus.io/path annotation
// that anyone who may label a pod writes. A path that climbs out of the proxy (in any encoding) or
// names another host is refused, naming the annotation, and nothing outside the pod is read; a
// path that stays inside is cleaned, as a scrape would clean it.
func TestMetricsPathStaysUnderThePodProxy(t *testing.T) {
	const proxy = "/api/v1/namespaces/demo/pods/anyroute-abc-1:8081/proxy"
	cases := []struct {
		annotation string
		get        string // the GET of the first pod; "" when refused
	}{
		{"", proxy + "/metrics"},
		{"metrics", proxy + "/metrics"},
		{"/metrics/../metrics", proxy + "/metrics"},
		{"/custom/metrics/", proxy + "/custom/metrics/"},
		{"/", proxy + "/"},
		{"..", ""},
		{"../../..", ""},
		{"/../../../../../api/v1/namespaces/demo/secrets", ""},
		{"metrics/../../../../../../api/v1/namespaces/demo/secrets", ""},
		{"%2e%2e/%2e%2e/%2e%2e/%2e%2e/api/v1/namespaces/demo/secrets", ""},
		{"http://169.254.169.254/latest/meta-data", ""},
		{"//evil.example/metrics", ""},
		{"metrics?name[]=secrets", ""},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.annotation), func(t *testing.T) {
			f := newFixture()
			c := f.chain(t)
			for _, obj := range f.store {
				if p, ok := obj.(*corev1.Pod); ok && tc.annotation != "" {
					p.Annotations["prometheus.io/path"] = tc.annotation
				}
			}
			var podGets []string
			raw := c.Cluster.Raw
			c.Cluster.Raw = func(ctx context.Context, p string) ([]byte, error) {
				if strings.Contains(p, "/proxy") || strings.Contains(p, "secrets") || strings.Contains(p, "..") {
					podGets = append(podGets, p)
				}
				return raw(ctx, p)
			}
			r := c.Run(context.Background())
			l := linkOf(r, LinkExporter)
			for _, p := range podGets {
				if !strings.HasPrefix(p, "/api/v1/namespaces/demo/pods/anyroute-abc-") || strings.Contains(p, "..") ||
					strings.Contains(p, "//") || strings.Contains(strings.ToLower(p), "%2e") || strings.Contains(p, "secrets") {
					t.Errorf("GET %s: outside the pod proxy", p)
				}
			}
			if tc.get == "" {
				if l.Status != Fail || !strings.Contains(l.Evidence, fmt.Sprintf("%q", tc.annotation)) || len(podGets) != 0 {
					t.Errorf("exporter %s %q after GETs %v: want a failure naming the annotation, and no GET", l.Status, l.Evidence, podGets)
				}
				return
			}
			if len(podGets) == 0 || podGets[0] != tc.get {
				t.Errorf("GETs %v, want first %s", podGets, tc.get)
			}
		})
	}
}
