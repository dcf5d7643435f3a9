//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/anyroute/anyroute/test/kit"
)

// controlPlane is the real node's API server as the test reaches it: its URL, the admin token,
// a kubeconfig, and clients.
type controlPlane struct {
	url        string
	token      string
	kubeconfig string

	config  *rest.Config
	client  kubernetes.Interface
	dynamic dynamic.Interface
}

// hpaSyncPeriod is how often kube-controller-manager's HPA controller reconciles (15s by default).
const hpaSyncPeriod = 3 * time.Second

// The node's address (scripts/node.sh NODE_IP): the API server, the kubelet and the metrics
// servers the aggregator proxies to listen there; the pods' gateway on the bridge arnode0.
const nodeIP = "10.244.0.1"

// nodeBridge is the pods' bridge (scripts/node.sh BRIDGE).
const nodeBridge = "arnode0"

// nodeComponents are the processes scripts/node.sh up starts, each with a pid file in NODE_DIR/run.
var nodeComponents = []string{"etcd", "kube-apiserver", "containerd", "kube-controller-manager",
	"kubelet", "kube-scheduler", "kube-proxy"}

// node is the real single node: scripts/node.sh up, the same script `make cluster` runs, with its
// state in the run's directory and removed (node.sh down) at the end, an interrupted run too.
type node struct {
	e   *env
	dir string
	cp  *controlPlane
}

// The images make images builds, which the chart's pods run (imagePullPolicy Never).
func appImages() (anyroute, siege string) {
	anyroute, siege = "anyroute:latest", "anyroute-siege:latest"
	if v := os.Getenv("E2E_IMAGE"); v != "" {
		anyroute = v
	}
	if v := os.Getenv("E2E_SIEGE_IMAGE"); v != "" {
		siege = v
	}
	return anyroute, siege
}

// imageSets are the only values the test adds to the README's: the images make images built,
// never pulled.
func imageSets() []string {
	anyroute, siege := appImages()
	repo, tag := splitImage(anyroute)
	srepo, stag := splitImage(siege)
	return []string{"image.repository=" + repo, "image.tag=" + tag, "image.pullPolicy=Never",
		"siege.image.repository=" + srepo, "siege.image.tag=" + stag, "siege.image.pullPolicy=Never"}
}

