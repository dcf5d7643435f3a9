//go:build nodoctor

package main

import (
	"fmt"
	"io"
)

// runPredict in a build without the workstation tools (the container image) says where to get one.
func runPredict(_ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "anyroute predict: not in this build (the container image leaves it out to stay small); "+
		"run it from a release archive, `make build` or `go run ./cmd/anyroute predict`")
	return exitBadUsage
}
