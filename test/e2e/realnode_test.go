//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/anyroute/anyroute/test/kit"
	"github.com/anyroute/anyroute/transport"
)

// realNodeValues is the chart's own defaults plus what these scenarios need: two pods, no HPA,
// the lifecycle toggles on the admin port (for the liveness scenario), a metrics linger so that
// Prometheus scrapes each stopping pod's final counts, and a drain delay of 10 s instead of the
// chart's 5. The delay is how long a stopping pod keeps serving while its endpoint's removal
// reaches kube-proxy (within about a second here, its minimum sync period, but this 2-core node is
// busy with the e2e's own load); a cluster that propagates it slower loses requests whatever the
// workload.
const realNodeValues = `replicaCount: 2
hpa:
  enabled: false
config:
  admin:
    lifecycle: true
  shutdown:
    grace: 10s
    drain_delay: 10s
    metrics_linger: 3s
  routes:
    - name: steady
      match: /api/*
`

// TestRealNode proves what only a real node shows, on the chart installed with helm: a rolling
// restart under steady load loses no request (the client's successes equal the sum over the old
// and new pods' app_requests_total), a helm upgrade that changes only the routes reaches the
// running pods through the kubelet's ConfigMap update with no restart (configReload: inPlace),
// and a pod whose /healthz is turned off is restarted by the kubelet's liveness probe while the
// Service keeps answering.
func TestRealNode(t *testing.T) {
	e := newEnv(t)
	n := startNode(e)
	cp := n.cp
	prom := startPrometheus(e, cp)
	d := &demo{e: e, cp: cp, prom: prom, pods: &pods{n: n, ns: namespace}, sets: imageSets()}
	values := e.path("values-real-node.yaml")
	if err := os.WriteFile(values, []byte(realNodeValues), 0o600); err != nil {
		t.Fatal(err)
	}
	d.helmInstallValues(values)
	d.deployment = release
	d.min = 2
	initial := d.waitServerPods()
	svc := d.serviceAddr()
	e.tl.mark("pods %v Ready; the Service answers on %s", initial, svc)

	d.rollingRestartLosesNothing(svc)
	d.configReloadsInPlace(svc)
	d.livenessRestarts(svc)
}

// helmInstallValues installs the chart with a values file and the images' settings.
func (d *demo) helmInstallValues(values string) {
	e := d.e
	e.t.Helper()
	args := []string{"install", release, filepath.Join(repoRoot, "deployments", "helm", "anyroute"),
		"--namespace", namespace, "--create-namespace", "-f", values, "--timeout", "2m"}
	for _, s := range d.sets {
		args = append(args, "--set", s)
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := e.run(ctx, d.helmEnv(), kit.ProjectTool(e.t, "helm"), args...); err != nil {
		e.t.Fatalf("helm install: %v\n%s", err, out)
	}
	e.tl.mark("helm install %s deployments/helm/anyroute -n %s -f %s", release, namespace, filepath.Base(values))
}

// serviceAddr is the chart's Service as CLUSTER_IP:HTTP_PORT (kube-proxy routes it from here too).
func (d *demo) serviceAddr() string {
	svc, err := d.cp.client.CoreV1().Services(namespace).Get(d.e.t.Context(), release, metav1.GetOptions{})
	if err != nil {
		d.e.t.Fatal(err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" {
			return svc.Spec.ClusterIP + ":" + strconv.Itoa(int(p.Port))
		}
	}
	d.e.t.Fatalf("Service %s has no port named http: %v", release, svc.Spec.Ports)
	return ""
}

// load is a steady client of the Service: a few users, each a new connection per request (as
// kube-proxy balances connections), counting what was answered.
//
// A connection the Service refuses is dialed again, as a client that retries what never reached a
// server does, for up to refusedGrace: such a refusal comes from the node's Service rules between
// two sets of endpoints (kube-proxy rejects a ClusterIP it has no usable endpoint for), not from a
// pod, so it can lose no request a pod took. The refusals are counted and reported apart; a
// request refused for longer than refusedGrace is a failure, since that is the Service without an
// endpoint for longer than kube-proxy takes to move between two (a pod dropped from the Service by
// its readiness probe stays out for a probe period, 5 s).
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []failure // the first maxFailures
	refusals   []failure // the first maxFailures dials refused and dialed again
	stop       chan struct{}
	wg         sync.WaitGroup
}

