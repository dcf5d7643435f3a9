//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/anyroute/anyroute/test/kit"
)

// kubelet plays the kubelet's part, and nothing more, for the pods of one namespace: for each pod
// the controllers create it runs the container's image as a local process (the image names map to
// bin/anyroute and to the siege image's entrypoint script), with the pod's args and env, its
// ConfigMap and emptyDir volumes as directories, and each container port mapped to a free
// loopback port; it probes readiness as the pod says, reports the pod Running and Ready (with a
// pod IP) through the status subresource, gives Prometheus a scrape target for pods annotated
// prometheus.io/scrape, and stops the process when the pod goes away.
//
// The pods' Service names in siege's URLs resolve, as cluster DNS and kube-proxy would make them,
// to the Service's ready pods: each URL is listed once per ready backend, so siege's users go
// round-robin across them, and siege is restarted with the new list when the backends change.
type kubelet struct {
	e    *env
	cp   *controlPlane
	net  *testNet
	prom *prometheus
	ns   string

	pods  cache.Indexer
	queue workqueue.TypedInterface[string]
	stop  chan struct{}
	wg    sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*podRun // by pod name
	errs []error
}

// podRun is one pod's running container.
type podRun struct {
	pod       *corev1.Pod
	component string // the pod's app.kubernetes.io/component: server or siege
	image     string // the image's base name: anyroute or anyroute-siege
	podIP     string
	dir       string
	ports     map[int32]int  // container port → loopback port
	proc      *kit.Proc      // nil while a siege pod waits for a backend
	forwards  []net.Listener // pod IP:container port → the loopback port
	ready     bool
	backends  string // siege: the backends its URLs point at
}

// siegeKey is the queue key that makes the kubelet re-point siege at the ready backends.
const siegeKey = "\x00siege"

func startKubelet(e *env, cp *controlPlane, n *testNet, prom *prometheus, ns string) *kubelet {
	k := &kubelet{
		e: e, cp: cp, net: n, prom: prom, ns: ns,
		queue: workqueue.NewTyped[string](),
		stop:  make(chan struct{}),
		runs:  map[string]*podRun{},
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cp.client, 0, informers.WithNamespace(ns))
	informer := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			_, name, _ := cache.SplitMetaNamespaceKey(key)
			k.queue.Add(name)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		e.t.Fatal(err)
	}
	k.pods = informer.GetIndexer()
	factory.Start(k.stop)
	factory.WaitForCacheSync(k.stop)
	k.wg.Add(1)
	go k.work()
	e.t.Cleanup(k.shutdown)
	return k
}

// shutdown stops watching and ends every process the kubelet started.
func (k *kubelet) shutdown() {
	close(k.stop)
	k.queue.ShutDown()
	k.wg.Wait()
	k.mu.Lock()
	runs := make([]*podRun, 0, len(k.runs))
	for _, r := range k.runs {
		runs = append(runs, r)
	}
	k.runs = map[string]*podRun{}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runs {
		closeAll(r.forwards)
		if r.proc != nil {
			wg.Go(func() { r.proc.Stop(3 * time.Second) })
		}
	}
	wg.Wait()
}

func (k *kubelet) work() {
	defer k.wg.Done()
	for {
		key, quit := k.queue.Get()
		if quit {
			return
		}
		var err error
		if key == siegeKey {
			err = k.syncSiege()
		} else {
			err = k.syncPod(key)
		}
		if err != nil {
			k.fail(err)
		}
		k.queue.Done(key)
	}
}

// fail records an error the test reports at its next check.
func (k *kubelet) fail(err error) {
	k.mu.Lock()
	k.errs = append(k.errs, err)
	k.mu.Unlock()
	k.e.tl.mark("kubelet: %v", err)
}

// err returns the kubelet's first error, including a process that ended on its own.
func (k *kubelet) err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.errs) > 0 {
		return k.errs[0]
	}
	for _, r := range k.runs {
		if r.proc != nil {
			if err := r.proc.UnexpectedExit(); err != nil {
				return fmt.Errorf("pod %s: %w", r.pod.Name, err)
			}
		}
	}
	return nil
}