func splitImage(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

func nodeScript() string { return filepath.Join(repoRoot, "scripts", "node.sh") }

func startNode(e *env) *node {
	e.t.Helper()
	// One node per machine: its bridge, addresses and ports are fixed.
	if _, err := net.InterfaceByName(nodeBridge); err == nil {
		e.t.Fatalf("the bridge %s exists: a node is up already (make cluster-down, or NODE_DIR=... scripts/node.sh down)", nodeBridge)
	}
	n := &node{e: e, dir: e.mkdir("node")}
	envVars := []string{"NODE_DIR=" + n.dir, "HPA_SYNC_PERIOD=" + hpaSyncPeriod.String()}
	unregister := kit.OnInterrupt(func() { _, _ = n.down() }) // the process is ending: nobody to tell
	e.t.Cleanup(func() {
		unregister()
		if e.t.Failed() && n.cp != nil {
			e.t.Logf("the node's pods and events at the failure:\n%s", n.describe())
		}
		if out, err := n.down(); err != nil {
			e.t.Errorf("scripts/node.sh down: %v\n%s", err, out)
		}
	})
	e.whenFailed(func() { e.t.Logf("the node's components:\n%s", n.logTails()) })
	ctx, cancel := context.WithTimeout(e.t.Context(), 6*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.run(ctx, envVars, nodeScript(), "up")
	if err != nil {
		e.t.Fatalf("scripts/node.sh up: %v\n%s\n%s", err, out, n.logTails())
	}
	e.tl.mark("scripts/node.sh up: node Ready, CoreDNS Available after %v", time.Since(start).Round(time.Second))
	anyroute, siege := appImages()
	if out, err := e.run(ctx, envVars, nodeScript(), "import", anyroute, siege); err != nil {
		e.t.Fatalf("scripts/node.sh import: %v\n%s", err, out)
	}
	e.tl.mark("images %s and %s imported from Docker into containerd", anyroute, siege)
	n.cp = n.connect()
	return n
}

// down stops the node and removes what it made (processes, pods, mounts, cgroups, rules, bridge).
func (n *node) down() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := kit.Run(ctx, kit.Cmd{Path: nodeScript(), Args: []string{"down"}, Env: []string{"NODE_DIR=" + n.dir}})
	return r.Output, err
}

// downStale stops the node of a run that was killed before its cleanups ran, so that its
// directory (mounts inside) can go.
func downStale(dir string) {
	if _, err := os.Stat(filepath.Join(dir, "node", "run")); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, _ = kit.Run(ctx, kit.Cmd{Path: nodeScript(), Args: []string{"down"}, Env: []string{"NODE_DIR=" + filepath.Join(dir, "node")}})
}

// logTails is the end of each component's log, for a failure.
func (n *node) logTails() string {
	var b strings.Builder
	for _, c := range nodeComponents {
		data, err := os.ReadFile(filepath.Join(n.dir, "logs", c+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s, last lines:\n%s\n", c, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}

// describe is kubectl's view of the pods and the recent events, for a failure.
func (n *node) describe() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kubectl := filepath.Join(repoRoot, ".tools", "bin", "kubectl")
	var b strings.Builder
	for _, args := range [][]string{{"get", "pods", "-A", "-o", "wide"}, {"get", "events", "-A", "--sort-by=.lastTimestamp"}} {
		r, err := kit.Run(ctx, kit.Cmd{Path: kubectl, Args: append([]string{"--kubeconfig", n.cp.kubeconfig}, args...)})
		fmt.Fprintf(&b, "$ kubectl %s (%v)\n%s\n", strings.Join(args, " "), err, r.Output)
	}
	return b.String()
}

// err names a node component that is no longer running.
func (n *node) err() error {
	for _, c := range nodeComponents {
		data, err := os.ReadFile(filepath.Join(n.dir, "run", c+".pid"))
		if err != nil {
			return fmt.Errorf("node: no pid file for %s: %w", c, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || syscall.Kill(pid, 0) != nil {
			return fmt.Errorf("node: %s (pid %s) is not running; see %s", c, strings.TrimSpace(string(data)),
				filepath.Join(n.dir, "logs", c+".log"))
		}
	}
	return nil
}

// connect reads the kubeconfig node.sh wrote and makes the clients.
func (n *node) connect() *controlPlane {
	e := n.e
	e.t.Helper()
	tokens, err := os.ReadFile(filepath.Join(n.dir, "pki", "tokens.csv"))
	if err != nil {
		e.t.Fatal(err)
	}
	token, _, _ := strings.Cut(string(tokens), ",")
	cp := &controlPlane{url: "https://" + nodeIP + ":16443", token: token, kubeconfig: filepath.Join(n.dir, "kubeconfig")}
	cp.config = &rest.Config{
		Host:            cp.url,
		BearerToken:     cp.token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             50,
		Burst:           100,
		Timeout:         30 * time.Second,
	}
	if cp.client, err = kubernetes.NewForConfig(cp.config); err != nil {
		e.t.Fatal(err)
	}
	if cp.dynamic, err = dynamic.NewForConfig(cp.config); err != nil {
		e.t.Fatal(err)
	}
	return cp
}

func mustFreePort(e *env, host string) string {
	p, err := kit.FreePortOn(host)
	if err != nil {
		e.t.Fatal(err)
	}
	return strconv.Itoa(p)
}

// pods reads what the kubelet reports of the demo's pods through the API, as kubectl would.
type pods struct {
	n  *node
	ns string

	restartsExpected bool // a container in CrashLoopBackOff is no failure (the liveness scenario)
}

// list returns the namespace's pods of a component (server or siege).
func (p *pods) list(ctx context.Context, component string) ([]corev1.Pod, error) {
	l, err := p.n.cp.client.CoreV1().Pods(p.ns).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=" + component})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// ready reports a pod running, Ready and not being deleted.
func ready(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// running returns the names of the ready pods of a component, sorted.
func (p *pods) running(component string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	items, err := p.list(ctx, component)
	if err != nil {
		return nil
	}
	var names []string
	for i := range items {
		if ready(&items[i]) {
			names = append(names, items[i].Name)
		}
	}
	sort.Strings(names)
	return names
}

// serverAddrs returns POD_IP:HTTP_PORT of each ready app pod (the pod IPs on the bridge are
// reachable from this machine).
func (p *pods) serverAddrs() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	items, err := p.list(ctx, "server")
	if err != nil {
		return nil
	}
	var addrs []string
	for i := range items {
		if !ready(&items[i]) || items[i].Status.PodIP == "" {
			continue
		}
		for _, port := range items[i].Spec.Containers[0].Ports {
			if port.Name == "http" {
				addrs = append(addrs, items[i].Status.PodIP+":"+strconv.Itoa(int(port.ContainerPort)))
			}
		}
	}
	return addrs
}

// fatalWaits are the container waiting reasons no wait recovers from.
var fatalWaits = map[string]bool{"ErrImageNeverPull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
	"CrashLoopBackOff": true}

// err reports a node component that stopped, or a pod of the namespace that cannot run.
func (p *pods) err() error {
	if err := p.n.err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	l, err := p.n.cp.client.CoreV1().Pods(p.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil // a slow API server is not a broken pod; the waits time out with their state
	}
	for _, pod := range l.Items {
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && fatalWaits[w.Reason] &&
				(w.Reason != "CrashLoopBackOff" || !p.restartsExpected) {
				return fmt.Errorf("pod %s, container %s: %s: %s", pod.Name, cs.Name, w.Reason, w.Message)
			}
		}
	}
	return nil
}
