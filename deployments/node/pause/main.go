//go:build unix

// Command pause is the pod sandbox's process for a node built without a registry
// (scripts/node.sh): it holds the pod's namespaces for the containers that join them, reaps the
// zombies a shared PID namespace leaves to it (it is PID 1 there), and exits on SIGINT or SIGTERM,
// as registry.k8s.io/pause does. It is a static Go binary on an empty image, so the node needs no
// C toolchain and no pull; a module of its own, so the service's ./... (tests, vet, lint) leaves
// it out while the real node is not part of make test.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child, since one SIGCHLD may stand for several exits.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