func (k *kubelet) syncPod(name string) error {
	obj, exists, err := k.pods.GetByKey(k.ns + "/" + name)
	if err != nil {
		return err
	}
	k.mu.Lock()
	run := k.runs[name]
	k.mu.Unlock()
	var pod *corev1.Pod
	if exists {
		pod = obj.(*corev1.Pod)
	}
	gone := pod == nil || pod.DeletionTimestamp != nil || (run != nil && run.pod.UID != pod.UID)
	switch {
	case gone && run != nil:
		k.kill(run)
		return nil
	case gone:
		return nil
	case run == nil:
		return k.startPod(pod)
	case run.proc == nil && run.component == "siege":
		return k.syncSiege()
	}
	return nil
}

// kill stops a pod's process (SIGTERM, then SIGKILL after its termination grace period), as the
// kubelet does when a pod is deleted.
func (k *kubelet) kill(run *podRun) {
	k.mu.Lock()
	delete(k.runs, run.pod.Name)
	k.mu.Unlock()
	k.updateTargets()
	closeAll(run.forwards)
	grace := 30 * time.Second
	if s := run.pod.Spec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	if run.proc != nil {
		k.wg.Go(func() { run.proc.Stop(grace) })
	}
	k.e.tl.mark("pod %s deleted: %s process stopped", run.pod.Name, run.image)
	if run.component == "server" {
		k.queue.Add(siegeKey)
	}
}

// startPod prepares a pod's volumes, ports and environment and starts its container, or for
// siege waits until the Service it loads has a ready backend.
func (k *kubelet) startPod(pod *corev1.Pod) error {
	if len(pod.Spec.Containers) != 1 {
		return fmt.Errorf("pod %s: %d containers, the stand-in runs one", pod.Name, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ip, err := k.net.podIP()
	if err != nil {
		return err
	}
	dir := filepath.Join(k.e.dir, "pods", pod.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	run := &podRun{
		pod:       pod.DeepCopy(),
		component: pod.Labels["app.kubernetes.io/component"],
		image:     imageName(c.Image),
		podIP:     ip,
		dir:       dir,
		ports:     map[int32]int{},
	}
	for _, p := range c.Ports {
		port, err := kit.FreePortOn("127.0.0.1")
		if err != nil {
			return err
		}
		run.ports[p.ContainerPort] = port
		l, err := forward(net.JoinHostPort(ip, strconv.Itoa(int(p.ContainerPort))), "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		run.forwards = append(run.forwards, l)
	}
	k.mu.Lock()
	k.runs[pod.Name] = run
	k.mu.Unlock()
	switch run.image {
	case "anyroute":
		return k.startAnyroute(run)
	case "anyroute-siege":
		return k.syncSiege()
	default:
		return fmt.Errorf("pod %s: no local stand-in for image %q", pod.Name, c.Image)
	}
}

// forward accepts TCP connections on from and relays each to to, until its listener is closed.
func forward(from, to string) (net.Listener, error) {
	l, err := net.Listen("tcp", from)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				u, err := net.DialTimeout("tcp", to, 5*time.Second)
				if err != nil {
					c.Close()
					return
				}
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
				c.Close()
				u.Close()
			}()
		}
	}()
	return l, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// imageName is an image reference's last path element without tag or digest.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	name := path.Base(ref)
	name, _, _ = strings.Cut(name, ":")
	return name
}

func (k *kubelet) startAnyroute(run *podRun) error {
	c := run.pod.Spec.Containers[0]
	mounts, err := k.volumes(run)
	if err != nil {
		return err
	}
	args := k.rewriteArgs(run, c.Args, mounts)
	envVars, err := k.containerEnv(run, c.Env)
	if err != nil {
		return err
	}
	if err := k.launch(run, envVars, anyrouteBin, args...); err != nil {
		return err
	}
	k.e.tl.mark("pod %s: anyroute started (API 127.0.0.1:%d, admin 127.0.0.1:%d, pod IP %s)",
		run.pod.Name, run.ports[portOf(c, "http")], run.ports[portOf(c, "admin")], run.podIP)
	return nil
}

func portOf(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// launch starts the container's process, reports the pod Running, and in the background waits
// for readiness, reports it Ready and, once it ends on its own, records that.
func (k *kubelet) launch(run *podRun, envVars []string, bin string, args ...string) error {
	proc, err := kit.Start(kit.Cmd{Name: run.image + " " + run.pod.Name, Path: bin, Args: args, Env: envVars,
		LogFile: filepath.Join(run.dir, "container.log")})
	if err != nil {
		return err
	}
	k.e.track(proc)
	started := metav1.Now()
	k.mu.Lock()
	run.proc = proc
	k.mu.Unlock()
	k.updateTargets()
	if err := k.reportStatus(run, proc, started, false); err != nil {
		return err
	}
	k.wg.Go(func() { k.awaitReady(run, proc, started) })
	return nil
}

// awaitReady probes the container as its readinessProbe says (or waits a moment when it has
// none), then reports the pod Ready.
func (k *kubelet) awaitReady(run *podRun, proc *kit.Proc, started metav1.Time) {
	probe := run.pod.Spec.Containers[0].ReadinessProbe
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-k.stop:
			return
		case <-proc.Done():
			return // UnexpectedExit reports it, unless the kubelet stopped it
		case <-time.After(100 * time.Millisecond):
		}
		if k.probe(run, probe, started) {
			break
		}
		if time.Now().After(deadline) {
			k.fail(fmt.Errorf("pod %s: not ready within 30s; its log ends:\n%s", run.pod.Name, proc.Tail(20)))
			return
		}
	}
	k.mu.Lock()
	current := k.runs[run.pod.Name] == run && run.proc == proc
	if current {
		run.ready = true
	}
	k.mu.Unlock()
	if !current {
		return
	}
	if err := k.reportStatus(run, proc, started, true); err != nil {
		k.fail(err)
		return
	}
	k.e.tl.mark("pod %s Ready", run.pod.Name)
	if run.component == "server" {
		k.queue.Add(siegeKey)
	}
}

