package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestLinksOfEachPath: the table gives each path its links in chain order, apiservice at its
// place on each.
func TestLinksOfEachPath(t *testing.T) {
	for path, want := range map[string][]string{
		PathAdapter: {LinkRelease, LinkPods, LinkExporter, LinkPrometheus, LinkAPIService, LinkAdapterRule, LinkRelist, LinkCustomMetric, LinkHPA},
		PathKEDA:    {LinkRelease, LinkPods, LinkExporter, LinkPrometheus, LinkKEDAQuery, LinkAPIService, LinkScaledObject, LinkExternalMetric, LinkHPA},
	} {
		f := newFixture()
		if path == PathKEDA {
			f = kedaFixture()
		}
		r := run(t, f)
		var got []string
		for _, l := range r.Links {
			got = append(got, l.Name)
		}
		if r.Path != path || !slices.Equal(got, want) {
			t.Errorf("%s path: %s walked %v, want %v", path, r.Path, got, want)
		}
	}
}

// TestSkippedLinksSayWhatIsMissing: a link whose need an earlier link could not meet is skipped,
// its evidence naming what is missing, and the walk goes on.
func TestSkippedLinksSayWhatIsMissing(t *testing.T) {
	f := newFixture()
	c := f.chain(t)
	for _, obj := range f.store {
		if p, ok := obj.(*corev1.Pod); ok {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		}
	}
	c.PrometheusURL = "" // and the adapter names none
	r := c.Run(context.Background())
	for name, want := range map[string]string{LinkExporter: "no Ready pod", LinkAdapterRule: "no Prometheus", LinkRelist: "no Prometheus"} {
		if l := linkOf(r, name); l.Status != Skip || l.Evidence != want {
			t.Errorf("%s: %s %q, want skip %q", name, l.Status, l.Evidence, want)
		}
	}
	if r.FirstBroken != LinkPods || linkOf(r, LinkHPA).Name == "" {
		t.Errorf("first broken %q; links %v: want pods, and the walk to reach hpa", r.FirstBroken, r.Links)
	}
}

// TestAPIServiceIsReadOnce: the adapter's discovery and the apiservice link share one GET.
func TestAPIServiceIsReadOnce(t *testing.T) {
	c := newFixture().chain(t)
	raw, reads := c.Cluster.Raw, 0
	c.Cluster.Raw = func(ctx context.Context, p string) ([]byte, error) {
		if strings.HasPrefix(p, "/apis/apiregistration.k8s.io/") {
			reads++
		}
		return raw(ctx, p)
	}
	if r := c.Run(context.Background()); !r.Healthy || reads != 1 {
		t.Errorf("healthy %v; the APIService read %d times, want once", r.Healthy, reads)
	}
}

// TestLinkTable: every link has a check, and the two paths share no link but apiservice and the
// common ones, so no path walks a link twice.
func TestLinkTable(t *testing.T) {
	seen := map[string]int{}
	for _, l := range chainLinks {
		if l.check == nil {
			t.Errorf("%s has no check", l.name)
		}
		seen[fmt.Sprint(l.name, "/", l.path)]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("%s declared %d times", k, n)
		}
	}
}