// refusedGrace is how long one request's refused dials are retried before it counts as failed.
const refusedGrace = 2 * time.Second

// failure is one request the load did not get answered 200: when, and what it got instead.
type failure struct {
	at   time.Time
	what string
}

const maxFailures = 10000

func startLoad(url string, users int) *load {
	l := &load{stop: make(chan struct{})}
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	for range users {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				resp, err := l.get(client, url)
				switch {
				case err != nil:
					l.fail(err.Error())
				case resp.StatusCode != http.StatusOK:
					resp.Body.Close()
					l.fail(resp.Status)
				default:
					resp.Body.Close()
					l.ok.Add(1)
				}
			}
		})
	}
	return l
}

// get is one request, its refused dials dialed again every 20 ms for up to refusedGrace.
func (l *load) get(client *http.Client, url string) (*http.Response, error) {
	var first time.Time
	for {
		resp, err := client.Get(url)
		if err == nil || !dialRefused(err) {
			return resp, err
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if now.Sub(first) > refusedGrace {
			return nil, err
		}
		l.record(&l.refusals, err.Error())
		time.Sleep(20 * time.Millisecond)
	}
}

// dialRefused says whether a request failed dialing, refused: it never reached a server.
func dialRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}

func (l *load) fail(what string) {
	l.failed.Add(1)
	l.record(&l.failures, what)
}

func (l *load) record(list *[]failure, what string) {
	l.mu.Lock()
	if len(*list) < maxFailures {
		*list = append(*list, failure{time.Now(), what})
	}
	l.mu.Unlock()
}

// failureWindows sums the failures up as windows, failures less than a second apart in one, each
// with its span, its count and the distinct things the client got.
func (l *load) failureWindows() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return windows(l.failures, "failures")
}

// refusalWindows is the refused dials that were dialed again, as failureWindows sums failures up,
// after their count; "" for none.
func (l *load) refusalWindows() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.refusals) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d dials refused by the Service and dialed again:%s", len(l.refusals), windows(l.refusals, "refused"))
}

func windows(list []failure, noun string) string {
	var b strings.Builder
	for i := 0; i < len(list); {
		j := i + 1
		for j < len(list) && list[j].at.Sub(list[j-1].at) < time.Second {
			j++
		}
		seen := map[string]bool{}
		var whats []string
		for _, f := range list[i:j] {
			if !seen[f.what] && len(whats) < 3 {
				seen[f.what] = true
				whats = append(whats, f.what)
			}
		}
		fmt.Fprintf(&b, "\n    %s to %s: %d %s: %s", list[i].at.UTC().Format(stamp),
			list[j-1].at.UTC().Format(stamp), j-i, noun, strings.Join(whats, " | "))
		i = j
	}
	return b.String()
}

