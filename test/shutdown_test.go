package test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// TestSecondSignalAndGraceDeadlineEndPromptly: a drain that a second signal or the grace period
// cuts short ends at once, answers the request it cut 503 (the server's doing, not 499, the
// client's), and exits 3, not 0, so that a supervisor can tell it from a clean stop.
func TestSecondSignalAndGraceDeadlineEndPromptly(t *testing.T) {
	for _, tt := range []struct {
		name   string
		config string
		second bool
	}{
		{"second SIGTERM", `{"http": {"write_timeout": "2m"}, "routes": [{"name": "stuck", "match": "/*", "delay": "1m"}], "shutdown": {"grace": "1m"}}`, true},
		{"grace deadline", `{"http": {"write_timeout": "2m"}, "routes": [{"name": "stuck", "match": "/*", "delay": "1m"}], "shutdown": {"grace": "1s"}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.config)
			answer := make(chan string, 1)
			go func() {
				code, body := kit.Get(p.api + "/stuck")
				answer <- fmt.Sprint(code, " ", body)
			}()
			kit.WaitFor(t, 5*time.Second, "the request in flight", func() bool { return inFlight(p) == 1 })
			begin := time.Now()
			p.SignalT(t, syscall.SIGTERM)
			if tt.second {
				time.Sleep(300 * time.Millisecond) // the second signal comes while the first drains
				p.SignalT(t, syscall.SIGTERM)
			}
			if code := p.WaitExit(t, 5*time.Second); code != 3 {
				t.Errorf("exit code %d after a cut drain, want 3", code)
			}
			if got := <-answer; !strings.HasPrefix(got, "503 ") || !strings.Contains(got, `"error":"server shutting down"`) {
				t.Errorf("the cut request got %q, want 503 server shutting down", got)
			}
			t.Logf("exited %v after the first signal", time.Since(begin).Round(time.Millisecond))
		})
	}
}
