package transport

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
)

// lockedBuffer is a log sink the flush timer's goroutine and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.FieldsFunc(l.b.String(), func(r rune) bool { return r == '\n' })
}

type nopLifecycle struct{}

func (nopLifecycle) Reload(context.Context) error                            { return nil }
func (nopLifecycle) Config() any                                             { return nil }
func (nopLifecycle) PatchRoute(context.Context, string, []byte) (any, error) { return nil, nil }

// TestProbeTogglesLogThrottled toggles /readyz 1,001 times in a loop: the first change is logged at
// once, the other 1,000 in one line at the end of the interval, with the state the probes are left
// in. Every change was a warn line before: a client in a loop could flood the log.
func TestProbeTogglesLogThrottled(t *testing.T) {
	old := probeLogEvery
	// Long enough that the 2,002 requests below fit in one interval under -race on a loaded
	// machine (300 ms did not, once), short enough to wait for.
	probeLogEvery = 2 * time.Second
	t.Cleanup(func() { probeLogEvery = old })
	var buf lockedBuffer
	h := NewAdminHandler(AdminOptions{Lifecycle: nopLifecycle{}, LifecycleOn: true, Logger: log.NewLogfmtLogger(&buf)})
	post := func(path string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
	}
	for i := range 1001 {
		if i%2 == 0 {
			post("/-/readyz/disable")
		} else {
			post("/-/readyz/enable")
		}
		post("/-/healthz/enable") // no change: never logged
	}
	if got := buf.lines(); len(got) != 1 || !strings.Contains(got[0], `toggle=/-/readyz/disable`) {
		t.Fatalf("logged during the interval:\n%s", strings.Join(got, "\n"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(buf.lines()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(probeLogEvery) // nothing more comes
	got := buf.lines()
	if len(got) != 2 || !strings.Contains(got[1], "changes=1000") || !strings.Contains(got[1], "readyz_forced_unready=true") ||
		!strings.Contains(got[1], "healthz_forced_unhealthy=false") {
		t.Fatalf("want the first change and one summary of 1000 more, ending forced unready; got:\n%s", strings.Join(got, "\n"))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != 503 {
		t.Fatalf("/readyz after the last toggle (disable): %d", rec.Code)
	}
}

// fakeScenario answers every call with what it was asked, or err.
type fakeScenario struct{ err error }

func (f fakeScenario) StartScenario(context.Context) (any, error) { return "start", f.err }
func (f fakeScenario) StopScenario(context.Context) (any, error)  { return "stop", f.err }
func (f fakeScenario) SkipScenario(_ context.Context, phase string) (any, error) {
	return "skip " + phase, f.err
}
func (f fakeScenario) ScenarioStatus(context.Context) (any, error) { return "status", f.err }

// TestScenarioEndpoints: the scenario's calls answer 403 unless admin.lifecycle, their state as
// JSON when allowed, and 404 for a config without a scenario or an unknown phase.
func TestScenarioEndpoints(t *testing.T) {
	calls := []struct{ method, path, want string }{
		{"POST", "/-/scenario/start", `"start"`},
		{"POST", "/-/scenario/stop", `"stop"`},
		{"POST", "/-/scenario/skip?phase=burst", `"skip burst"`},
		{"POST", "/-/scenario/skip", `"skip "`},
		{"GET", "/-/scenario", `"status"`},
	}
	for _, tt := range []struct {
		name    string
		on      bool
		err     error
		status  int
		ownBody bool
	}{
		{"off", false, nil, http.StatusForbidden, false},
		{"on", true, nil, http.StatusOK, true},
		{"no scenario", true, ErrNoScenario, http.StatusNotFound, false},
		{"no such phase", true, ErrNoSuchPhase, http.StatusNotFound, false},
	} {
		h := NewAdminHandler(AdminOptions{Gatherer: prometheus.NewRegistry(), Lifecycle: nopLifecycle{}, LifecycleOn: tt.on, Scenario: fakeScenario{tt.err}})
		for _, c := range calls {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
			if rec.Code != tt.status {
				t.Errorf("%s: %s %s answered %d, want %d", tt.name, c.method, c.path, rec.Code, tt.status)
			}
			if got := strings.TrimSpace(rec.Body.String()); tt.ownBody && got != c.want {
				t.Errorf("%s: %s %s answered %s, want %s", tt.name, c.method, c.path, got, c.want)
			}
		}
	}
}
