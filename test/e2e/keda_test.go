//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/anyroute/anyroute/test/kit"
)

// KEDA as its chart deploys it, in its own namespace: the operator (which runs the scalers and
// serves their values over gRPC) and the metrics API server (which serves external.metrics.k8s.io
// from them, behind the aggregator).
const (
	kedaNamespace      = "keda"
	kedaMetricsServer  = "keda-operator-metrics-apiserver"
	externalMetricsAPI = "v1beta1.external.metrics.k8s.io"
)

var (
	scaledObjectGVR = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
	crdGVR          = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// keda is KEDA's operator and metrics API server, built from the pinned module, as local processes.
type keda struct {
	operator, adapter *kit.Proc
}

// startKEDA applies KEDA's CRDs from the pinned module, runs the operator and the metrics server
// with their mutual-TLS certificates, and registers the metrics server for external.metrics.k8s.io.
func startKEDA(e *env, cp *controlPlane) *keda {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Minute)
	defer cancel()
	r, err := kit.Run(ctx, kit.Cmd{Path: filepath.Join(repoRoot, "scripts", "tools.sh"), Args: []string{"keda-crds"}})
	if err != nil {
		e.t.Fatalf("scripts/tools.sh keda-crds: %v\n%s", err, r.Output)
	}
	crds := strings.TrimSpace(r.Stdout)
	kubectl := kit.ProjectTool(e.t, "kubectl")
	// Server-side: the ScaledObject CRD is too large for the last-applied annotation.
	if out, err := e.run(ctx, nil, kubectl, "--kubeconfig", cp.kubeconfig, "apply", "--server-side", "-f", crds); err != nil {
		e.t.Fatalf("kubectl apply -f %s: %v\n%s", crds, err, out)
	}
	// Polled rather than `kubectl wait`, which fails at once on a CRD without status yet.
	for _, name := range []string{"scaledobjects.keda.sh", "triggerauthentications.keda.sh"} {
		kit.WaitUntil(e.t, 60*time.Second, "CRD "+name+" Established", func() (bool, string, error) {
			crd, err := cp.dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					return true, "", nil
				}
			}
			return false, fmt.Sprintf("conditions %v", conds), nil
		})
	}
	e.tl.mark("KEDA CRDs applied from %s", crds)

	certs := e.mkdir("keda", "certs")
	if err := makeKEDACerts(certs); err != nil {
		e.t.Fatal(err)
	}
	envVars := []string{"KUBECONFIG=" + cp.kubeconfig, "WATCH_NAMESPACE=", "POD_NAMESPACE=" + kedaNamespace,
		"KEDA_CLUSTER_OBJECT_NAMESPACE=" + kedaNamespace}
	grpcAddr := "127.0.0.1:" + mustFreePort(e, "127.0.0.1")
	probe := "127.0.0.1:" + mustFreePort(e, "127.0.0.1")
	k := &keda{}
	k.operator = e.start("keda-operator", envVars, kit.ProjectTool(e.t, "keda-operator"),
		"--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:"+mustFreePort(e, "127.0.0.1"),
		"--health-probe-bind-address="+probe,
		"--metrics-service-bind-address="+grpcAddr,
		"--cert-dir="+certs,
		"--enable-cert-rotation=false",
		"--ca-dir="+certs,
		"--zap-log-level=info")
	kit.WaitHTTP(e.t, k.operator, "http://"+probe+"/readyz", nil, 60*time.Second)
	e.tl.mark("keda-operator ready (metrics service on %s)", grpcAddr)

	port := mustFreePort(e, nodeIP)
	adapterCerts := e.mkdir("keda", "adapter-certs")
	for _, f := range []string{"ca.crt", "tls.crt", "tls.key"} {
		b, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(adapterCerts, f), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	k.adapter = e.start("keda-adapter", envVars, kit.ProjectTool(e.t, "keda-adapter"),
		"--bind-address="+nodeIP, "--secure-port="+port,
		"--cert-dir="+adapterCerts,
		"--metrics-service-address="+grpcAddr,
		"--port="+mustFreePort(e, "127.0.0.1"),
		"--lister-kubeconfig="+cp.kubeconfig,
		"--authentication-kubeconfig="+cp.kubeconfig,
		"--authorization-kubeconfig="+cp.kubeconfig,
		"--zap-log-level=info")
	kit.WaitHTTP(e.t, k.adapter, "https://"+nodeIP+":"+port+"/readyz", nil, 60*time.Second)
	e.tl.mark("keda-adapter ready on %s:%s", nodeIP, port)
	registerAPIService(e, cp, kedaNamespace, kedaMetricsServer, nodeIP, port, "external.metrics.k8s.io", externalMetricsAPI)
	waitAPIService(e, cp, externalMetricsAPI, k.adapter)
	return k
}

