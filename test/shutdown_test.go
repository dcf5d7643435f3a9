package test

import (
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

func TestSecondSignalAndGraceDeadlineEndPromptly(t *testing.T) {
	for _, tt := range []struct {
		name   string
		config string
		second bool
	}{
		{"second SIGTERM", `{"routes": [{"name": "stuck", "match": "/*", "delay": "1m"}], "shutdown": {"grace": "1m"}}`, true},
		{"grace deadline", `{"routes": [{"name": "stuck", "match": "/*", "delay": "1m"}], "shutdown": {"grace": "1s"}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.config)
			go func() { _, _ = kit.Get(p.api + "/stuck") }()
			kit.WaitFor(t, 5*time.Second, "the request in flight", func() bool { return inFlight(p) == 1 })
			begin := time.Now()
			p.SignalT(t, syscall.SIGTERM)
			if tt.second {
				time.Sleep(300 * time.Millisecond) // the second signal comes while the first drains
				p.SignalT(t, syscall.SIGTERM)
			}
			p.WaitExit(t, 5*time.Second)
			t.Logf("exited %v after the first signal", time.Since(begin).Round(time.Millisecond))
		})
	}
}
