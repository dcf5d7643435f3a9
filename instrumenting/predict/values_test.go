package predict

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const chartValues = "../../deployments/helm/anyroute/values.yaml"

func valuesFile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// The chart's defaults and the demo's, merged as helm merges -f files: the later wins key by key,
// lists are replaced.
func TestReadValuesMergesAsHelm(t *testing.T) {
	a, err := ReadValues(chartValues)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != PathAdapter || a.Min != 1 || a.Max != 10 || a.Target != 10000 || a.CPURequest != 50 {
		t.Errorf("defaults: %+v", a)
	}
	if b := a.Behavior; b == nil || b.ScaleDown.Stabilization != 300*time.Second || len(b.ScaleUp.Policies) != 2 || b.ScaleUp.Tolerance != DefaultTolerance {
		t.Errorf("default behavior: %+v", a.Behavior)
	}
	if o := a.Objectives; o.Availability != 0.999 || o.Latency != 0.99 || o.Bound != 500*time.Millisecond {
		t.Errorf("objectives: %+v", o)
	}
	a, err = ReadValues(chartValues, "../../deployments/helm/values-demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a.Max != 5 || a.Target != 5000 || a.Behavior.ScaleDown.Stabilization != 30*time.Second ||
		a.Behavior.ScaleUp.Policies[0] != (Policy{Type: "Pods", Value: 2, Period: 15 * time.Second}) {
		t.Errorf("demo: %+v %+v", a, a.Behavior)
	}
	// null removes a key: scaleDown falls back to the API's default; a tolerance is read.
	f := valuesFile(t, "hpa:\n  behavior:\n    scaleDown: null\n    scaleUp:\n      tolerance: \"0.05\"\n")
	if a, err = ReadValues(chartValues, f); err != nil {
		t.Fatal(err)
	}
	if a.Behavior.ScaleDown.Stabilization != DefaultDownscaleStabilization || a.Behavior.ScaleUp.Tolerance != 0.05 || len(a.Behavior.ScaleUp.Policies) != 2 {
		t.Errorf("null scaleDown, tolerance 0.05: %+v", a.Behavior)
	}
	// KEDA, and a cpu metric.
	f = valuesFile(t, "hpa:\n  enabled: false\n  extraMetrics:\n    - type: Resource\n      resource:\n        name: cpu\n        target: {type: Utilization, averageUtilization: 60}\nkeda:\n  enabled: true\n  rateWindow: 1m\n")
	if a, err = ReadValues(chartValues, f); err != nil {
		t.Fatal(err)
	}
	if a.Path != PathKEDA || a.KEDARateWindow != time.Minute || a.CPUTarget != 60 {
		t.Errorf("keda with cpu: %+v", a)
	}
	// The request-rate metric off: the cpu metric alone, no rate target read.
	f = valuesFile(t, "hpa:\n  metric:\n    enabled: false\n    targetAverageValue: null\n  extraMetrics:\n    - type: Resource\n      resource:\n        name: cpu\n        target: {type: Utilization, averageUtilization: 50}\nresources:\n  requests:\n    cpu: 100m\n")
	if a, err = ReadValues(chartValues, f); err != nil {
		t.Fatal(err)
	}
	if a.Path != PathCPU || a.CPUTarget != 50 || a.CPURequest != 100 || a.Target != 0 {
		t.Errorf("cpu only: %+v", a)
	}
}

// Values the chart would refuse, or predict cannot model, are named.
func TestReadValuesRefuses(t *testing.T) {
	for body, want := range map[string]string{
		"keda:\n  enabled: true\n":                                                        "both true",
		"hpa:\n  enabled: false\n":                                                        "nothing scales",
		"hpa:\n  minReplicas: 4\n  maxReplicas: 2\n":                                      "want 1 <= min <= max",
		"hpa:\n  metric:\n    targetAverageValue: \"0\"\n":                                "targetAverageValue",
		"hpa:\n  behavior:\n    scaleUp:\n      selectPolicy: Most\n":                     "selectPolicy",
		"hpa:\n  extraMetrics:\n    - type: External\n":                                   "Resource cpu metric only",
		"hpa:\n  metric:\n    enabled: false\n":                                           "no Resource cpu metric",
		"hpa:\n  enabled: false\n  metric:\n    enabled: false\nkeda:\n  enabled: true\n": "KEDA's trigger is the request rate",
	} {
		_, err := ReadValues(chartValues, valuesFile(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error saying %q", body, err, want)
		}
	}
}

// Stages ramp linearly from the previous target (0 before the first); bad stages are named.
func TestLoadStages(t *testing.T) {
	l, err := ParseLoad([]byte(`{"stages": [{"duration": "10s", "target_rate": 100}, {"duration": "20s", "target_rate": 100}, {"duration": "0s", "target_rate": 40}, {"duration": "10s", "target_rate": 0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[time.Duration]float64{0: 0, 5 * time.Second: 50, 10 * time.Second: 100, 29 * time.Second: 100,
		30 * time.Second: 40, 35 * time.Second: 20, 40 * time.Second: 0, time.Hour: 0} {
		if got := l.RateAt(at); got != want {
			t.Errorf("at %s: %v, want %v", at, got, want)
		}
	}
	for doc, want := range map[string]string{
		`{"stages": []}`: "none given",
		`{"stages": [{"duration": "soon", "target_rate": 1}]}`:       "stages[0]: duration \"soon\"",
		`{"stages": [{"duration": "1s"}]}`:                           "stages[0]: no target_rate",
		`{"stages": [{"duration": "1s", "target_rate": -1}]}`:        "stages[0].target_rate",
		`{"stages": [{"duration": "25h", "target_rate": 1}]}`:        "above the cap of 24h",
		`{"stages": [{"duration": "1s", "target_rate": 1}], "x": 1}`: "unknown field",
	} {
		if _, err := ParseLoad([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error saying %q", doc, err, want)
		}
	}
}