func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// rollingRestartLosesNothing restarts every pod (kubectl rollout restart) under steady load: the
// client must see only successes (a dial the Service refuses dialed again within refusedGrace, and
// reported), and once the stopped pods' last scrapes are in, the old and new pods' counts must sum
// to exactly what the client got.
func (d *demo) rollingRestartLosesNothing(svc string) {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	slices, err := watchSlices(ctx, d.cp.client, namespace, release)
	if err != nil {
		e.t.Fatal(err)
	}
	from := time.Now()
	l := startLoad("http://"+svc+"/api/rolling", 4)
	before := d.serverPodUIDs(ctx)
	time.Sleep(3 * time.Second) // some load on the old pods first
	deps := d.cp.client.AppsV1().Deployments(namespace)
	// What `kubectl rollout restart` does: a new annotation on the pod template.
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
		time.Now().Format(time.RFC3339))
	if _, err := deps.Patch(ctx, release, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.tl.mark("rolling restart of deploy/%s under load (%d requests answered so far)", release, l.ok.Load())
	d.until("the rollout to replace every pod", 4*time.Minute, func(ctx context.Context) (bool, string, error) {
		dep, err := deps.Get(ctx, release, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		now := d.serverPodUIDs(ctx)
		for uid := range now {
			if before[uid] {
				return false, rolloutState(dep) + fmt.Sprintf(", %d old pods left", len(before)), nil
			}
		}
		return rolledOut(dep) && len(now) == int(*dep.Spec.Replicas), rolloutState(dep), nil
	})
	time.Sleep(3 * time.Second) // some load on the new pods only
	l.finish()
	ok, failed := l.ok.Load(), l.failed.Load()
	history := slices.stop()
	e.tl.mark("rollout done; the client got %d answers, %d failures%s%s", ok, failed, l.failureWindows(), l.refusalWindows())
	if failed != 0 || ok == 0 {
		// What the Service's endpoints were, and what kube-proxy made of them, around the failures.
		e.t.Fatalf("during the rolling restart the client got %d failures and %d answers%s\n"+
			"EndpointSlices of Service %s:\n%s\nprobe failures:\n%s\nkube-proxy:\n%s", failed, ok, l.failureWindows(), release, history,
			d.probeFailures(from),
			d.pods.n.logWindow("kube-proxy", from, time.Now(), namespace+"/"+release, "SyncProxyRules", "Sync failed", "error"))
	}
	// Every series of the route, old pods' and new pods', at its highest (a stopped pod's last
	// scrape stays its value): their sum is what the pods counted.
	q := fmt.Sprintf(`sum(max_over_time(app_requests_total{namespace=%q,route="steady",code="200"}[30m]))`, namespace)
	d.prom.WaitEquals(e.t, q, float64(ok), 90*time.Second)
	e.tl.mark("old and new pods counted %d requests, exactly the client's", ok)
}

// serverPodUIDs is the set of the app pods' UIDs, terminating ones included.
func (d *demo) serverPodUIDs(ctx context.Context) map[string]bool {
	items, err := d.pods.list(ctx, "server")
	if err != nil {
		d.e.t.Fatal(err)
	}
	uids := map[string]bool{}
	for _, p := range items {
		uids[string(p.UID)] = true
	}
	return uids
}

func rolledOut(dep *appsv1.Deployment) bool {
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == *dep.Spec.Replicas &&
		s.Replicas == *dep.Spec.Replicas && s.AvailableReplicas == *dep.Spec.Replicas
}

func rolloutState(dep *appsv1.Deployment) string {
	s := dep.Status
	return fmt.Sprintf("replicas %d, updated %d, ready %d, available %d", s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas)
}

// podStates is each app pod's UID and restart count, by name.
func (d *demo) podStates(ctx context.Context) map[string]string {
	items, err := d.pods.list(ctx, "server")
	if err != nil {
		d.e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range items {
		restarts := int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		out[p.Name] = fmt.Sprintf("%s restarts=%d", p.UID, restarts)
	}
	return out
}

// configReloadsInPlace adds a route with helm upgrade: the kubelet updates the mounted ConfigMap,
// anyroute reloads it, and the new route answers on every pod, with the same pods never
// restarted.
func (d *demo) configReloadsInPlace(svc string) {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	before := d.podStates(ctx)
	client := kit.NewClient(5 * time.Second)
	// Before: a path no rule matches, answered by the catch-all "other".
	for _, a := range d.pods.serverAddrs() {
		if route, err := routeOf(client, "http://"+a+"/added/x"); err != nil || route != "other" {
			e.t.Fatalf("before the upgrade /added/x on %s: route %q (%v), want other", a, route, err)
		}
	}
	start := time.Now()
	added := d.e.path("values-added-route.yaml")
	if err := os.WriteFile(added, []byte("config:\n  routes:\n    - {name: steady, match: /api/*}\n    - {name: added, match: /added/*}\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	ctxUp, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if out, err := e.run(ctxUp, d.helmEnv(), kit.ProjectTool(e.t, "helm"), "upgrade", release,
		filepath.Join(repoRoot, "deployments", "helm", "anyroute"), "--namespace", namespace,
		"--reuse-values", "-f", added, "--timeout", "2m"); err != nil {
		e.t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	e.tl.mark("helm upgrade %s --reuse-values -f %s: a route added, nothing else", release, filepath.Base(added))
	d.until("the added route to answer on every pod", 4*time.Minute, func(ctx context.Context) (bool, string, error) {
		addrs := d.pods.serverAddrs()
		answered := 0
		for _, a := range addrs {
			if route, err := routeOf(client, "http://"+a+"/added/x"); err == nil && route == "added" {
				answered++
			}
		}
		return len(addrs) == len(before) && answered == len(addrs), fmt.Sprintf("%d of %v answer", answered, addrs), nil
	})
	e.tl.mark("the added route answers on every pod %v after the upgrade", time.Since(start).Round(time.Second))
	after := d.podStates(ctx)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		e.t.Fatalf("configReload inPlace: the pods changed or restarted:\nbefore %v\nafter  %v", before, after)
	}
	if route, err := routeOf(client, "http://"+svc+"/added/x"); err != nil || route != "added" {
		e.t.Fatalf("through the Service /added/x: route %q (%v), want added", route, err)
	}
	e.tl.mark("same pods, no restart: %v", after)
}

// routeOf asks for url and returns the name of the route rule that answered (the echo's route).
func routeOf(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var echo transport.Echo
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		return "", fmt.Errorf("%s: %s, body not an echo: %w", url, resp.Status, err)
	}
	return echo.Route, nil
}

// livenessRestarts turns one pod's /healthz off on its admin port: the kubelet's liveness probe
// must restart its container (restart count up, same pod), and the Service keep answering.
func (d *demo) livenessRestarts(svc string) {
	e := d.e
	e.t.Helper()
	ctx := e.t.Context()
	items, err := d.pods.list(ctx, "server")
	if err != nil {
		e.t.Fatal(err)
	}
	var victim *corev1.Pod
	for i := range items {
		if ready(&items[i]) {
			victim = &items[i]
			break
		}
	}
	if victim == nil {
		e.t.Fatal("no ready app pod")
	}
	admin := ""
	for _, p := range victim.Spec.Containers[0].Ports {
		if p.Name == "admin" {
			admin = victim.Status.PodIP + ":" + strconv.Itoa(int(p.ContainerPort))
		}
	}
	l := startLoad("http://"+svc+"/api/liveness", 2)
	resp, err := kit.NewClient(5*time.Second).Post("http://"+admin+"/-/healthz/disable", "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("POST /-/healthz/disable on %s: %s", victim.Name, resp.Status)
	}
	e.tl.mark("POST /-/healthz/disable on pod %s (%s)", victim.Name, admin)
	// The kubelet restarting the container is what is expected here, not a fault.
	d.pods.restartsExpected = true
	defer func() { d.pods.restartsExpected = false }()
	d.until("the kubelet to restart "+victim.Name, 3*time.Minute, func(ctx context.Context) (bool, string, error) {
		p, err := d.cp.client.CoreV1().Pods(namespace).Get(ctx, victim.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		restarts := int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		return restarts >= 1 && ready(p), fmt.Sprintf("restarts %d, ready %v", restarts, ready(p)), nil
	})
	e.tl.mark("pod %s restarted by its liveness probe and Ready again", victim.Name)
	l.finish()
	ok := l.ok.Load()
	e.tl.mark("meanwhile the Service answered %d requests, %d failed%s%s", ok, l.failed.Load(), l.failureWindows(), l.refusalWindows())
	if ok == 0 {
		e.t.Fatal("the Service answered nothing while one pod was restarted")
	}
}
