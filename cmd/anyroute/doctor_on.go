//go:build !nodoctor

package main

import (
	"io"

	"github.com/anyroute/anyroute/instrumenting/doctor"
)

// runDoctor is `anyroute doctor`. The doctor links client-go and k8s.io/api into the binary (9 MB
// and 6 MiB of idle RSS the service itself never uses), so the container image builds with the
// nodoctor tag and leaves it out: see doctor_off.go.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	return doctor.Run(args, stdout, stderr)
}
