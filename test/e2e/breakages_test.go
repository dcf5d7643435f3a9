//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/anyroute/anyroute/instrumenting/doctor"
	"github.com/anyroute/anyroute/test/kit"
)

// runDoctor runs the real `anyroute doctor` (bin/anyroute, built by TestMain) on the demo, as a
// user would: the control plane's kubeconfig, the demo's namespace and release, the Prometheus
// the test runs.
func (d *demo) runDoctor(ctx context.Context, output string, extra ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	r, err := kit.Run(ctx, kit.Cmd{Path: anyrouteBin, Args: append([]string{"doctor", "-kubeconfig", d.cp.kubeconfig,
		"-namespace", namespace, "-release", release, "-prometheus-url", d.prom.URL, "-o", output}, extra...)})
	code := 0
	if err != nil {
		var ok bool
		if code, ok = exitCodeOf(err); !ok {
			return r.Output, -1, err
		}
	}
	return r.Stdout, code, nil
}

func exitCodeOf(err error) (int, bool) {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), true
	}
	return 0, false
}

// doctorText is the doctor's text report, for a failing test's message.
func (d *demo) doctorText(ctx context.Context) string {
	out, code, err := d.runDoctor(ctx, "text")
	if err != nil {
		return "anyroute doctor: " + err.Error() + "\n" + out
	}
	return fmt.Sprintf("anyroute doctor (exit %d):\n%s", code, indent(out))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// doctorReport runs the doctor with -o json and checks its exit code agrees with its verdict.
func (d *demo) doctorReport(ctx context.Context) (*doctor.Report, error) {
	out, code, err := d.runDoctor(ctx, "json")
	if err != nil {
		return nil, err
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("anyroute doctor -o json: %w\n%s", err, out)
	}
	if (code == 0) != r.Healthy {
		return nil, fmt.Errorf("anyroute doctor exited %d with healthy %v", code, r.Healthy)
	}
	return &r, nil
}

// waitDoctor polls the doctor until its report satisfies want, and marks the link it names.
func (d *demo) waitDoctor(what string, timeout time.Duration, want func(*doctor.Report) bool) *doctor.Report {
	var last *doctor.Report
	d.until("anyroute doctor: "+what, timeout, func(ctx context.Context) (bool, string, error) {
		r, err := d.doctorReport(ctx)
		if err != nil {
			return false, "", err
		}
		last = r
		return want(r), fmt.Sprintf("first problem %q, first broken %q", r.FirstProblem, r.FirstBroken), nil
	})
	return last
}

func linkNamed(r *doctor.Report, name string) doctor.Link {
	for _, l := range r.Links {
		if l.Name == name {
			return l
		}
	}
	return doctor.Link{}
}

// waitDoctorHealthy waits for the doctor to find every link whole (no failure, no warning: a
// new pod may lack its series or value for a few seconds).
func (d *demo) waitDoctorHealthy(when string) {
	r := d.waitDoctor("every link holds "+when, 60*time.Second, func(r *doctor.Report) bool {
		return r.Healthy && r.FirstProblem == ""
	})
	path := doctor.PathAdapter
	if d.keda {
		path = doctor.PathKEDA
	}
	if r.Path != path {
		d.e.t.Fatalf("anyroute doctor took the %s path, want %s", r.Path, path)
	}
	d.e.tl.mark("anyroute doctor %s: %d links hold; %s: %s", when, len(r.Links), doctor.LinkHPA, linkNamed(r, doctor.LinkHPA).Evidence)
	if when == "at the peak" {
		text := d.doctorText(d.e.t.Context())
		d.e.t.Logf("anyroute doctor at the peak:\n%s", text)
	}
}

// breakage is one deliberate disagreement, made and repaired in the running demo, and the link
// the doctor must name.
type breakage struct {
	name    string
	link    string
	status  doctor.Status
	breakIt func(d *demo)
	repair  func(d *demo)
}

// adapterBreakages are the five disagreements the e2e could always be switched into with
// E2E_HELM_SET, E2E_POD_LABELS and E2E_ADAPTER_RULES (docs/autoscaling.md), made live instead of
// one full run each, at the minimum after the load. The last, a target out of reach, needs
// traffic: it starts the load's stages again with the target already at 1000, so the HPA never
// scales out, and the doctor warns (every link reads fine: it exits 0). Against the prediction
// of the values' target, the doctor must name that target (divergesOnTarget); the repair stops the
// load again.
var adapterBreakages = []breakage{
	{name: "adapter rule with the original's labels (E2E_ADAPTER_RULES)", link: doctor.LinkAdapterRule, status: doctor.Fail,
		breakIt: func(d *demo) {
			orig, err := os.ReadFile(d.ad.rules)
			if err != nil {
				d.e.t.Fatal(err)
			}
			broken := strings.NewReplacer("        namespace:\n", "        kubernetes_namespace:\n", "        pod:\n", "        kubernetes_pod_name:\n").Replace(string(orig))
			if broken == string(orig) {
				d.e.t.Fatalf("%s: no overrides to rename", d.ad.rules)
			}
			file := d.e.path("adapter", "rules-original-labels.yaml")
			if err := os.WriteFile(file, []byte(broken), 0o600); err != nil {
				d.e.t.Fatal(err)
			}
			d.ad.original = d.ad.rules
			d.ad.restart(file)
		},
		repair: func(d *demo) { d.ad.restart(d.ad.original) }},
	{name: "metric name (E2E_HELM_SET=config.metrics.namespace=anyroute)", link: doctor.LinkExporter, status: doctor.Fail,
		breakIt: func(d *demo) { d.helmUpgrade("config.metrics.namespace=anyroute") },
		repair:  func(d *demo) { d.helmUpgrade("config.metrics.namespace=app") }},
	{name: "pod labels (E2E_POD_LABELS=kubernetes_namespace,kubernetes_pod_name)", link: doctor.LinkPrometheus, status: doctor.Fail,
		breakIt: func(d *demo) { d.relabel("kubernetes_namespace", "kubernetes_pod_name") },
		repair:  func(d *demo) { d.relabel("namespace", "pod") }},
	{name: "HPA metric name (E2E_HELM_SET=hpa.metric.name=avg_request)", link: doctor.LinkHPA, status: doctor.Fail,
		breakIt: func(d *demo) { d.helmUpgrade("hpa.metric.name=avg_request") },
		repair:  func(d *demo) { d.helmUpgrade("hpa.metric.name=avg_requests") }},
	{name: "HPA target out of reach, under the load's stages (E2E_HELM_SET=hpa.metric.targetAverageValue=1000)", link: doctor.LinkHPA, status: doctor.Warn,
		breakIt: func(d *demo) { d.helmUpgrade("hpa.metric.targetAverageValue=1000", "load.replicas=1") },
		repair: func(d *demo) {
			if h, err := d.getHPA(d.e.t.Context()); err != nil || h.Status.DesiredReplicas != d.min {
				d.e.t.Fatalf("with the target out of reach the HPA must stay at %d: %s (%v)", d.min, hpaState(h), err)
			}
			d.divergesOnTarget("1000")
			d.helmUpgrade("hpa.metric.targetAverageValue=5")
		}},
}

// kedaBreakages: KEDA's operator asks a Prometheus that is not there.
func kedaBreakages(promURL string) []breakage {
	return []breakage{{name: "KEDA's serverAddress (keda.serverAddress=http://127.0.0.1:1)", link: doctor.LinkScaledObject, status: doctor.Fail,
		breakIt: func(d *demo) { d.helmUpgrade("keda.serverAddress=http://127.0.0.1:1") },
		repair:  func(d *demo) { d.helmUpgrade("keda.serverAddress=" + promURL) }}}
}

// trickle sends each running app pod one request a second, from the test straight to its pod
// IP, until the returned stop is called: below the HPA's target, and enough that a
// pod started by a breakage's rollout has a counter and a rate for the doctor to check.
func (d *demo) trickle() (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	client := kit.NewClient(2 * time.Second)
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			for _, addr := range d.pods.serverAddrs() {
				if resp, err := client.Get("http://" + addr + "/api/trickle"); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	d.e.tl.mark("trickle: one request a second to each app pod during the breakages")
	return func() { close(done); <-finished }
}

func (d *demo) relabel(ns, pod string) {
	if err := d.prom.relabel(ns, pod); err != nil {
		d.e.t.Fatal(err)
	}
	d.e.tl.mark("prometheus reloaded: namespace and pod now in labels %s, %s", ns, pod)
}

// breakages makes each breakage, waits for the doctor to name its link, repairs it and waits for
// the doctor to find the chain whole again. E2E_BREAKAGES=0 leaves them out (a quicker run).
func (d *demo) breakages(list []breakage) {
	if os.Getenv("E2E_BREAKAGES") == "0" {
		d.e.t.Log("E2E_BREAKAGES=0: no breakages")
		return
	}
	defer d.trickle()()
	for _, b := range list {
		d.e.tl.mark("breakage: %s", b.name)
		b.breakIt(d)
		d.expectDoctor(b)
		b.repair(d)
		d.waitDoctorHealthy("after the repair")
	}
}

// expectDoctor waits for the doctor to name the breakage's link as its first problem, with the
// status the breakage calls for.
func (d *demo) expectDoctor(b breakage) {
	r := d.waitDoctor(fmt.Sprintf("naming %s (%s)", b.link, b.status), 90*time.Second, func(r *doctor.Report) bool {
		first := r.FirstBroken
		if b.status == doctor.Warn {
			first = r.FirstProblem
		}
		return first == b.link && linkNamed(r, b.link).Status == b.status
	})
	l := linkNamed(r, b.link)
	d.e.tl.mark("anyroute doctor names %s: %s %s; hint: %s", b.link, strings.ToUpper(string(l.Status)), l.Evidence, l.Hint)
	d.e.t.Logf("breakage %s:\n%s", b.name, d.doctorText(d.e.t.Context()))
}

// divergesOnTarget runs `anyroute doctor -predict` with the prediction the run was held to (the
// same values, whose load.stages it reads, and delays), from the start of the load running now:
// the HPA's target, changed on the cluster to target, must be the divergence it names, with the
// explanation that says which value it left, and the doctor must exit 1.
func (d *demo) divergesOnTarget(target string) {
	e := d.e
	e.t.Helper()
	args := append([]string{"-predict", "-chart", filepath.Join(repoRoot, "deployments", "helm", "anyroute")}, d.predictArgs()...)
	out, code, err := d.runDoctor(e.t.Context(), "json", args...)
	if err != nil {
		e.t.Fatalf("anyroute doctor %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("anyroute doctor -o json: %v\n%s", err, out)
	}
	cmp := r.Comparison
	switch {
	case cmp == nil || cmp.Error != "":
		e.t.Fatalf("anyroute doctor %s made no comparison: %+v", strings.Join(args, " "), cmp)
	case code != 1 || cmp.Divergence == nil:
		e.t.Fatalf("anyroute doctor -predict with the HPA's target at %s: exit %d, divergence %+v; want exit 1 naming the target", target, code, cmp.Divergence)
	case cmp.Divergence.Link != "hpa" || cmp.Divergence.Observed != "target "+target ||
		!strings.Contains(cmp.Divergence.Explanation, "hpa.metric.targetAverageValue"):
		e.t.Fatalf("anyroute doctor -predict names %+v; want link hpa, observed target %s, the values' hpa.metric.targetAverageValue", *cmp.Divergence, target)
	}
	e.tl.mark("anyroute doctor -predict: the live timeline leaves the prediction at T+%.0fs, link %s: observed %s, predicted %s: %s",
		cmp.Divergence.AtSeconds, cmp.Divergence.Link, cmp.Divergence.Observed, cmp.Divergence.Predicted, cmp.Divergence.Explanation)
}
