//go:build nodoctor

package main

import (
	"fmt"
	"io"
)

// runDoctor in a build without the doctor (the container image: a smaller image pulls faster on
// every scale-out, and the workload never needs a Kubernetes client) says where to get one.
func runDoctor(_ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "anyroute doctor: not in this build (the container image leaves it out to stay small); "+
		"run it from a release archive, `make build` or `go run ./cmd/anyroute doctor`")
	return exitBadUsage
}