// probe runs an httpGet readiness probe once; a container without one is ready once started.
func (k *kubelet) probe(run *podRun, probe *corev1.Probe, started metav1.Time) bool {
	if probe == nil || probe.HTTPGet == nil {
		return time.Since(started.Time) > 500*time.Millisecond
	}
	port, err := containerPort(run.pod.Spec.Containers[0], probe.HTTPGet.Port)
	if err != nil {
		k.fail(fmt.Errorf("pod %s: readiness probe: %w", run.pod.Name, err))
		return false
	}
	resp, err := kit.NewClient(time.Second).Get(fmt.Sprintf("http://127.0.0.1:%d%s", run.ports[port], probe.HTTPGet.Path))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// containerPort resolves a named or numbered port of a container.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, error) {
	if p.Type == intstr.Int {
		return p.IntVal, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, p.StrVal)
}

// reportStatus writes the pod's status as a kubelet would: Running with a pod IP, and Ready once
// the probe passed.
func (k *kubelet) reportStatus(run *podRun, proc *kit.Proc, started metav1.Time, ready bool) error {
	ctx := context.Background()
	pods := k.cp.client.CoreV1().Pods(k.ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, run.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != run.pod.UID {
			return nil
		}
		c := pod.Spec.Containers[0]
		readyStatus := corev1.ConditionFalse
		if ready {
			readyStatus = corev1.ConditionTrue
		}
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = run.podIP
		pod.Status.PodIPs = []corev1.PodIP{{IP: run.podIP}}
		pod.Status.StartTime = &started
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: started},
			{Type: corev1.ContainersReady, Status: readyStatus, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: readyStatus, LastTransitionTime: now},
		}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "e2e://" + c.Image,
			ContainerID: fmt.Sprintf("e2e://%d", proc.Pid()),
			Ready:       ready,
			Started:     ptr.To(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}}
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("pod %s: updating status: %w", run.pod.Name, err)
	}
	return nil
}

