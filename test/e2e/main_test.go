//go:build e2e

// Package e2e proves the chart's autoscaling demo end to end on one machine, on a real node: the
// control plane, containerd, a kubelet, kube-proxy and CoreDNS that scripts/node.sh up starts (as
// `make cluster` does), the chart installed by the real helm with the README's values, its pods
// running as containers of the images `make images` builds, a real Prometheus finding them through
// Kubernetes service discovery, and prometheus-adapter or KEDA behind the aggregator. Run it with
// `make e2e`, or
//
//	cd test && go test -tags e2e -v -count=1 ./e2e/
//
// once `make images` and `scripts/tools.sh` (make e2e's E2E_RUN_TOOLS) have built the images and
// the tools every scenario needs; a scenario builds the others it needs (metrics-server, KEDA) at
// its start. It needs root (mounts, cgroups, the pods' bridge).
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
	// An interrupted run still ends its processes and takes its node down: the test's own
	// cleanups do not run when the binary is killed by a signal.
	kit.CleanUpOnInterrupt("e2e")
	os.Exit(m.Run())
}
