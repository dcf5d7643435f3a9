package predict

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The command: bad usage and bad inputs exit 2 with a line naming what was wrong; -o json is
// every sync, and two runs print the same bytes.
func TestRun(t *testing.T) {
	t.Chdir("../..")
	load := filepath.Join(t.TempDir(), "load.json")
	if err := os.WriteFile(load, []byte(`{"stages": [{"duration": "1m", "target_rate": 30}, {"duration": "4m", "target_rate": 30}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-load", load, "-o", "yaml"}, `-o: "yaml" is none of table, summary, json`},
		{[]string{"-load", load, "extra"}, `arguments ["extra"]: predict takes flags only`},
	} {
		errs.Reset()
		if code := Run(c.args, &out, &errs); code != exitBadUsage || !strings.Contains(errs.String(), c.want) || !strings.Contains(errs.String(), "usage:") {
			t.Errorf("%q: exit %d, %q; want exit 2 saying %q, and the usage", c.args, code, errs.String(), c.want)
		}
	}
	errs.Reset()
	if code := Run([]string{"-f", "deployments/helm/values-demo.yaml"}, &out, &errs); code != exitBadUsage ||
		!strings.Contains(errs.String(), "no load file given, and the values run no anyroute load with stages") {
		t.Errorf("no -load, values-demo (siege): exit %d, %q", code, errs.String())
	}
	errs.Reset()
	if code := Run([]string{"-load", load, "-sync", "0s"}, &out, &errs); code != exitBadUsage || !strings.Contains(errs.String(), "sync period") {
		t.Errorf("-sync 0s: exit %d, %q", code, errs.String())
	}
	run := func() []byte {
		var out, errs bytes.Buffer
		if code := Run([]string{"-f", "deployments/helm/values-demo.yaml", "-load", load, "-o", "json"}, &out, &errs); code != exitOK {
			t.Fatalf("exit %d: %s", code, errs.String())
		}
		return out.Bytes()
	}
	first := run()
	var got struct {
		Path     string `json:"path"`
		Timeline []struct {
			T        float64 `json:"t_seconds"`
			Replicas int     `json:"replicas"`
		} `json:"timeline"`
		Alerts []struct{ Name string } `json:"alerts"`
	}
	if err := json.Unmarshal(first, &got); err != nil {
		t.Fatal(err)
	}
	// 5 minutes of load and 5 after, a sync every 15 s from 0: 41 rows; 30/s at 5 a pod needs 6, max 5.
	if got.Path != "prometheus-adapter" || len(got.Timeline) != 41 || len(got.Alerts) != 4 {
		t.Errorf("json: path %s, %d rows, %d alerts", got.Path, len(got.Timeline), len(got.Alerts))
	}
	top := 0
	for _, r := range got.Timeline {
		top = max(top, r.Replicas)
	}
	if top != 5 {
		t.Errorf("30/s against 5 a pod with max 5: peak %d replicas, want 5", top)
	}
	if !bytes.Equal(first, run()) {
		t.Error("two runs differ")
	}
}

// A cpu target follows the scenario's cost: the incident drill's latency regression burns 20 ms a
// request from 5 minutes (ramped over 2), which at 20 requests/s is 8 times the demo's 50m request:
// the HPA goes to its maximum within the regression, and back to one pod once the error burst
// (whose patch has no cpu) begins at 15 minutes.
func TestCPUFollowsTheScenario(t *testing.T) {
	t.Chdir("../..")
	values := filepath.Join(t.TempDir(), "cpu.yaml")
	if err := os.WriteFile(values, []byte("hpa:\n  metric:\n    targetAverageValue: \"1000\"\n  extraMetrics:\n    - type: Resource\n      resource:\n        name: cpu\n        target: {type: Utilization, averageUtilization: 60}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := parseArgs([]string{"-f", "deployments/helm/values-demo.yaml", "-f", values, "-config", "deployments/predict/incident-drill.json",
		"-load", "deployments/predict/incident-drill-load.json", "-cpu-idle", "1m"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Predict()
	if err != nil {
		t.Fatal(err)
	}
	peak := map[bool]int{} // in the regression, or not
	for _, r := range p.Timeline.Rows {
		in := r.T > 5*time.Minute && r.T <= 15*time.Minute
		if r.T > 17*time.Minute || r.T <= 5*time.Minute || in {
			peak[in] = max(peak[in], r.Replicas)
		}
		if !r.HasCPU && r.T > time.Minute {
			t.Fatalf("no cpu value at %s", r.T)
		}
	}
	if peak[true] != 5 || peak[false] != 1 {
		t.Errorf("replicas: %d at most in the regression (want 5), %d outside it (want 1)", peak[true], peak[false])
	}
}

// Without -load, the values' own load.stages are the load, when they run the chart's anyroute
// load: the same prediction as those stages in a -load file. With load.tool siege they are not
// what runs, and predict asks for -load.
func TestLoadFromTheValues(t *testing.T) {
	t.Chdir("../..")
	dir := t.TempDir()
	const stagesJSON = `[{"duration": "10s", "target_rate": 25}, {"duration": "50s", "target_rate": 25}, {"duration": "0s", "target_rate": 0}]`
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	values := write("load.yaml", "load:\n  enabled: true\n  tool: anyroute\n  stages: "+stagesJSON+"\n")
	siege := write("siege.yaml", "load:\n  tool: siege\n")
	file := write("load.json", `{"stages": `+stagesJSON+"}")
	run := func(args ...string) (string, string, int) {
		var out, errs bytes.Buffer
		code := Run(append([]string{"-f", "deployments/helm/values-demo.yaml", "-o", "json"}, args...), &out, &errs)
		return out.String(), errs.String(), code
	}
	fromValues, errs, code := run("-f", values)
	if code != exitOK {
		t.Fatalf("-f %s without -load: exit %d: %s", values, code, errs)
	}
	fromFile, errs, code := run("-f", values, "-load", file)
	if code != exitOK {
		t.Fatalf("-load %s: exit %d: %s", file, code, errs)
	}
	if fromValues != fromFile {
		t.Errorf("the values' stages predict\n%s\nthe same stages in -load predict\n%s", fromValues, fromFile)
	}
	if !strings.Contains(fromValues, `"rate": 25,`) {
		t.Errorf("the prediction never has the stages' 25 requests/s:\n%s", fromValues)
	}
	if _, errs, code := run("-f", values, "-f", siege); code != exitBadUsage || !strings.Contains(errs, "no load file given") {
		t.Errorf("load.tool siege without -load: exit %d, %q; want exit 2 asking for -load", code, errs)
	}
}
