package predict

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// Path is how the metric reaches the autoscaler.
type Path string

// The paths the chart can render.
const (
	PathAdapter Path = "prometheus-adapter" // the chart's HPA on the Pods metric avg_requests
	PathKEDA    Path = "keda"               // a ScaledObject: KEDA's HPA on an External metric
	// PathCPU is the chart's HPA with hpa.metric.enabled false: a Resource cpu metric of
	// hpa.extraMetrics alone, read from metrics-server.
	PathCPU Path = "metrics-server"
)

// Autoscaler is what predict reads of the chart's values: the HPA (or the one KEDA makes) and the
// pods it scales.
type Autoscaler struct {
	Path     Path
	Min, Max int
	Behavior *Behavior
	// Metric is the Pods metric's name; Target its AverageValue (per pod), in milli-units.
	Metric string
	Target int64
	// KEDA: the rate window of its query and its polling interval.
	KEDARateWindow time.Duration
	KEDAPolling    time.Duration
	// CPUTarget is a Resource cpu metric of hpa.extraMetrics, as a Utilization percentage (0:
	// none); CPURequest the pods' CPU request in millicores.
	CPUTarget  int64
	CPURequest int64
	// Config is the chart's `config` (anyroute's own), as JSON.
	Config []byte
	// Objectives are prometheusRule's, which the alerts are rendered from.
	Objectives Objectives
	// LoadStages are load.stages, as JSON, when the values run the chart's anyroute load
	// (load.enabled, load.tool anyroute): the schedule its load pod sends, so that a prediction
	// of the release needs no copy of it in a -load file. Nil otherwise.
	LoadStages json.RawMessage
}

// ReadValues merges values files as helm does (later files win; maps merge key by key, lists and
// other values are replaced, null removes a key) and reads the autoscaler they render.
func ReadValues(files ...string) (Autoscaler, error) {
	merged := map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return Autoscaler{}, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return Autoscaler{}, fmt.Errorf("%s: %w", f, err)
		}
		merged = mergeValues(merged, m)
	}
	return autoscalerOf(merged)
}

func mergeValues(dst, src map[string]any) map[string]any {
	out := make(map[string]any, len(dst))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if v == nil {
			delete(out, k)
			continue
		}
		sm, sok := v.(map[string]any)
		dm, dok := out[k].(map[string]any)
		if sok && dok {
			out[k] = mergeValues(dm, sm)
			continue
		}
		out[k] = v
	}
	return out
}

// values is the part of the chart's values predict reads.
type values struct {
	HPA struct {
		Enabled     bool `json:"enabled"`
		MinReplicas int  `json:"minReplicas"`
		MaxReplicas int  `json:"maxReplicas"`
		Metric      struct {
			Enabled            *bool  `json:"enabled"`
			Name               string `json:"name"`
			TargetAverageValue any    `json:"targetAverageValue"`
		} `json:"metric"`
		ExtraMetrics []struct {
			Type     string `json:"type"`
			Resource struct {
				Name   string `json:"name"`
				Target struct {
					Type               string `json:"type"`
					AverageUtilization int64  `json:"averageUtilization"`
				} `json:"target"`
			} `json:"resource"`
		} `json:"extraMetrics"`
		Behavior *struct {
			ScaleUp   *rulesValues `json:"scaleUp"`
			ScaleDown *rulesValues `json:"scaleDown"`
		} `json:"behavior"`
	} `json:"hpa"`
	KEDA struct {
		Enabled         bool   `json:"enabled"`
		RateWindow      string `json:"rateWindow"`
		PollingInterval int    `json:"pollingInterval"`
		Query           string `json:"query"`
	} `json:"keda"`
	Load struct {
		Enabled bool            `json:"enabled"`
		Tool    string          `json:"tool"`
		Stages  json.RawMessage `json:"stages"`
	} `json:"load"`
	Resources struct {
		Requests struct {
			CPU any `json:"cpu"`
		} `json:"requests"`
	} `json:"resources"`
	Config         json.RawMessage `json:"config"`
	PrometheusRule struct {
		Availability float64 `json:"availability"`
		Latency      struct {
			Bound     float64 `json:"bound"`
			Objective float64 `json:"objective"`
		} `json:"latency"`
	} `json:"prometheusRule"`
}

