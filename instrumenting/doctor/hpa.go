package doctor

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// checkHPA: the HPA's metric is one the metrics API serves, the controller can read it and scale,
// and its target is within reach of the traffic.
func (c *Chain) checkHPA(ctx context.Context) Link {
	l := Link{Name: LinkHPA}
	h := c.hpa
	if h == nil {
		if c.so != nil {
			return fail(l, fmt.Sprintf("no HPA made by the ScaledObject %s yet (status.hpaName %q)", c.so.Metadata.Name, c.so.Status.HPAName), "KEDA's operator makes it: see its log")
		}
		return fail(l, "no HPA", "")
	}
	if c.path() == PathAdapter {
		if name := podsMetricName(h); name != "" {
			if served, err := c.servedCustomMetrics(ctx); err == nil && !slices.Contains(served, "pods/"+name) {
				list := strings.Join(served, ", ")
				if list == "" {
					list = "no metric"
				}
				return fail(l, fmt.Sprintf("HPA %s asks for the Pods metric %s; the adapter serves %s", h.Name, name, list),
					"the HPA's metric name (hpa.metric.name) must be the adapter rule's name.as")
			}
		}
	}
	conds := map[autoscalingv2.HorizontalPodAutoscalerConditionType]autoscalingv2.HorizontalPodAutoscalerCondition{}
	for _, cond := range h.Status.Conditions {
		conds[cond.Type] = cond
	}
	value := HPAMetricOf(h)
	current, target := value.Show()
	ev := fmt.Sprintf("HPA %s: replicas %d, desired %d (%d..%d); %s against target %s", h.Name, h.Status.CurrentReplicas,
		h.Status.DesiredReplicas, valueOr(h.Spec.MinReplicas, 1), h.Spec.MaxReplicas, current, target)
	for _, t := range []autoscalingv2.HorizontalPodAutoscalerConditionType{autoscalingv2.AbleToScale, autoscalingv2.ScalingActive} {
		cond, ok := conds[t]
		if !ok {
			return fail(l, ev+fmt.Sprintf("; no %s condition yet", t), "the HPA controller has not reconciled it: is kube-controller-manager running?")
		}
		ev += fmt.Sprintf("; %s=%s %s", t, cond.Status, cond.Reason)
		if cond.Status != corev1.ConditionTrue {
			return fail(l, ev+": "+cond.Message, fmt.Sprintf("kubectl -n %s describe hpa %s", c.Namespace, h.Name))
		}
	}
	if !value.Percent && value.HasCurrent && value.Current >= 1 && value.Target >= 10*value.Current {
		return warn(l, ev, fmt.Sprintf("the target is %.0f× the current value: the HPA will not scale out until the traffic grows that much; the target is requests per second per pod",
			value.Target/value.Current))
	}
	return pass(l, ev)
}

// HPAMetric is an HPA's first metric as the HPA sees it: its name, its target and its current
// value (HasCurrent false: none yet, the "<unknown>" of kubectl) as numbers per pod, a Pods
// metric's average, an External metric's AverageValue (or Value), or a Resource metric's
// utilization in percent of the pods' request (Percent). Show has them as kubectl does.
type HPAMetric struct {
	Name            string
	Target, Current float64
	HasTarget       bool
	HasCurrent      bool
	Percent         bool
	// the quantities as the HPA holds them, for Show
	target, current string
}