// scaledObject reads the chart's ScaledObject.
func (d *demo) scaledObject(ctx context.Context) (*unstructured.Unstructured, error) {
	return d.cp.dynamic.Resource(scaledObjectGVR).Namespace(namespace).Get(ctx, d.so, metav1.GetOptions{})
}

// scaledObjectState is "Ready=… Active=…; HPA NAME; metrics …".
func scaledObjectState(so *unstructured.Unstructured) (state, hpa string, metrics []string) {
	conds, _, _ := unstructured.NestedSlice(so.Object, "status", "conditions")
	var parts []string
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if t := m["type"]; t == "Ready" || t == "Active" {
			parts = append(parts, fmt.Sprintf("%v=%v %v", t, m["status"], m["reason"]))
		}
	}
	hpa, _, _ = unstructured.NestedString(so.Object, "status", "hpaName")
	metrics, _, _ = unstructured.NestedStringSlice(so.Object, "status", "externalMetricNames")
	return strings.Join(parts, ", "), hpa, metrics
}

// waitScaledObject waits for KEDA's operator to make the ScaledObject Ready and its HPA.
func (d *demo) waitScaledObject() {
	var state string
	d.until("ScaledObject "+d.so+" Ready, with its HPA", 60*time.Second, func(ctx context.Context) (bool, string, error) {
		so, err := d.scaledObject(ctx)
		if err != nil {
			return false, "", err
		}
		var hpa string
		var metrics []string
		state, hpa, metrics = scaledObjectState(so)
		if hpa == "" || len(metrics) == 0 || !strings.Contains(state, "Ready=True") {
			return false, state, nil
		}
		if _, err := d.cp.client.AutoscalingV2().HorizontalPodAutoscalers(namespace).Get(ctx, hpa, metav1.GetOptions{}); err != nil {
			return false, state + "; " + err.Error(), nil
		}
		d.hpa, d.externalMetric = hpa, metrics[0]
		return true, "", nil
	})
	d.e.tl.mark("ScaledObject %s: %s; KEDA made HPA %s on the external metric %s", d.so, state, d.hpa, d.externalMetric)
}

// externalMetricPath is what `kubectl get --raw` asks KEDA's metrics server for.
func (d *demo) externalMetricPath() string {
	return fmt.Sprintf("/apis/external.metrics.k8s.io/v1beta1/namespaces/%s/%s?labelSelector=scaledobject.keda.sh%%2Fname%%3D%s",
		namespace, d.externalMetric, d.so)
}

// waitExternalMetric waits until the external metrics API answers the ScaledObject's metric with
// a value above zero: Prometheus, the trigger query, the operator and the metrics server agree.
func (d *demo) waitExternalMetric() {
	var value string
	d.until("external metric "+d.externalMetric+" above zero", 90*time.Second, func(ctx context.Context) (bool, string, error) {
		out, err := d.getRaw(ctx, d.externalMetricPath())
		if err != nil {
			return false, "", err
		}
		var list struct {
			Items []metricValue `json:"items"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) == 0 {
			return false, out, err
		}
		value = list.Items[0].Value.String()
		return list.Items[0].Value.AsApproximateFloat64() > 0, value, nil
	})
	d.e.tl.mark("kubectl get --raw %s: %s", d.externalMetricPath(), value)
}
