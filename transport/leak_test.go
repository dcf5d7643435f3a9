package transport

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLeakRelease: POST /-/leak/release is a mutation: refused with 403 (and nothing released)
// unless the lifecycle is on, then it releases and answers the bytes; GET is not it.
func TestLeakRelease(t *testing.T) {
	calls := 0
	release := func() int64 { calls++; return 4096 }
	do := func(on bool, method string) (int, string) {
		h := NewAdminHandler(AdminOptions{Gatherer: prometheus.NewRegistry(), LifecycleOn: on, ReleaseLeak: release})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/-/leak/release", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := do(false, "POST"); code != 403 || body != lifecycleOff || calls != 0 {
		t.Errorf("lifecycle off: %d %q, %d releases", code, body, calls)
	}
	if code, _ := do(true, "GET"); code != 405 || calls != 0 {
		t.Errorf("GET: %d, %d releases", code, calls)
	}
	if code, body := do(true, "POST"); code != 200 || body != "released 4096 bytes\n" || calls != 1 {
		t.Errorf("lifecycle on: %d %q, %d releases", code, body, calls)
	}
}