// volumes makes the pod's ConfigMap and emptyDir volumes as directories and returns the
// container's mounts: mount path → directory.
func (k *kubelet) volumes(run *podRun) (map[string]string, error) {
	dirs := map[string]string{}
	for _, v := range run.pod.Spec.Volumes {
		dir := filepath.Join(run.dir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		dirs[v.Name] = dir
		switch {
		case v.ConfigMap != nil:
			cm, err := k.cp.client.CoreV1().ConfigMaps(k.ns).Get(context.Background(), v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("pod %s: volume %s: %w", run.pod.Name, v.Name, err)
			}
			for key, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, key), []byte(data), 0o644); err != nil {
					return nil, err
				}
			}
		case v.EmptyDir != nil:
		default:
			return nil, fmt.Errorf("pod %s: volume %s: only configMap and emptyDir volumes are stood in for", run.pod.Name, v.Name)
		}
	}
	mounts := map[string]string{}
	for _, m := range run.pod.Spec.Containers[0].VolumeMounts {
		dir, ok := dirs[m.Name]
		if !ok {
			return nil, fmt.Errorf("pod %s: mount of unknown volume %s", run.pod.Name, m.Name)
		}
		mounts[m.MountPath] = dir
	}
	return mounts, nil
}

// rewriteArgs points the container's arguments at the pod's local files and ports: a path under
// a mount path moves to the volume's directory, and a listen address ":PORT" (or "0.0.0.0:PORT")
// of a container port becomes the loopback port it is mapped to.
func (k *kubelet) rewriteArgs(run *podRun, args []string, mounts map[string]string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		for mountPath, dir := range mounts {
			a = strings.ReplaceAll(a, strings.TrimSuffix(mountPath, "/")+"/", dir+"/")
		}
		for cport, local := range run.ports {
			for _, host := range []string{"=:", "=0.0.0.0:"} {
				if strings.HasSuffix(a, host+strconv.Itoa(int(cport))) {
					a = strings.TrimSuffix(a, host+strconv.Itoa(int(cport))) + "=127.0.0.1:" + strconv.Itoa(local)
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// containerEnv resolves the container's env: literal values and the downward API fields a
// kubelet fills in.
func (k *kubelet) containerEnv(run *podRun, vars []corev1.EnvVar) ([]string, error) {
	out := make([]string, 0, len(vars))
	for _, v := range vars {
		value := v.Value
		if v.ValueFrom != nil {
			if v.ValueFrom.FieldRef == nil {
				return nil, fmt.Errorf("pod %s: env %s: only fieldRef is stood in for", run.pod.Name, v.Name)
			}
			switch v.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				value = run.pod.Name
			case "metadata.namespace":
				value = run.pod.Namespace
			case "status.podIP":
				value = run.podIP
			default:
				return nil, fmt.Errorf("pod %s: env %s: field %s is not stood in for", run.pod.Name, v.Name, v.ValueFrom.FieldRef.FieldPath)
			}
		}
		out = append(out, v.Name+"="+value)
	}
	return out, nil
}

// updateTargets gives Prometheus one target per running pod annotated prometheus.io/scrape,
// at the loopback port its prometheus.io/port is mapped to.
func (k *kubelet) updateTargets() {
	k.mu.Lock()
	var targets []scrapeTarget
	for _, r := range k.runs {
		a := r.pod.Annotations
		if r.proc == nil || a["prometheus.io/scrape"] != "true" {
			continue
		}
		port, err := strconv.Atoi(a["prometheus.io/port"])
		if err != nil {
			continue
		}
		p := a["prometheus.io/path"]
		if p == "" {
			p = "/metrics"
		}
		targets = append(targets, scrapeTarget{
			addr: "127.0.0.1:" + strconv.Itoa(r.ports[int32(port)]), path: p,
			namespace: r.pod.Namespace, pod: r.pod.Name,
		})
	}
	k.mu.Unlock()
	sort.Slice(targets, func(i, j int) bool { return targets[i].pod < targets[j].pod })
	if err := k.prom.setTargets(targets); err != nil {
		k.fail(err)
	}
}

// syncSiege (re)starts every siege pod's process with its URLs pointing at the ready backends of
// the Services they name; a siege pod waits while its Service has no ready backend.
func (k *kubelet) syncSiege() error {
	k.mu.Lock()
	var sieges []*podRun
	for _, r := range k.runs {
		if r.image == "anyroute-siege" {
			sieges = append(sieges, r)
		}
	}
	k.mu.Unlock()
	for _, run := range sieges {
		if err := k.syncOneSiege(run); err != nil {
			return err
		}
	}
	return nil
}

func (k *kubelet) syncOneSiege(run *podRun) error {
	c := run.pod.Spec.Containers[0]
	envVars, err := k.containerEnv(run, c.Env)
	if err != nil {
		return err
	}
	var urls string
	for i, kv := range envVars {
		if name, value, _ := strings.Cut(kv, "="); name == "SIEGE_URLS" {
			if urls, err = k.resolveURLs(value); err != nil {
				return fmt.Errorf("pod %s: SIEGE_URLS: %w", run.pod.Name, err)
			}
			envVars[i] = "SIEGE_URLS=" + urls
		}
	}
	if urls == run.backends {
		return nil
	}
	k.mu.Lock()
	old := run.proc
	run.proc, run.ready, run.backends = nil, false, urls
	k.mu.Unlock()
	if old != nil {
		old.Stop(5 * time.Second)
	}
	if urls == "" {
		k.e.tl.mark("pod %s: siege waits for a ready backend", run.pod.Name)
		return nil
	}
	mounts, err := k.volumes(run)
	if err != nil {
		return err
	}
	// The entrypoint makes its rc and URL files with mktemp, under the pod's /tmp volume.
	if tmp, ok := mounts["/tmp"]; ok {
		envVars = append(envVars, "TMPDIR="+tmp)
	}
	script := filepath.Join(repoRoot, "deployments", "docker", "siege-entrypoint.sh")
	if err := k.launch(run, envVars, "/bin/sh", script); err != nil {
		return err
	}
	k.e.tl.mark("pod %s: siege started against %d backend(s): %s", run.pod.Name, countBackends(urls), urls)
	return nil
}

func countBackends(urls string) int {
	hosts := map[string]bool{}
	for _, u := range strings.Fields(urls) {
		if p, err := url.Parse(u); err == nil {
			hosts[p.Host] = true
		}
	}
	return len(hosts)
}

// resolveURLs rewrites URLs on a Service's cluster DNS name (NAME.NAMESPACE.svc[.cluster.local])
// into one URL per ready backend of the Service, at the loopback port of the backend's target
// port; "" when the Service has no ready backend.
func (k *kubelet) resolveURLs(value string) (string, error) {
	var out []string
	for _, raw := range strings.Fields(value) {
		u, err := url.Parse(raw)
		if err != nil {
			return "", err
		}
		addrs, err := k.serviceBackends(u)
		if err != nil || len(addrs) == 0 {
			return "", err
		}
		for _, a := range addrs {
			v := *u
			v.Host = a
			out = append(out, v.String())
		}
	}
	return strings.Join(out, " "), nil
}

// serviceBackends returns the loopback addresses of the ready pods behind the Service a URL names.
func (k *kubelet) serviceBackends(u *url.URL) ([]string, error) {
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) < 3 || parts[2] != "svc" {
		return nil, fmt.Errorf("%s is not a Service's cluster DNS name (NAME.NAMESPACE.svc)", u.Hostname())
	}
	svc, err := k.cp.client.CoreV1().Services(parts[1]).Get(context.Background(), parts[0], metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", u.Host, err)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if strconv.Itoa(int(svc.Spec.Ports[i].Port)) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return nil, fmt.Errorf("service %s/%s has no port %s", svc.Namespace, svc.Name, port)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("service %s/%s has no selector", svc.Namespace, svc.Name)
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	k.mu.Lock()
	defer k.mu.Unlock()
	var addrs []string
	for _, r := range k.runs {
		if !r.ready || r.pod.Namespace != svc.Namespace || !selector.Matches(labels.Set(r.pod.Labels)) {
			continue
		}
		cport, err := containerPort(r.pod.Spec.Containers[0], sp.TargetPort)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(r.ports[cport]))
	}
	sort.Strings(addrs)
	return addrs, nil
}

// serverAddrs returns the loopback addresses of the ready app pods' http ports.
func (k *kubelet) serverAddrs() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var addrs []string
	for _, r := range k.runs {
		if r.component == "server" && r.ready && r.proc != nil {
			if port := r.ports[portOf(r.pod.Spec.Containers[0], "http")]; port != 0 {
				addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
			}
		}
	}
	return addrs
}

// running returns the names of the ready pods of a component, sorted.
func (k *kubelet) running(component string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var names []string
	for name, r := range k.runs {
		if r.component == component && r.ready && r.proc != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}
