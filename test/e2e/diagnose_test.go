//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// adapterRules is the part of prometheus-adapter's --config file the diagnosis compares with what
// Prometheus holds and what the HPA asks for.
type adapterRules struct {
	Rules []struct {
		SeriesQuery string `json:"seriesQuery"`
		Resources   struct {
			Overrides map[string]struct {
				Resource string `json:"resource"`
			} `json:"overrides"`
		} `json:"resources"`
		Name struct {
			Matches string `json:"matches"`
			As      string `json:"as"`
		} `json:"name"`
		MetricsQuery string `json:"metricsQuery"`
	} `json:"rules"`
}

// diagnose explains why the metrics pipeline does not deliver: what the HPA asks for, what the
// adapter serves, what the adapter's rule selects in Prometheus and what Prometheus holds, with a
// line saying where they disagree.
func (d *demo) diagnose(ctx context.Context) string {
	var b strings.Builder
	var hints []string
	hint := func(format string, args ...any) { hints = append(hints, fmt.Sprintf(format, args...)) }

	wanted := d.diagnoseHPA(ctx, &b, hint)
	served, err := servedMetrics(ctx, d.cp)
	if err != nil {
		fmt.Fprintf(&b, "custom metrics API: %v (APIService: %s)\n", err, apiServiceCondition(d.cp))
		hint("the custom metrics API does not answer: see the APIService condition and the adapter's log")
	} else {
		fmt.Fprintf(&b, "the adapter serves: %v\n", served)
		if wanted != "" && !slices.Contains(served, "pods/"+wanted) {
			hint("the HPA asks for the Pods metric %q but the adapter serves %v: the HPA's metric name and the adapter rule's name.as disagree, or the rule selects no series", wanted, served)
		}
	}
	d.diagnoseRules(ctx, &b, hint)

	if len(hints) == 0 {
		hints = append(hints, "no disagreement found between the HPA, the adapter rule and Prometheus; see the logs below")
	}
	return "diagnosis:\n  - " + strings.Join(hints, "\n  - ") + "\n" + indent(b.String())
}