type rulesValues struct {
	StabilizationWindowSeconds *int    `json:"stabilizationWindowSeconds"`
	SelectPolicy               *string `json:"selectPolicy"`
	Policies                   []struct {
		Type          string `json:"type"`
		Value         int    `json:"value"`
		PeriodSeconds int    `json:"periodSeconds"`
	} `json:"policies"`
	Tolerance any `json:"tolerance"`
}

// rules fills a direction's rules over its defaults, as the API server's defaulting does.
func (r *rulesValues) rules(def Rules, where string) (Rules, error) {
	if r == nil {
		return def, nil
	}
	out := def
	if r.StabilizationWindowSeconds != nil {
		out.Stabilization = time.Duration(*r.StabilizationWindowSeconds) * time.Second
	}
	if r.SelectPolicy != nil {
		switch *r.SelectPolicy {
		case "Max", "Min", "Disabled":
			out.SelectPolicy = *r.SelectPolicy
		default:
			return out, fmt.Errorf("%s.selectPolicy: %q is not Max, Min or Disabled", where, *r.SelectPolicy)
		}
	}
	if r.Policies != nil {
		out.Policies = nil
		for i, p := range r.Policies {
			if (p.Type != "Pods" && p.Type != "Percent") || p.Value <= 0 || p.PeriodSeconds <= 0 {
				return out, fmt.Errorf("%s.policies[%d]: want type Pods or Percent, a value and periodSeconds above 0", where, i)
			}
			out.Policies = append(out.Policies, Policy{Type: p.Type, Value: p.Value, Period: time.Duration(p.PeriodSeconds) * time.Second})
		}
	}
	if r.Tolerance != nil {
		q, err := quantity(r.Tolerance)
		if err != nil {
			return out, fmt.Errorf("%s.tolerance: %w", where, err)
		}
		out.Tolerance = q.AsApproximateFloat64()
	}
	return out, nil
}

func quantity(v any) (resource.Quantity, error) {
	switch x := v.(type) {
	case string:
		return resource.ParseQuantity(x)
	case float64:
		return resource.ParseQuantity(fmt.Sprint(x))
	}
	return resource.Quantity{}, fmt.Errorf("%v is not a quantity", v)
}

