package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
	rowAt := func(at time.Time) (predict.Row, bool) {
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
	return func(q string, at time.Time) (float64, bool) {
		r, ok := rowAt(at)
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