// HPAMetricOf reads h's first metric (the zero HPAMetric when it has none, Name only for a kind
// of metric the chart does not make).
func HPAMetricOf(h *autoscalingv2.HorizontalPodAutoscaler) HPAMetric {
	var v HPAMetric
	if len(h.Spec.Metrics) == 0 {
		return v
	}
	quantity := func(q *resource.Quantity) (string, float64) { return Quantity(q.String()), q.AsApproximateFloat64() }
	percent := func(p int32) (string, float64) { return fmt.Sprintf("%d%%", p), float64(p) }
	switch m := h.Spec.Metrics[0]; {
	case m.Resource != nil:
		v.Name, v.Percent = string(m.Resource.Name), true
		if p := m.Resource.Target.AverageUtilization; p != nil {
			v.target, v.Target = percent(*p)
			v.HasTarget = true
		}
		for _, cm := range h.Status.CurrentMetrics {
			if cm.Resource != nil && cm.Resource.Name == m.Resource.Name && cm.Resource.Current.AverageUtilization != nil {
				v.current, v.Current = percent(*cm.Resource.Current.AverageUtilization)
				v.HasCurrent = true
			}
		}
	case m.Pods != nil:
		v.Name = m.Pods.Metric.Name
		if q := m.Pods.Target.AverageValue; q != nil {
			v.target, v.Target = quantity(q)
			v.HasTarget = true
		}
		for _, cm := range h.Status.CurrentMetrics {
			if cm.Pods != nil && cm.Pods.Metric.Name == v.Name && cm.Pods.Current.AverageValue != nil {
				v.current, v.Current = quantity(cm.Pods.Current.AverageValue)
				v.HasCurrent = true
			}
		}
	case m.External != nil:
		v.Name = m.External.Metric.Name
		if q := cmp.Or(m.External.Target.AverageValue, m.External.Target.Value); q != nil {
			v.target, v.Target = quantity(q)
			v.HasTarget = true
		}
		for _, cm := range h.Status.CurrentMetrics {
			if cm.External != nil && cm.External.Metric.Name == v.Name {
				if q := cmp.Or(cm.External.Current.AverageValue, cm.External.Current.Value); q != nil {
					v.current, v.Current = quantity(q)
					v.HasCurrent = true
				}
			}
		}
	default:
		v.Name = string(m.Type) + " metric"
	}
	return v
}

// Show is the metric as kubectl shows it: "NAME CURRENT" and the target, "<unknown>" and "?"
// where the HPA has none yet.
func (v HPAMetric) Show() (current, target string) {
	current, target = cmp.Or(v.current, "<unknown>"), cmp.Or(v.target, "?")
	if v.Name != "" {
		current = v.Name + " " + current
	}
	return current, target
}

// kedaMade says whether an HPA is KEDA's: owned by a ScaledObject, or reading External metrics
// (the external metrics API, KEDA's metrics server) and no Pods or Object one (the custom metrics
// API, prometheus-adapter's).
func kedaMade(h *autoscalingv2.HorizontalPodAutoscaler) bool {
	if scaledObjectOwner(h) != "" {
		return true
	}
	external := false
	for _, m := range h.Spec.Metrics {
		switch m.Type {
		case autoscalingv2.ExternalMetricSourceType:
			external = true
		case autoscalingv2.PodsMetricSourceType, autoscalingv2.ObjectMetricSourceType:
			return false
		}
	}
	return external
}

// scaledObjectOwner is the name of the ScaledObject that owns an HPA, "" for none.
func scaledObjectOwner(h *autoscalingv2.HorizontalPodAutoscaler) string {
	for _, r := range h.OwnerReferences {
		if r.Kind == "ScaledObject" {
			return r.Name
		}
	}
	return ""
}

func podsMetricName(h *autoscalingv2.HorizontalPodAutoscaler) string {
	for _, m := range h.Spec.Metrics {
		if m.Pods != nil {
			return m.Pods.Metric.Name
		}
	}
	return ""
}

// servedCustomMetrics lists what the custom metrics API serves ("pods/avg_requests", …).
func (c *Chain) servedCustomMetrics(ctx context.Context) ([]string, error) {
	body, err := c.Cluster.Raw(ctx, "/apis/custom.metrics.k8s.io/v1beta1")
	if err != nil {
		return nil, err
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range list.APIResources {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	return names, nil
}

func describeMetrics(ms []autoscalingv2.MetricSpec) string {
	var out []string
	for _, m := range ms {
		switch {
		case m.Pods != nil:
			out = append(out, fmt.Sprintf("the Pods metric %s", m.Pods.Metric.Name))
		case m.External != nil:
			out = append(out, fmt.Sprintf("the External metric %s", m.External.Metric.Name))
		default:
			out = append(out, "a "+string(m.Type)+" metric")
		}
	}
	return strings.Join(out, ", ")
}

// valueOr is *p, or def for a field left out.
func valueOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
