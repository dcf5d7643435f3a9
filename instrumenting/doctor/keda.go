package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// checkKEDAQuery runs the ScaledObject's trigger query in Prometheus, as KEDA's operator does.
func (c *Chain) checkKEDAQuery(ctx context.Context) Link {
	l := Link{Name: LinkKEDAQuery}
	t := c.so.prometheusTrigger()
	if t == nil {
		return fail(l, "ScaledObject "+c.so.Metadata.Name+" has no prometheus trigger", "the chart's keda.enabled renders one")
	}
	q := t.Metadata["query"]
	res, err := c.query(ctx, q)
	if err != nil {
		return fail(l, "query "+q+": "+err.Error(), "")
	}
	if len(res) == 0 {
		return fail(l, "query "+q+" returns no series",
			"KEDA reads an empty answer as 0 (ignoreNullValues) and never scales out: the query's metric name, namespace or pod pattern does not match the series")
	}
	perPod := ""
	if n := len(c.pods); n > 0 {
		perPod = fmt.Sprintf(", %s per Ready pod", formatFloat(float64(res[0].Value)/float64(n)))
	}
	return pass(l, fmt.Sprintf("%s = %s%s against threshold %s per pod (%s)", q, formatFloat(float64(res[0].Value)), perPod,
		Quantity(t.Metadata["threshold"]), t.MetricType))
}

// checkScaledObject reads the ScaledObject's conditions: Ready says KEDA set it up and its
// triggers answer; Active says the trigger is above its activation threshold.
func (c *Chain) checkScaledObject(context.Context) Link {
	l := Link{Name: LinkScaledObject}
	conds := map[string]metav1.Condition{}
	for _, cond := range c.so.Status.Conditions {
		conds[cond.Type] = cond
	}
	show := func(t string) string {
		cond, ok := conds[t]
		if !ok {
			return t + " unknown"
		}
		return fmt.Sprintf("%s=%s %s", t, cond.Status, cond.Reason)
	}
	ev := fmt.Sprintf("ScaledObject %s: %s, %s; HPA %q", c.so.Metadata.Name, show("Ready"), show("Active"), c.so.Status.HPAName)
	ready, ok := conds["Ready"]
	if !ok {
		return fail(l, ev, "KEDA's operator has not reconciled the ScaledObject: is keda-operator running?")
	}
	if ready.Status != metav1.ConditionTrue {
		return fail(l, ev+": "+ready.Message, fmt.Sprintf("kubectl -n %s describe scaledobject %s, and keda-operator's log: a trigger that errors (an unreachable serverAddress, a bad query) makes it not Ready", c.Namespace, c.so.Metadata.Name))
	}
	return pass(l, ev)
}

// checkExternalMetric asks the external metrics API for the value KEDA gives the HPA.
func (c *Chain) checkExternalMetric(ctx context.Context) Link {
	l := Link{Name: LinkExternalMetric}
	if len(c.so.Status.ExternalMetricNames) == 0 {
		return fail(l, "ScaledObject "+c.so.Metadata.Name+" lists no external metric", "KEDA has not set it up: see the scaledobject link")
	}
	name := c.so.Status.ExternalMetricNames[0]
	p := fmt.Sprintf("/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/%s?labelSelector=%s", c.Namespace, name,
		"scaledobject.keda.sh%2Fname%3D"+c.so.Metadata.Name)
	body, err := c.Cluster.Raw(ctx, p)
	if err != nil {
		return fail(l, err.Error(), "KEDA's metrics server asks the operator, which asks Prometheus: see their logs")
	}
	var list struct {
		Items []struct {
			Value resource.Quantity `json:"value"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) == 0 {
		return fail(l, fmt.Sprintf("GET %s: no value (%v)", p, err), "")
	}
	return pass(l, fmt.Sprintf("%s = %s (the Deployment's total; the HPA divides it by the replicas)", name, Quantity(list.Items[0].Value.String())))
}

// scaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject the doctor reads.
type scaledObject struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		ScaleTargetRef struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		Triggers []soTrigger `json:"triggers"`
	} `json:"spec"`
	Status struct {
		HPAName             string             `json:"hpaName"`
		ExternalMetricNames []string           `json:"externalMetricNames"`
		Conditions          []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

type soTrigger struct {
	Type       string            `json:"type"`
	MetricType string            `json:"metricType"`
	Metadata   map[string]string `json:"metadata"`
}

func (so *scaledObject) prometheusTrigger() *soTrigger {
	for i, t := range so.Spec.Triggers {
		if t.Type == "prometheus" {
			return &so.Spec.Triggers[i]
		}
	}
	return nil
}

// scaledObjects lists the namespace's ScaledObjects; none where KEDA's CRDs are not installed.
func (c *Chain) scaledObjects(ctx context.Context) ([]scaledObject, error) {
	body, err := c.Cluster.Raw(ctx, "/apis/keda.sh/v1alpha1/namespaces/"+c.Namespace+"/scaledobjects")
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var list struct {
		Items []scaledObject `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// scaledObjectFor is the ScaledObject of sos that scales the Deployment, else the one named owner
// (the owner of an HPA of the Deployment: KEDA's HPA names its ScaledObject even where the
// ScaledObject's scaleTargetRef reads otherwise); nil for none.
func (c *Chain) scaledObjectFor(sos []scaledObject, owner string) *scaledObject {
	for i, so := range sos {
		if ref := so.Spec.ScaleTargetRef; (ref.Kind == "" || ref.Kind == "Deployment") && ref.Name == c.dep.Name {
			return &sos[i]
		}
	}
	for i, so := range sos {
		if owner != "" && so.Metadata.Name == owner {
			return &sos[i]
		}
	}
	return nil
}

// ignoresNullValues is the trigger's ignoreNullValues: whether KEDA reads a query that answers
// nothing as 0 (true, KEDA's default) or as an error, which leaves the HPA without a value.
func (t *soTrigger) ignoresNullValues() bool {
	b, err := strconv.ParseBool(t.Metadata["ignoreNullValues"])
	return err != nil || b
}
