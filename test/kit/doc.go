// Package kit is the toolkit of anyroute's tests that run real programs: free loopback ports, a
// process runner that keeps each process's output and shows it when a test fails, polling with a
// deadline instead of sleeping, the HTTP client and echo decoder, /metrics scrapes, and real
// Prometheus and Jaeger servers with clients of their APIs.
//
// test/, test/containers and test/e2e all use it, which is why it is an ordinary package rather
// than a _test.go file. Helpers that take a testing.TB fail the test, naming what went wrong; a
// missing outside program fails it too, with how to get the program, and never skips it.
package kit
