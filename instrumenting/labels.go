// Package instrumenting is the home of the cross-cutting decorators that observe the service from
// outside, one subpackage per capability: metrics (the in-memory aggregator, its flusher and the
// Prometheus collector, the counting decorator) and tracing (go-kit's OpenTracing decorators, with
// one subpackage per backend). This package holds only what both share: how a request's method is
// named, so that metric labels and span names are bounded alike.
package instrumenting

// Methods are the method label values: the standard methods, and OTHER for anything else, so an
// invented method adds no series and no span name.
var Methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "OTHER"}

// MethodOther is the index of OTHER in Methods.
const MethodOther = len(Methods) - 1

// MethodIndex returns the index in Methods of the label for method m. A switch of constant strings
// compiles to a few length and byte comparisons; it runs on every request.
func MethodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "CONNECT":
		return 6
	case "OPTIONS":
		return 7
	case "TRACE":
		return 8
	}
	return MethodOther
}
