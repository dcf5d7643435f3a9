package doctor

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// TestHPAMetricOf: each kind of metric the chart's HPAs use (Pods from the adapter, External from
// KEDA, Resource cpu for the CPU HPA) reads as numbers per pod and shows as kubectl shows it; a
// current value of another metric's name is not taken for it.
func TestHPAMetricOf(t *testing.T) {
	hpa := func(spec autoscalingv2.MetricSpec, status ...autoscalingv2.MetricStatus) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{Metrics: []autoscalingv2.MetricSpec{spec}},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentMetrics: status}}
	}
	q := func(s string) *resource.Quantity { return ptr.To(resource.MustParse(s)) }
	pods := autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "avg_requests"}, Target: autoscalingv2.MetricTarget{AverageValue: q("5")}}}
	podsNow := func(name, v string) autoscalingv2.MetricStatus {
		return autoscalingv2.MetricStatus{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{
			Metric: autoscalingv2.MetricIdentifier{Name: name}, Current: autoscalingv2.MetricValueStatus{AverageValue: q(v)}}}
	}
	external := autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "s0-prometheus"}, Target: autoscalingv2.MetricTarget{AverageValue: q("5")}}}
	externalNow := autoscalingv2.MetricStatus{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
		Metric: autoscalingv2.MetricIdentifier{Name: "s0-prometheus"}, Current: autoscalingv2.MetricValueStatus{AverageValue: q("12500m")}}}
	cpu := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{AverageUtilization: ptr.To[int32](50)}}}
	cpuNow := autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To[int32](73)}}}

	for _, c := range []struct {
		name                string
		h                   *autoscalingv2.HorizontalPodAutoscaler
		want                HPAMetric
		showCur, showTarget string
	}{
		{"pods", hpa(pods, podsNow("avg_requests", "3802m")), HPAMetric{Name: "avg_requests", Target: 5, HasTarget: true, Current: 3.802, HasCurrent: true},
			"avg_requests 3802m = 3.802", "5"},
		{"pods, no value yet", hpa(pods), HPAMetric{Name: "avg_requests", Target: 5, HasTarget: true}, "avg_requests <unknown>", "5"},
		{"pods, another metric's value", hpa(pods, podsNow("other", "9")), HPAMetric{Name: "avg_requests", Target: 5, HasTarget: true}, "avg_requests <unknown>", "5"},
		{"external", hpa(external, externalNow), HPAMetric{Name: "s0-prometheus", Target: 5, HasTarget: true, Current: 12.5, HasCurrent: true},
			"s0-prometheus 12500m = 12.5", "5"},
		{"cpu", hpa(cpu, cpuNow), HPAMetric{Name: "cpu", Target: 50, HasTarget: true, Current: 73, HasCurrent: true, Percent: true}, "cpu 73%", "50%"},
		{"no metric", &autoscalingv2.HorizontalPodAutoscaler{}, HPAMetric{}, "<unknown>", "?"},
	} {
		got := HPAMetricOf(c.h)
		cur, target := got.Show()
		got.current, got.target = "", ""
		if got != c.want || cur != c.showCur || target != c.showTarget {
			t.Errorf("%s: got %+v, shown %q against %q; want %+v, shown %q against %q", c.name, got, cur, target, c.want, c.showCur, c.showTarget)
		}
	}
}
