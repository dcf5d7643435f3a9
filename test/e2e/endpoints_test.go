//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// stamp is the clock format shared by the load's failures, the EndpointSlice history and the
// node components' logs (klog's, in UTC on these machines), so that the three line up.
const stamp = "15:04:05.000"

// sliceHistory records every change of a Service's EndpointSlices while it runs: when, and each
// endpoint's pod with its conditions. It is what kube-proxy is told to route by, so when a client
// of the Service fails, the history says whether the Service had a ready endpoint at that moment.
type sliceHistory struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lines  []string
}

func watchSlices(ctx context.Context, client kubernetes.Interface, ns, svc string) (*sliceHistory, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := client.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		cancel()
		return nil, err
	}
	h := &sliceHistory{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		defer w.Stop()
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			line := fmt.Sprintf("%s %s %s: %s", time.Now().UTC().Format(stamp), ev.Type, s.Name, describeEndpoints(s, ev.Type))
			h.mu.Lock()
			h.lines = append(h.lines, line)
			h.mu.Unlock()
		}
	}()
	return h, nil
}

// describeEndpoints is each endpoint as pod(address) and the conditions that hold: ready,
// serving, terminating; "-" for none.
func describeEndpoints(s *discoveryv1.EndpointSlice, t watch.EventType) string {
	if t == watch.Deleted {
		return "deleted"
	}
	var eps []string
	for _, ep := range s.Endpoints {
		name := strings.Join(ep.Addresses, ",")
		if ep.TargetRef != nil {
			name = ep.TargetRef.Name + "(" + name + ")"
		}
		var conds []string
		for _, c := range []struct {
			name string
			v    *bool
		}{{"ready", ep.Conditions.Ready}, {"serving", ep.Conditions.Serving}, {"terminating", ep.Conditions.Terminating}} {
			if c.v != nil && *c.v {
				conds = append(conds, c.name)
			}
		}
		if len(conds) == 0 {
			conds = []string{"-"}
		}
		eps = append(eps, name+" "+strings.Join(conds, "+"))
	}
	sort.Strings(eps)
	if len(eps) == 0 {
		return "no endpoints"
	}
	return strings.Join(eps, "; ")
}

// stop ends the watch and returns the history.
func (h *sliceHistory) stop() string {
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.lines, "\n")
}

// logWindow is what a node component logged between from and to (klog lines, whose time of day
// is read with the day of from), with only the lines that contain one of want when want is given.
func (n *node) logWindow(component string, from, to time.Time, want ...string) string {
	data, err := os.ReadFile(filepath.Join(n.dir, "logs", component+".log"))
	if err != nil {
		return err.Error()
	}
	from, to = from.UTC(), to.UTC()
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		// klog: Lmmdd hh:mm:ss.uuuuuu ...
		if len(line) < 21 {
			continue
		}
		tod, err := time.Parse("15:04:05.000000", line[6:21])
		if err != nil {
			continue
		}
		at := time.Date(from.Year(), from.Month(), from.Day(), tod.Hour(), tod.Minute(), tod.Second(), tod.Nanosecond(), time.UTC)
		if at.Before(from) || at.After(to) {
			continue
		}
		if len(want) > 0 && !containsAny(line, want) {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// probeFailures is every probe failure the kubelet reported in the namespace since from (its
// Unhealthy events, which it records at any log level), one line each, oldest first: a readiness
// failure takes a pod out of the Service's ready endpoints, so beside the EndpointSlice history it
// says why an endpoint stopped being ready.
func (d *demo) probeFailures(from time.Time) string {
	list, err := d.cp.client.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Unhealthy"})
	if err != nil {
		return err.Error()
	}
	var evs []corev1.Event
	for _, ev := range list.Items {
		if last := eventTime(ev); !last.Before(from) {
			evs = append(evs, ev)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return eventTime(evs[i]).Before(eventTime(evs[j])) })
	var lines []string
	for _, ev := range evs {
		lines = append(lines, fmt.Sprintf("%s %s x%d: %s", eventTime(ev).UTC().Format(stamp), ev.InvolvedObject.Name, max(ev.Count, 1), ev.Message))
	}
	if len(lines) == 0 {
		return "none"
	}
	return strings.Join(lines, "\n")
}

// eventTime is when an event last happened, from whichever of its clocks the reporter set.
func eventTime(ev corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}
