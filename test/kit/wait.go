package kit

import (
	"testing"
	"time"
)

// WaitUntil polls cond until it reports done. It fails the test at the deadline, with the state
// cond last described, or at once when cond returns an error: a condition that can no longer
// come true (a process that died, a counter past its goal).
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() (done bool, state string, err error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for {
		done, state, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			if state == "" {
				t.Fatalf("timed out after %v waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %v waiting for %s (last seen: %s)", timeout, what, state)
		}
		time.Sleep(min(pause, time.Until(deadline)+time.Millisecond))
		pause = min(2*pause, 250*time.Millisecond)
	}
}

// WaitFor is WaitUntil for a condition with nothing to report but whether it holds.
func WaitFor(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	WaitUntil(t, timeout, what, func() (bool, string, error) { return ok(), "", nil })
}
