//go:build external

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/anyroute/anyroute/test/kit"
)

// kedaValues turn the chart's HPA off and KEDA's ScaledObject on.
var kedaValues = []string{"-f", demoValues, "--set", "hpa.enabled=false,keda.enabled=true"}

// TestHelmKEDA renders the KEDA variant: a ScaledObject valid against KEDA's own CRD schema (the
// pinned module's config/crd/bases, as the end-to-end test applies it), no HPA of the chart's
// own, and the same scaling as the HPA variant: replicas, target, behavior and the adapter rule's
// rate, summed over the Deployment's pods.
func TestHelmKEDA(t *testing.T) {
	r := renderChart(t, "anyroute", append(kedaValues, "--set", "keda.activationThreshold=0.5")...)
	r.wantKinds(t, "ConfigMap", "Deployment", "Deployment", "ScaledObject", "Service", "ServiceAccount")
	checkLabelsAndNamespace(t, r)
	checkServer(t, r)
	if r.server.Spec.Replicas != nil {
		t.Errorf("with KEDA the Deployment must leave replicas to KEDA's HPA, got %d", *r.server.Spec.Replicas)
	}
	so := r.scaledObjects[0].Object
	hpa := renderChart(t, "anyroute", "-f", demoValues).hpa(t)
	str := func(path ...string) string { s, _, _ := unstructured.NestedString(so, path...); return s }
	num := func(path ...string) int64 { // YAML numbers decode as float64
		n, _, _ := unstructured.NestedFieldNoCopy(so, path...)
		f, _ := n.(float64)
		return int64(f)
	}
	if ref := str("spec", "scaleTargetRef", "name"); ref != r.server.Name {
		t.Errorf("scaleTargetRef.name %q, want the Deployment %q", ref, r.server.Name)
	}
	if lo, hi := num("spec", "minReplicaCount"), num("spec", "maxReplicaCount"); lo != int64(*hpa.Spec.MinReplicas) || hi != int64(hpa.Spec.MaxReplicas) {
		t.Errorf("replicas %d..%d, want the HPA's %d..%d", lo, hi, *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	behavior, _, _ := unstructured.NestedFieldCopy(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior")
	if !reflect.DeepEqual(behavior, toJSONValue(t, hpa.Spec.Behavior)) {
		t.Errorf("behavior %v, want the HPA's %+v", behavior, hpa.Spec.Behavior)
	}
	triggers, _, _ := unstructured.NestedSlice(so, "spec", "triggers")
	if len(triggers) != 1 {
		t.Fatalf("want one trigger, got %v", triggers)
	}
	trig := triggers[0].(map[string]any)
	meta, _ := trig["metadata"].(map[string]any)
	if trig["type"] != "prometheus" || trig["metricType"] != "AverageValue" {
		t.Errorf("trigger %v, want type prometheus, metricType AverageValue", trig)
	}
	if want := hpa.Spec.Metrics[0].Pods.Target.AverageValue.String(); meta["threshold"] != want {
		t.Errorf("threshold %v, want the HPA's target %s", meta["threshold"], want)
	}
	if meta["activationThreshold"] != "0.5" {
		t.Errorf("activationThreshold %v, want 0.5", meta["activationThreshold"])
	}
	// The adapter rule's metricsQuery, for the Deployment's pods, summed instead of by pod.
	want := `sum(rate(app_requests_total{namespace="demo",pod=~"anyroute-[a-z0-9]+-[a-z0-9]+"}[2m]))`
	if meta["query"] != want {
		t.Errorf("query %v, want %s", meta["query"], want)
	}
	if !strings.Contains(adapterMetricsQuery(t), "[2m]") {
		t.Errorf("the adapter rule's window is no longer 2m: change keda.rateWindow with it")
	}
	if meta["serverAddress"] != "http://prometheus-server.default.svc" {
		t.Errorf("serverAddress %v", meta["serverAddress"])
	}

	// Without an activation threshold the key is left out (KEDA's default, 0).
	r = renderChart(t, "anyroute", kedaValues...)
	triggers, _, _ = unstructured.NestedSlice(r.scaledObjects[0].Object, "spec", "triggers")
	if _, ok := triggers[0].(map[string]any)["metadata"].(map[string]any)["activationThreshold"]; ok {
		t.Errorf("activationThreshold rendered without keda.activationThreshold: %v", triggers[0])
	}
	// The metric name follows config.metrics.namespace, as the series does.
	r = renderChart(t, "web", append(kedaValues, "--set", "config.metrics.namespace=shop,keda.rateWindow=1m")...)
	triggers, _, _ = unstructured.NestedSlice(r.scaledObjects[0].Object, "spec", "triggers")
	q := triggers[0].(map[string]any)["metadata"].(map[string]any)["query"]
	if q != `sum(rate(shop_requests_total{namespace="demo",pod=~"web-anyroute-[a-z0-9]+-[a-z0-9]+"}[1m]))` {
		t.Errorf("query %v", q)
	}
}

// TestHelmKEDARejectsBoth: one autoscaler at a time, and turning KEDA on with the default
// hpa.enabled is refused with a message that says what to change (not the schema's "value must be
// false" at '/keda/enabled', which names neither hpa.enabled nor the fix).
func TestHelmKEDARejectsBoth(t *testing.T) {
	for name, args := range map[string][]string{
		"keda on, hpa at its default":  {"--set", "keda.enabled=true"},
		"keda on, hpa on in the file":  {"-f", demoValues, "--set", "keda.enabled=true"},
		"keda on, hpa on, said so too": {"--set", "keda.enabled=true,hpa.enabled=true"},
	} {
		_, stderr, err := runHelm(t, templateArgs("anyroute", args...)...)
		if err == nil || !strings.Contains(stderr, "keda.enabled=true needs hpa.enabled=false") {
			t.Errorf("%s: helm template err %v, want the refusal naming both keys:\n%s", name, err, stderr)
		}
	}
	if _, stderr, err := runHelm(t, templateArgs("anyroute", kedaValues...)...); err != nil {
		t.Errorf("hpa.enabled=false with keda.enabled=true: %v\n%s", err, stderr)
	}
}

// TestHelmKEDAValidatorIsStrict shows the CRD check refuses what the API server would: an unknown
// field (pruned, so refused under strict field validation) and a value of the wrong type.
func TestHelmKEDAValidatorIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  maxReplicas: 3\n  triggers: [{type: prometheus, metadata: {query: up}}]\n",
		"wrong type":    "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  maxReplicaCount: \"3\"\n  triggers: [{type: prometheus, metadata: {query: up}}]\n",
	} {
		if _, err := validateScaledObject([]byte(doc)); err == nil {
			t.Errorf("%s: the CRD check accepted\n%s", name, doc)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func toJSONValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func adapterMetricsQuery(t *testing.T) string {
	t.Helper()
	var cfg struct {
		Rules []adapterRule `json:"rules"`
	}
	readStrictYAML(t, helmDir+"/prometheus-adapter-rules.yaml", &cfg)
	return cfg.Rules[0].MetricsQuery
}

// kedaCRDDir is the pinned KEDA module's CRD folder, from scripts/tools.sh (a module download at
// most, no build).
var kedaCRDDir = sync.OnceValues(func() (string, error) {
	root, err := kit.RepoRoot()
	if err != nil {
		return "", err
	}
	r, err := kit.Run(context.Background(), kit.Cmd{Path: filepath.Join(root, "scripts", "tools.sh"), Args: []string{"keda-crds"}})
	if err != nil {
		return "", fmt.Errorf("scripts/tools.sh keda-crds: %w\n%s", err, r.Output)
	}
	return strings.TrimSpace(r.Stdout), nil
})

// scaledObjectSchema is the v1alpha1 schema of KEDA's ScaledObject CRD, as the API server uses it:
// structural (for pruning unknown fields) and as a validator.
type crdSchema struct {
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
}

var scaledObjectSchema = sync.OnceValues(func() (*crdSchema, error) {
	dir, err := kedaCRDDir()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "keda.sh_scaledobjects.yaml")
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var crd apiextv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1alpha1" || v.Schema == nil {
			continue
		}
		var internal apiext.JSONSchemaProps
		if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, err
		}
		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return nil, fmt.Errorf("%s: not a structural schema: %w", file, err)
		}
		val, _, err := validation.NewSchemaValidator(&internal)
		if err != nil {
			return nil, err
		}
		return &crdSchema{structural: s, validator: val}, nil
	}
	return nil, fmt.Errorf("%s has no v1alpha1 schema", file)
})

// validateScaledObject checks a ScaledObject as `kubectl apply --validate=strict` against KEDA's
// CRD would: a field the schema does not know (one the API server would prune) is an error, and so
// is a value the schema refuses. The CRD's CEL rules are not run.
func validateScaledObject(doc []byte) (*unstructured.Unstructured, error) {
	s, err := scaledObjectSchema()
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return nil, err
	}
	pruned := pruning.PruneWithOptions(deepCopyJSON(obj), s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if len(pruned) > 0 {
		return nil, fmt.Errorf("fields unknown to KEDA's ScaledObject CRD: %v", pruned)
	}
	if errs := validation.ValidateCustomResource(nil, obj, s.validator); len(errs) > 0 {
		return nil, fmt.Errorf("invalid against KEDA's ScaledObject CRD: %w", errs.ToAggregate())
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

func deepCopyJSON(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}
