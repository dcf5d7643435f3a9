//go:build race

package kit

// Race reports whether the test binary runs with the race detector, so that a test builds the
// programs it runs with the detector only then (it needs cgo and a C compiler).
const Race = true
