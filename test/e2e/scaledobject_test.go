//go:build e2e

package e2e

import (
	"os"
	"testing"

	"github.com/anyroute/anyroute/instrumenting/predict"
	"github.com/anyroute/anyroute/test/kit"
)

// TestAutoscalingKEDA is the same experiment with KEDA instead of prometheus-adapter: KEDA's
// operator and metrics server built from the pinned module, its CRDs applied from the module, the
// chart installed with keda.enabled (a ScaledObject whose prometheus trigger reads the same rate),
// the same Prometheus and load. KEDA makes the HPA; the real HPA controller scales on the external
// metric KEDA serves, and follows the prediction of the KEDA path.
func TestAutoscalingKEDA(t *testing.T) {
	// Built first, or waited for while make test builds them in the background: KEDA is the e2e's
	// last scenario (Go runs a package's tests in the order of their files' names) because its
	// tools are the slowest to build cold, and the scenarios before it need none of them.
	kit.ProjectTool(t, "keda-operator")
	kit.ProjectTool(t, "keda-adapter")
	e := newEnv(t)
	n := startNode(e)
	cp := n.cp
	prom := startPrometheus(e, cp)
	startKEDA(e, cp)
	// KEDA's own checks (Ready, Active) every 5s; the HPA asks for the metric every sync.
	kedaValues := e.path("values-keda.yaml")
	if err := os.WriteFile(kedaValues, []byte("hpa:\n  enabled: false\nkeda:\n  enabled: true\n  pollingInterval: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &demo{e: e, cp: cp, prom: prom, pods: &pods{n: n, ns: namespace}, keda: true,
		values: append(demoLoadValues(), kedaValues), sets: append(demoSets(), "keda.serverAddress="+prom.URL)}
	p := d.predictFrom(predict.PathKEDA, d.predictArgs()...)

	d.helmInstall()
	d.findObjects()
	d.waitScaledObject()
	d.startSampler()

	initial := d.waitServerPods()
	d.scaleOutAndIn(p, initial, d.waitExternalMetric)
	d.breakages(kedaBreakages(prom.URL))
}
