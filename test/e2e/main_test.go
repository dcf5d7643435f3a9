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
	"path/filepath"
	"testing"

	"github.com/anyroute/anyroute/test/kit"
)

// repoRoot is the module's root; the test runs in test/e2e.
var repoRoot string

// anyrouteBin is bin/anyroute, built by TestMain the way `make build` builds it.
var anyrouteBin string

func TestMain(m *testing.M) {
	root, err := kit.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	repoRoot = root
	anyrouteBin = filepath.Join(root, "bin", "anyroute")
	if err := kit.BuildAnyroute(anyrouteBin, "-trimpath"); err != nil {
		fmt.Fprintln(os.Stderr, "building bin/anyroute:", err)
		os.Exit(1)
	}
	// An interrupted run still ends its processes and removes its network interface: the test's
	// own cleanups do not run when the binary is killed by a signal.
	kit.CleanUpOnInterrupt("e2e")
	os.Exit(m.Run())
}