// diagnoseHPA describes the HPA's spec and status and returns the name of its Pods metric.
func (d *demo) diagnoseHPA(ctx context.Context, b *strings.Builder, hint func(string, ...any)) string {
	if d.hpa == "" {
		return ""
	}
	h, err := d.getHPA(ctx)
	if err != nil {
		fmt.Fprintf(b, "HPA %s: %v\n", d.hpa, err)
		return ""
	}
	fmt.Fprintf(b, "HPA %s: scaleTargetRef %s/%s; metrics: %s; status: %s\n",
		h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, describeMetrics(h.Spec.Metrics), hpaState(h))
	for _, c := range h.Status.Conditions {
		fmt.Fprintf(b, "  condition %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
		if c.Type == autoscalingv2.ScalingActive && c.Status != "True" {
			hint("the HPA controller says %s: %s", c.Reason, c.Message)
		}
	}
	if h.Spec.ScaleTargetRef.Name != d.deployment {
		hint("the HPA scales %q, not the chart's Deployment %q", h.Spec.ScaleTargetRef.Name, d.deployment)
	}
	events, err := d.cp.client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=" + d.hpa})
	if err == nil {
		sort.Slice(events.Items, func(i, j int) bool {
			return events.Items[i].LastTimestamp.Before(&events.Items[j].LastTimestamp)
		})
		for _, ev := range events.Items[max(0, len(events.Items)-4):] {
			fmt.Fprintf(b, "  event %s %s (x%d): %s\n", ev.Type, ev.Reason, ev.Count, ev.Message)
		}
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.PodsMetricSourceType || m.Pods == nil {
			hint("the HPA's metric is of type %s; the demo's is a Pods metric (%s)", m.Type, customMetric)
			continue
		}
		if m.Pods.Target.Type != autoscalingv2.AverageValueMetricType {
			hint("the HPA's target type is %s; a Pods metric takes AverageValue", m.Pods.Target.Type)
		}
		for _, cm := range h.Status.CurrentMetrics {
			if cm.Pods != nil && cm.Pods.Metric.Name == m.Pods.Metric.Name && cm.Pods.Current.AverageValue != nil && m.Pods.Target.AverageValue != nil {
				hint("the HPA reads %s = %s per pod against a target of %s: it scales out only above the target (plus 10%% tolerance)",
					m.Pods.Metric.Name, cm.Pods.Current.AverageValue.String(), m.Pods.Target.AverageValue.String())
			}
		}
		return m.Pods.Metric.Name
	}
	return ""
}

// diagnoseRules compares the adapter's rules with the series Prometheus holds.
func (d *demo) diagnoseRules(ctx context.Context, b *strings.Builder, hint func(string, ...any)) {
	counters, err := d.prom.series(ctx, `{__name__=~".+_requests_total"}`)
	if err != nil {
		fmt.Fprintf(b, "prometheus: %v\n", err)
		return
	}
	fmt.Fprintf(b, "prometheus holds %d *_requests_total series%s\n", len(counters), sampleSeries(counters))
	raw, err := os.ReadFile(d.ad.rules)
	if err != nil {
		fmt.Fprintf(b, "adapter rules: %v\n", err)
		return
	}
	var rules adapterRules
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		hint("the adapter rule file %s does not parse: %v", relPath(d.ad.rules), err)
		return
	}
	for i, r := range rules.Rules {
		fmt.Fprintf(b, "adapter rule %d: seriesQuery %s, name %q → %q, labels %v\n",
			i, r.SeriesQuery, r.Name.Matches, r.Name.As, overrideLabels(r.Resources.Overrides))
		series, err := d.prom.series(ctx, r.SeriesQuery)
		if err != nil {
			hint("the adapter rule's seriesQuery %s is not a valid Prometheus selector: %v", r.SeriesQuery, err)
			continue
		}
		fmt.Fprintf(b, "  its seriesQuery selects %d series%s\n", len(series), sampleSeries(series))
		if len(series) == 0 {
			hint("the adapter rule's seriesQuery %s selects no series in Prometheus, which holds %s: the metric name or the pod labels disagree", r.SeriesQuery, labelNames(counters))
			continue
		}
		if missing := missingLabels(series[0], r.Resources.Overrides); len(missing) > 0 {
			hint("the adapter rule maps labels %v to resources, but the series have no %v (they have %s)", overrideLabels(r.Resources.Overrides), missing, labelNames(series))
		}
		if re, err := regexp.Compile(r.Name.Matches); err == nil && !re.MatchString(series[0]["__name__"]) {
			hint("the adapter rule's name.matches %q does not match the series name %q", r.Name.Matches, series[0]["__name__"])
		}
	}
}

func overrideLabels(o map[string]struct {
	Resource string `json:"resource"`
}) []string {
	var names []string
	for label := range o {
		names = append(names, label)
	}
	sort.Strings(names)
	return names
}

func missingLabels(series map[string]string, o map[string]struct {
	Resource string `json:"resource"`
}) []string {
	var missing []string
	for _, label := range overrideLabels(o) {
		if _, ok := series[label]; !ok {
			missing = append(missing, label)
		}
	}
	return missing
}

// labelNames describes series by their names and label names.
func labelNames(series []map[string]string) string {
	if len(series) == 0 {
		return "no such series"
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range series {
		var names []string
		for k := range s {
			if k != "__name__" {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		desc := s["__name__"] + "{" + strings.Join(names, ",") + "}"
		if !seen[desc] {
			seen[desc] = true
			out = append(out, desc)
		}
	}
	return strings.Join(out, " ")
}

func sampleSeries(series []map[string]string) string {
	if len(series) == 0 {
		return ""
	}
	var lines []string
	for _, s := range series[:min(3, len(series))] {
		var kv []string
		for k, v := range s {
			kv = append(kv, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(kv)
		lines = append(lines, "{"+strings.Join(kv, ", ")+"}")
	}
	return ", e.g.\n    " + strings.Join(lines, "\n    ")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
