// Package instrumenting is the home of the cross-cutting decorators that observe the service from
// outside, one subpackage per capability: metrics (the in-memory aggregator, its flusher and the
// Prometheus collector, the counting decorator) and tracing (go-kit's OpenTracing decorators, with
// one subpackage per backend). This package holds only what both share: how a request's method is
// named, so that metric labels and span names are bounded alike, and how an injected fault is
// named in the code label and on the span.
package instrumenting

import (
	"regexp"

	"github.com/anyroute/anyroute/service"
)

// Methods are the method label values: the standard methods, GRPC for every call the gRPC
// listener answers (whatever its service and method: those are the route's business, and a
// label per gRPC method would be unbounded), and OTHER for anything else, so an invented method
// adds no series and no span name. An HTTP request whose method is GRPC is counted with them.
var Methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", MethodGRPC, "OTHER"}

// MethodGRPC is the method of a request the gRPC listener answers, in service.Request and in the
// method label.
const MethodGRPC = "GRPC"

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
	case MethodGRPC:
		return 9
	}
	return MethodOther
}

// FaultCodes are the code label values of the answers a fault replaced, by service.FaultKind: what
// the client got instead of a status ("" for FaultNone, which is no fault). They are the kinds'
// config names, so a dashboard filters on the word the config uses.
var FaultCodes = [...]string{
	service.FaultReset:     "reset",
	service.FaultClose:     "close",
	service.FaultHang:      "hang",
	service.FaultSlowBody:  "slow_body",
	service.FaultTruncate:  "truncate",
	service.FaultMalformed: "malformed",
}

// codeFaultBase is below every code the aggregators count otherwise (statuses, and the upstream
// calls' -1 to -3), so a fault's number collides with none of them.
const codeFaultBase = -10

// FaultCode returns the number a fault of kind k is counted under in the requests' aggregator.
func FaultCode(k service.FaultKind) int { return codeFaultBase - int(k) }

// FaultCodeLabel returns the code label of a number FaultCode made, and false for any other
// number: a status, an upstream call's code, or a number no kind has.
func FaultCodeLabel(code int) (string, bool) {
	k := codeFaultBase - code
	if k < 1 || k >= len(FaultCodes) {
		return "", false
	}
	return FaultCodes[k], true
}

// ErrorCodes is the PromQL regular expression of the code values of app_requests_total that are
// errors: requests the client saw fail. A 5xx status, and the faults that fail a request
// (service.FaultKind.Fails: all but slow_body, whose answer arrives whole and late, and so counts
// against the latency objective instead). A dashboard's error ratio that took only 5.. would read 0
// while a route resets every connection. The chart's dashboard and alerts and the compose stack's
// alerts use exactly this (test/ checks them), and anyroute predict's alert model (IsErrorCode).
const ErrorCodes = "5..|reset|close|hang|truncate|malformed"

// errorCodes is ErrorCodes as PromQL applies it: anchored at both ends, with Go's regexp syntax.
var errorCodes = regexp.MustCompile("^(?:" + ErrorCodes + ")$")

// IsErrorCode reports whether a code label value is an error, as code=~ErrorCodes matches it.
func IsErrorCode(code string) bool { return errorCodes.MatchString(code) }