func autoscalerOf(m map[string]any) (Autoscaler, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return Autoscaler{}, err
	}
	var v values
	if err := json.Unmarshal(b, &v); err != nil {
		return Autoscaler{}, fmt.Errorf("values: %w", err)
	}
	a := Autoscaler{Min: v.HPA.MinReplicas, Max: v.HPA.MaxReplicas, Metric: v.HPA.Metric.Name, Config: v.Config,
		Objectives: Objectives{Availability: v.PrometheusRule.Availability, Latency: v.PrometheusRule.Latency.Objective,
			Bound: time.Duration(math.Round(v.PrometheusRule.Latency.Bound * float64(time.Second)))}}
	if v.Load.Enabled && v.Load.Tool == "anyroute" && len(v.Load.Stages) > 0 && string(v.Load.Stages) != "null" {
		a.LoadStages = v.Load.Stages
	}
	switch {
	case v.HPA.Enabled && v.KEDA.Enabled:
		return a, fmt.Errorf("values: hpa.enabled and keda.enabled are both true; the chart refuses to render that")
	case v.HPA.Enabled && v.HPA.Metric.Enabled != nil && !*v.HPA.Metric.Enabled:
		a.Path = PathCPU
	case v.HPA.Enabled:
		a.Path = PathAdapter
	case v.KEDA.Enabled:
		a.Path = PathKEDA
		if v.HPA.Metric.Enabled != nil && !*v.HPA.Metric.Enabled {
			return a, fmt.Errorf("values: keda.enabled with hpa.metric.enabled false: KEDA's trigger is the request rate; the chart refuses to render that")
		}
		if v.KEDA.Query != "" {
			return a, fmt.Errorf("values: keda.query is set; predict models the chart's own query only (sum(rate(<requests_total>[keda.rateWindow])))")
		}
		if a.KEDARateWindow, err = promDuration(v.KEDA.RateWindow); err != nil {
			return a, fmt.Errorf("values: keda.rateWindow: %w", err)
		}
		a.KEDAPolling = time.Duration(v.KEDA.PollingInterval) * time.Second
	default:
		return a, fmt.Errorf("values: neither hpa.enabled nor keda.enabled: nothing scales the Deployment")
	}
	if a.Min < 1 || a.Max < a.Min {
		return a, fmt.Errorf("values: hpa.minReplicas %d and hpa.maxReplicas %d: want 1 <= min <= max", a.Min, a.Max)
	}
	if a.Path != PathCPU {
		q, err := quantity(v.HPA.Metric.TargetAverageValue)
		if err != nil || q.MilliValue() <= 0 {
			return a, fmt.Errorf("values: hpa.metric.targetAverageValue %v: want a quantity above 0 such as \"5\" or \"500m\"", v.HPA.Metric.TargetAverageValue)
		}
		a.Target = q.MilliValue()
	}
	if v.Resources.Requests.CPU != nil {
		q, err := quantity(v.Resources.Requests.CPU)
		if err != nil {
			return a, fmt.Errorf("values: resources.requests.cpu: %w", err)
		}
		a.CPURequest = q.MilliValue()
	}
	for i, em := range v.HPA.ExtraMetrics {
		if em.Type == "Resource" && em.Resource.Name == "cpu" {
			if em.Resource.Target.Type != "Utilization" || em.Resource.Target.AverageUtilization <= 0 {
				return a, fmt.Errorf("values: hpa.extraMetrics[%d]: predict models a cpu target of type Utilization with averageUtilization", i)
			}
			if a.CPURequest <= 0 {
				return a, fmt.Errorf("values: hpa.extraMetrics[%d]: a cpu Utilization target needs resources.requests.cpu", i)
			}
			a.CPUTarget = em.Resource.Target.AverageUtilization
			continue
		}
		return a, fmt.Errorf("values: hpa.extraMetrics[%d]: predict models a Resource cpu metric only, not %s", i, em.Type)
	}
	if a.Path == PathCPU && a.CPUTarget == 0 {
		return a, fmt.Errorf("values: hpa.metric.enabled is false and hpa.extraMetrics has no Resource cpu metric: the HPA has nothing predict models (the chart refuses an empty one)")
	}
	if bv := v.HPA.Behavior; bv != nil && (bv.ScaleUp != nil || bv.ScaleDown != nil) {
		var b Behavior
		if b.ScaleUp, err = bv.ScaleUp.rules(DefaultScaleUp(), "hpa.behavior.scaleUp"); err != nil {
			return a, fmt.Errorf("values: %w", err)
		}
		if b.ScaleDown, err = bv.ScaleDown.rules(DefaultScaleDown(), "hpa.behavior.scaleDown"); err != nil {
			return a, fmt.Errorf("values: %w", err)
		}
		a.Behavior = &b
	}
	return a, nil
}

var promDurationRE = regexp.MustCompile(`^([0-9]+)(ms|s|m|h|d)$`)

// promDuration reads a Prometheus duration of one unit ("2m", "30s").
func promDuration(s string) (time.Duration, error) {
	m := promDurationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a duration such as 2m", s)
	}
	if m[2] == "d" {
		d, _ := time.ParseDuration(m[1] + "h")
		return 24 * d, nil
	}
	return time.ParseDuration(m[1] + m[2])
}

// AdapterRule is what predict reads of a prometheus-adapter values or rules file: the rate
// window of the avg_requests rule and the re-list interval.
type AdapterRule struct {
	RateWindow time.Duration
	Relist     time.Duration // 0: not in the file
}

var windowRE = regexp.MustCompile(`rate\(<<\.Series>>\{<<\.LabelMatchers>>\}\[([0-9]+(?:ms|s|m|h|d))\]\)`)

// ReadAdapter reads the rule's window from the metricsQuery and metricsRelistInterval, if any.
func ReadAdapter(file string) (AdapterRule, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return AdapterRule{}, err
	}
	var doc struct {
		MetricsRelistInterval string `json:"metricsRelistInterval"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return AdapterRule{}, fmt.Errorf("%s: %w", file, err)
	}
	m := windowRE.FindSubmatch(b)
	if m == nil {
		return AdapterRule{}, fmt.Errorf("%s: no metricsQuery of the form sum(rate(<<.Series>>{<<.LabelMatchers>>}[WINDOW])) by (<<.GroupBy>>)", file)
	}
	var r AdapterRule
	r.RateWindow, _ = promDuration(string(m[1]))
	if doc.MetricsRelistInterval != "" {
		if r.Relist, err = promDuration(doc.MetricsRelistInterval); err != nil {
			return r, fmt.Errorf("%s: metricsRelistInterval: %w", file, err)
		}
	}
	return r, nil
}
