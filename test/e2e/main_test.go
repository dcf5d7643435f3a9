//go:build e2e

// Package e2e proves the chart's autoscaling demo end to end on one machine: a real etcd,
// kube-apiserver and kube-controller-manager, a real Prometheus and prometheus-adapter, the real
// chart installed by the real helm, and real anyroute and siege processes. The test plays the
// kubelet and nothing more (see kubelet_test.go). Run it with `make e2e`, or
//
//	go test -tags e2e -v -count=1 ./test/e2e/
//
// once `scripts/tools.sh etcd kube-apiserver kube-controller-manager kubectl prometheus-adapter
// helm` has built the tools. It needs root (it makes a dummy network interface).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// repoRoot is the module's root; the test runs in test/e2e.
var repoRoot string

// anyrouteBin is bin/anyroute, built by TestMain the way `make build` builds it.
var anyrouteBin string

func TestMain(m *testing.M) {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = root
	anyrouteBin = filepath.Join(root, "bin", "anyroute")
	build := exec.Command("go", "build", "-trimpath", "-o", anyrouteBin, "./cmd/anyroute")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bin/anyroute:", err)
		os.Exit(1)
	}

	// An interrupted run still ends its processes and removes its network interface: the test's
	// own cleanups do not run when the binary is killed by a signal.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "e2e: %v: cleaning up\n", sig)
		runEmergencyCleanups()
		os.Exit(2)
	}()

	os.Exit(m.Run())
}

// emergency holds what must be undone if the test binary is interrupted; each entry is removed
// again by the ordinary cleanup that undoes the same thing.
var emergency struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// onInterrupt registers fn to run if the test binary gets SIGINT or SIGTERM, and returns the
// function that unregisters it.
func onInterrupt(fn func()) (unregister func()) {
	emergency.Lock()
	defer emergency.Unlock()
	if emergency.fns == nil {
		emergency.fns = map[int]func(){}
	}
	id := emergency.next
	emergency.next++
	emergency.fns[id] = fn
	return func() {
		emergency.Lock()
		defer emergency.Unlock()
		delete(emergency.fns, id)
	}
}

// runEmergencyCleanups runs every registered function, newest first.
func runEmergencyCleanups() {
	emergency.Lock()
	defer emergency.Unlock()
	for id := emergency.next - 1; id >= 0; id-- {
		if fn, ok := emergency.fns[id]; ok {
			fn()
		}
	}
	emergency.fns = nil
}
