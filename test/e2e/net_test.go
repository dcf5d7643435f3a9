//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/anyroute/anyroute/test/kit"
)

// testNet is a network interface the test makes and removes, holding the addresses that must
// not be loopback: the metrics servers' (prometheus-adapter's, KEDA's), because the aggregator
// refuses loopback endpoint addresses, and the pods' (the API server's pod proxy refuses loopback
// too). It is a dummy interface, or where the kernel has no dummy driver (some containers)
// a bridge without ports, which serves the same: its address is local, and the rest of its /24 is
// routed into an interface that delivers nowhere, so the pods' IPs and the Service IPs, which are
// only recorded in the API and never dialled, could not leave the machine either.
// The addresses are from TEST-NET-2 (RFC 5737), documentation addresses that no network uses;
// this machine's own network may well be TEST-NET-1.
type testNet struct {
	ip          string // the ip command
	link        string
	adapterIP   string
	serviceCIDR string

	mu      sync.Mutex
	nextPod int
}

const (
	testNetPrefix   = "198.51.100."
	testNetCIDR     = testNetPrefix + "0/24"
	firstPodHost    = 16
	lastPodHost     = 127
	linkNamePrefix  = "are2e"
	serviceCIDRHost = "128/25"
)

func newTestNet(e *env) *testNet {
	e.t.Helper()
	ip := kit.SystemTool(e.t, "ip")
	removeStaleLinks(e, ip)
	if out, err := exec.Command(ip, "-o", "addr", "show", "to", testNetCIDR).CombinedOutput(); err != nil || len(out) > 0 {
		e.t.Fatalf("%s is already in use on this machine (%v):\n%s", testNetCIDR, err, out)
	}
	n := &testNet{
		ip:          ip,
		link:        fmt.Sprintf("%s%d", linkNamePrefix, os.Getpid()),
		adapterIP:   testNetPrefix + "2",
		serviceCIDR: testNetPrefix + serviceCIDRHost,
		nextPod:     firstPodHost,
	}
	del := func() { _ = exec.Command(ip, "link", "del", n.link).Run() }
	unregister := kit.OnInterrupt(del)
	e.t.Cleanup(func() {
		if out, err := exec.Command(ip, "link", "del", n.link).CombinedOutput(); err != nil {
			e.t.Errorf("removing interface %s: %v %s", n.link, err, out)
		}
		unregister()
	})
	kind := "dummy"
	if err := exec.Command(ip, "link", "add", n.link, "type", "dummy").Run(); err != nil {
		kind = "bridge"
		if out, err := exec.Command(ip, "link", "add", n.link, "type", "bridge").CombinedOutput(); err != nil {
			e.t.Fatalf("ip link add %s type dummy (or bridge): %v %s (the test needs root, or CAP_NET_ADMIN)", n.link, err, out)
		}
	}
	for _, args := range [][]string{
		{"addr", "add", n.adapterIP + "/24", "dev", n.link},
		{"link", "set", n.link, "up"},
	} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			e.t.Fatalf("ip %s: %v %s (the test needs root, or CAP_NET_ADMIN, for a dummy interface)",
				strings.Join(args, " "), err, out)
		}
	}
	// Nothing may dial the address before it is certainly local.
	out, err := exec.Command(ip, "route", "get", n.adapterIP).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "local "+n.adapterIP) {
		e.t.Fatalf("%s is not a local address after adding it to %s: %v %s", n.adapterIP, n.link, err, out)
	}
	e.tl.mark("%s interface %s: %s for the adapter, %s for pod and Service IPs", kind, n.link, n.adapterIP, testNetCIDR)
	return n
}

// removeStaleLinks deletes interfaces left by runs whose process is gone (a SIGKILLed run).
func removeStaleLinks(e *env, ip string) {
	out, err := exec.Command(ip, "-o", "link", "show").Output()
	if err != nil {
		return
	}
	re := regexp.MustCompile(`^\d+: (` + linkNamePrefix + `(\d+))[:@]`)
	for _, line := range strings.Split(string(out), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if err := exec.Command(ip, "link", "del", m[1]).Run(); err == nil {
			e.t.Logf("removed %s, left by an earlier run", m[1])
		}
	}
}

// podIP hands out the next pod address and makes it an address of the interface: the processes
// listen on loopback, and the kubelet forwards each container port from the pod IP to them, so
// that the API server's pod proxy (which `anyroute doctor` reads the pods' metrics through)
// reaches the pod as on a cluster. The address goes with the interface.
func (n *testNet) podIP() (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nextPod > lastPodHost {
		return "", fmt.Errorf("out of pod addresses in %s", testNetCIDR)
	}
	ip := testNetPrefix + strconv.Itoa(n.nextPod)
	n.nextPod++
	if out, err := exec.Command(n.ip, "addr", "add", ip+"/32", "dev", n.link).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip addr add %s/32 dev %s: %w %s", ip, n.link, err, out)
	}
	return ip, nil
}
