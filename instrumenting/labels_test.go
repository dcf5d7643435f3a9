package instrumenting

import (
	"strconv"
	"testing"

	"github.com/anyroute/anyroute/service"
)

// TestFaultCodesAreExactlyTheKinds: the code labels of faults are the six kinds' config names, one
// number each; no other number in a wide range around them (statuses, the upstream calls' codes)
// is taken for a fault, and no fault's label reads as a status.
func TestFaultCodesAreExactlyTheKinds(t *testing.T) {
	want := map[string]bool{"reset": true, "close": true, "hang": true, "slow_body": true, "truncate": true, "malformed": true}
	seen := map[int]string{}
	for _, k := range service.FaultKinds {
		label, ok := FaultCodeLabel(FaultCode(k))
		if !ok || label != k.String() || !want[label] {
			t.Errorf("%v: counted as %d, labelled %q %v", k, FaultCode(k), label, ok)
		}
		seen[FaultCode(k)] = label
	}
	for code := -1000; code <= 1000; code++ {
		label, ok := FaultCodeLabel(code)
		if ok != (seen[code] != "") || label != seen[code] {
			t.Errorf("code %d labelled %q %v", code, label, ok)
		}
		if _, err := strconv.Atoi(label); ok && err == nil {
			t.Errorf("code %d labelled %q, which reads as a status", code, label)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d fault codes, want %d: %v", len(seen), len(want), seen)
	}
	if _, ok := FaultCodeLabel(FaultCode(service.FaultNone)); ok {
		t.Error("FaultNone has a code label")
	}
}

// TestErrorCodesAreWhatTheClientSawFail: ErrorCodes is 5xx and exactly the fault kinds that fail a
// request, so a kind added to service, or one whose Fails changes, changes what the dashboards and
// alerts count or fails here; and it matches as PromQL's =~ does, the whole value.
func TestErrorCodesAreWhatTheClientSawFail(t *testing.T) {
	for _, k := range service.FaultKinds {
		if got := IsErrorCode(k.String()); got != k.Fails() {
			t.Errorf("fault %s: IsErrorCode %v, but Fails %v", k, got, k.Fails())
		}
	}
	if !service.FaultReset.Fails() || service.FaultSlowBody.Fails() || service.FaultNone.Fails() {
		t.Error("reset must fail its request; slow_body (the whole answer, late) and no fault must not")
	}
	for code := 100; code <= 599; code++ {
		if got, want := IsErrorCode(strconv.Itoa(code)), code >= 500; got != want {
			t.Errorf("status %d: IsErrorCode %v, want %v", code, got, want)
		}
	}
	for _, c := range []string{"", "5", "50", "5000", "1500", "reset2", "xreset", "slow_body", "canceled", "timeout"} {
		if IsErrorCode(c) {
			t.Errorf("%q is taken for an error", c)
		}
	}
}
