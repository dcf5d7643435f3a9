package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/anyroute/anyroute/instrumenting/predict"
)

// queryRange answers a range query from the fixture's ranges, one series of points start, start+step, ….
func (f *fixture) queryRange(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sec := func(name string) time.Time {
		v, _ := strconv.ParseFloat(q.Get(name), 64)
		return time.Unix(0, int64(v*1e9))
	}
	start, end := sec("start"), sec("end")
	step, _ := strconv.ParseFloat(q.Get("step"), 64)
	var values [][2]any
	for at := start; !at.After(end) && f.ranges != nil; at = at.Add(time.Duration(step * float64(time.Second))) {
		if v, ok := f.ranges(q.Get("query"), at); ok {
			values = append(values, [2]any{float64(at.UnixMilli()) / 1000, strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	result := []map[string]any{}
	if len(values) > 0 {
		result = append(result, map[string]any{"metric": map[string]string{}, "values": values})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": result}})
}

// demoPrediction is `anyroute predict` of values-demo under 8 requests/s held 5 minutes: two pods
// at 4 a pod, the fixture HPA's count and (within 20 %) its 3.802.
func demoPrediction(t *testing.T, extra ...string) predict.Prediction {
	t.Helper()
	dir := t.TempDir()
	load := filepath.Join(dir, "load.json")
	if err := os.WriteFile(load, []byte(`{"stages": [{"duration": "1m", "target_rate": 8}, {"duration": "4m", "target_rate": 8}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var in predict.Inputs
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	in.Register(fs, "predict-load")
	args := append([]string{"-chart", "../../deployments/helm/anyroute", "-f", "../../deployments/helm/values-demo.yaml",
		"-adapter", "../../deployments/helm/prometheus-adapter-values.yaml", "-predict-load", load}, extra...)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	p, err := in.Predict()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// liveAsPredicted answers the doctor's range queries, each by its exact PromQL, with the
// prediction's own timeline from t0, the load's rate scaled by loadScale; any other query is
// answered with nothing.
func liveAsPredicted(p predict.Prediction, t0 time.Time, loadScale float64) func(string, time.Time) (float64, bool) {
	pods := `{namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+"}`
	return func(q string, at time.Time) (float64, bool) {
		r, ok := predictedRowAt(p, t0, at)
		switch {
		case !ok:
			return 0, false
		case q == `sum(rate(load_sent_requests_total{namespace="demo"}[60s]))`: // 4 scrapes of 15 s, evaluated 30 s late
			return loadScale * p.Load.RateAt(at.Sub(t0)-30*time.Second), at.Sub(t0) >= 30*time.Second
		case q == "sum(rate(app_requests_total"+pods+"[120s]))":
			return r.Served, true
		case q == "avg(sum(rate(app_requests_total"+pods+"[2m])) by (pod))":
			return r.Metric, r.HasValue
		case q == "sum(up"+pods+")":
			return float64(r.Ready), true
		}
		return 0, false
	}
}

// predictedRowAt is the prediction's row in force at a time: the last sync at or before it.
func predictedRowAt(p predict.Prediction, t0, at time.Time) (predict.Row, bool) {
	var last predict.Row
	found := false
	for _, r := range p.Timeline.Rows {
		if t0.Add(r.T).After(at) {
			break
		}
		last, found = r, true
	}
	return last, found
}

// The walk, then the comparison: the doctor reads the release's timeline with the queries of its
// Deployment's pods, the live adapter rule and the load generator, adds the HPA's status now, and
// says whether it agrees with the prediction, or names the link where it left it; the text and
// the JSON say the same.
func TestChainCompare(t *testing.T) {
	p := demoPrediction(t)
	t0 := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	now := t0.Add(4 * time.Minute)
	for _, c := range []struct {
		name      string
		p         predict.Prediction
		loadScale float64
		link      string // "" agrees
		says      string
	}{
		{"the run as predicted", p, 1, "", "agrees with the prediction"},
		{"the load at half its stages", p, 0.5, "load", "link load: observed 4, predicted 6 to 8"},
		{"a target of 10 in the values, 5 on the cluster", demoPrediction(t, "-f", writeValues(t, "hpa:\n  metric:\n    targetAverageValue: \"10\"\n")), 1, "hpa", "observed target 5, predicted target 10"},
	} {
		f := newFixture()
		f.scrape = "15s"
		f.ranges = liveAsPredicted(p, t0, c.loadScale)
		ch := f.chain(t)
		r := ch.Run(context.Background())
		cmp := ch.Compare(context.Background(), c.p, t0, now, 10*time.Second)
		var text bytes.Buffer
		r.writeText(&text)
		t.Logf("%s:\n%s", c.name, text.String())
		if r.Comparison != cmp || cmp.Error != "" || cmp.RateFrom != loadSeries || cmp.Readings != 25+1 {
			t.Fatalf("%s: %+v", c.name, cmp)
		}
		switch {
		case c.link == "" && !cmp.Agrees:
			t.Errorf("%s: %+v", c.name, cmp.Divergence)
		case c.link != "" && (cmp.Divergence == nil || cmp.Divergence.Link != c.link):
			t.Errorf("%s: %+v, want the %s link", c.name, cmp.Divergence, c.link)
		}
		if !strings.Contains(text.String(), c.says) {
			t.Errorf("%s: the text does not say %q", c.name, c.says)
		}
		var js bytes.Buffer
		if err := r.writeJSON(&js); err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Comparison == nil || back.Comparison.Agrees != cmp.Agrees ||
			(c.link != "" && back.Comparison.Divergence.Link != c.link) {
			t.Errorf("%s: json %s", c.name, js.String())
		}
		if cmp.Diverged() != (c.link != "") {
			t.Errorf("%s: Diverged() %v", c.name, cmp.Diverged())
		}
		// -svg: the prediction with a dot for each link each reading read (every reading reads
		// the load and Prometheus' served rate at least).
		file := filepath.Join(t.TempDir(), "timeline.svg")
		if err := writeSVG(file, c.p, cmp.Observed); err != nil {
			t.Fatal(err)
		}
		pic, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmp.Observed) != cmp.Readings || bytes.Count(pic, []byte(`class="observed"`)) < cmp.Readings {
			t.Errorf("%s: %d readings, %d kept, %d dots in the SVG", c.name, cmp.Readings, len(cmp.Observed), bytes.Count(pic, []byte(`class="observed"`)))
		}
	}
}

// No Prometheus history (the fixture answers no range query): the pods' counter stands in for the
// load generator's, and without it either the load link is not read: a reading diverges, named by
// a link downstream of the load.
func TestChainCompareNoHistory(t *testing.T) {
	p := demoPrediction(t)
	t0 := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	f := newFixture()
	ch := f.chain(t)
	ch.Run(context.Background())
	cmp := ch.Compare(context.Background(), p, t0, t0.Add(4*time.Minute), 10*time.Second)
	if cmp.RateFrom != "app_requests_total" || len(cmp.Notes) != 2 || !strings.Contains(cmp.Notes[1], "a load and a scrape problem look alike") {
		t.Errorf("%+v", cmp)
	}
	if cmp.Divergence == nil || cmp.Divergence.Link == "load" {
		t.Errorf("%+v", cmp.Divergence)
	}
}

func writeValues(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Without -since the comparison starts at the load generator's last start as Prometheus holds it
// (load_start_time_seconds), and says so; without one it says to pass -since.
func TestChainCompareFindsTheStart(t *testing.T) {
	p := demoPrediction(t)
	t0 := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	f := newFixture()
	f.ranges = liveAsPredicted(p, t0, 1)
	f.loadStart = float64(t0.Unix())
	ch := f.chain(t)
	r := ch.Run(context.Background())
	cmp := ch.Compare(context.Background(), p, time.Time{}, t0.Add(4*time.Minute), 10*time.Second)
	var text bytes.Buffer
	r.writeText(&text)
	if !cmp.Since.Equal(t0) || cmp.SinceFrom != loadStart("demo") || !cmp.Agrees || !strings.Contains(text.String(), "from 2026-12-06T11:00:00Z, the load generator's start (T+0)") {
		t.Errorf("%+v\n%s", cmp, text.String())
	}

	f = newFixture()
	ch = f.chain(t)
	ch.Run(context.Background())
	cmp = ch.Compare(context.Background(), p, time.Time{}, t0.Add(4*time.Minute), 10*time.Second)
	if !strings.Contains(cmp.Error, "pass -since") || !cmp.Diverged() {
		t.Errorf("no start: %+v", cmp)
	}
}

// kedaQuery is the kedaFixture's trigger query, the chart's: the Deployment's requests a second.
const kedaQuery = `sum(rate(app_requests_total{namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+"}[2m]))`

// liveOnKEDA answers as liveAsPredicted does, and the KEDA path's metric as Prometheus would: a
// query of the Deployment's total over the pods up, the total being kedaQuery (no value before
// the pods' counter exists, that is before they served a request; the prediction's value after),
// with `or on() vector(0)` 0 where it has none, or the model's own query of the counter over
// window in place of kedaQuery.
func liveOnKEDA(p predict.Prediction, t0 time.Time, window string) func(string, time.Time) (float64, bool) {
	base := liveAsPredicted(p, t0, 1)
	pods := `{namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+"}`
	own := "sum(rate(app_requests_total" + pods + "[" + window + "]))"
	return func(q string, at time.Time) (float64, bool) {
		inner, ok := strings.CutSuffix(q, ") / on() sum(up"+pods+")")
		if !ok || !strings.HasPrefix(inner, "(") {
			return base(q, at)
		}
		inner = inner[1:]
		r, ok := predictedRowAt(p, t0, at)
		if !ok {
			return 0, false
		}
		total, orZero := strings.CutSuffix(inner, " or on() vector(0)")
		switch {
		case total != kedaQuery && total != own:
			return 0, false
		case r.Served > 0:
			return r.Metric, true
		}
		return 0, orZero
	}
}

// The comparison on the KEDA path reads KEDA's metric end to end: the ScaledObject's query over
// the pods up (the External metric the HPA averages over the replicas), 0 where the query answers
// nothing as KEDA's ignoreNullValues reads it, and it names KEDA, not prometheus-adapter, where it
// says what serves the metric. The path is the cluster's: the ScaledObject, else KEDA's HPA (owned
// by a ScaledObject, or on an External metric), never the adapter by default.
func TestChainCompareKEDA(t *testing.T) {
	p := demoPrediction(t, "-f", writeValues(t, "hpa:\n  enabled: false\nkeda:\n  enabled: true\n"))
	if p.Timeline.Path != predict.PathKEDA {
		t.Fatalf("the prediction's path is %s", p.Timeline.Path)
	}
	t0 := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	now := t0.Add(4 * time.Minute)
	soList := "/apis/keda.sh/v1alpha1/namespaces/demo/scaledobjects"
	for _, c := range []struct {
		name   string
		setup  func(f *fixture)
		window string // of the model's query, when the doctor has no ScaledObject to read
		link   string // "" agrees
		says   string // in the text
		query  string // in the metric's query
		note   string // in a note
	}{
		{name: "the ScaledObject's query, 0 before the first request", query: kedaQuery + " or on() vector(0)", says: "agrees with the prediction"},
		{name: "ignoreNullValues false: no value before the first request, as the HPA has none",
			setup: func(f *fixture) {
				f.raw[soList] = strings.Replace(f.raw[soList], `"threshold":"5",`, `"threshold":"5","ignoreNullValues":"false",`, 1)
			},
			link: "metric", query: "(" + kedaQuery + ") / on()", says: "KEDA's metrics server"},
		{name: "a ScaledObject found by the HPA it owns",
			setup: func(f *fixture) {
				f.raw[soList] = strings.Replace(f.raw[soList], `"scaleTargetRef":{"name":"anyroute"}`, `"scaleTargetRef":{"name":"anyroute-v2"}`, 1)
				kedaHPA(f).OwnerReferences = []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "anyroute"}}
			},
			query: kedaQuery + " or on() vector(0)", says: "agrees with the prediction"},
		{name: "no ScaledObject to read, an HPA on an External metric",
			setup:  func(f *fixture) { delete(f.raw, soList) },
			window: "120s", query: "sum(rate(app_requests_total", note: "KEDA", says: "agrees with the prediction"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := kedaFixture()
			ch := f.chain(t)
			if c.setup != nil {
				c.setup(f)
			}
			f.ranges = liveOnKEDA(p, t0, c.window)
			r := ch.Run(context.Background())
			cmp := ch.Compare(context.Background(), p, t0, now, 10*time.Second)
			var text bytes.Buffer
			r.writeText(&text)
			t.Logf("\n%s", text.String())
			if r.Path != PathKEDA || cmp.Error != "" {
				t.Fatalf("path %s; %+v", r.Path, cmp)
			}
			for _, l := range r.Links {
				if l.Name == LinkAdapterRule || l.Name == LinkRelist || l.Name == LinkCustomMetric ||
					strings.Contains(l.Evidence+l.Hint, "adapter") {
					t.Errorf("the KEDA path walked or named the adapter: %+v", l)
				}
			}
			q := cmp.Queries["metric"]
			if !strings.Contains(q, c.query) || strings.Contains(q, "by (pod)") || strings.Contains(q, "avg_requests") {
				t.Errorf("the metric read with %s, want KEDA's, with %s", q, c.query)
			}
			switch {
			case c.link == "" && !cmp.Agrees:
				t.Errorf("%+v", cmp.Divergence)
			case c.link != "" && (cmp.Divergence == nil || cmp.Divergence.Link != c.link || cmp.Divergence.AtSeconds != 0):
				t.Errorf("%+v, want the %s link at T+0", cmp.Divergence, c.link)
			}
			if !strings.Contains(text.String(), c.says) || strings.Contains(text.String(), "adapter") {
				t.Errorf("the text does not say %q, or names the adapter", c.says)
			}
			if c.note != "" && !slices.ContainsFunc(cmp.Notes, func(n string) bool { return strings.Contains(n, c.note) }) {
				t.Errorf("notes %q lack %q", cmp.Notes, c.note)
			}
			var js bytes.Buffer
			if err := r.writeJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back Report
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Path != PathKEDA || back.Comparison == nil || back.Comparison.Queries["metric"] != q {
				t.Errorf("json %s", js.String())
			}
		})
	}
}
