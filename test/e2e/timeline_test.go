//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// timeline records what happened when, relative to the start of the run; every mark is logged as
// it happens and the whole is printed at the end.
type timeline struct {
	t     *testing.T
	start time.Time

	mu    sync.Mutex
	lines []string
	done  bool
}

func newTimeline(t *testing.T) *timeline {
	return &timeline{t: t, start: time.Now()}
}

// mark records one event.
func (tl *timeline) mark(format string, args ...any) {
	line := fmt.Sprintf("T+%5.1fs  %s", time.Since(tl.start).Seconds(), fmt.Sprintf(format, args...))
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.done {
		return
	}
	tl.lines = append(tl.lines, line)
	tl.t.Log(line)
}

// print logs the whole timeline once; later marks are dropped.
func (tl *timeline) print(title string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.done {
		return
	}
	tl.done = true
	tl.t.Logf("%s (%d events):\n    %s", title, len(tl.lines), strings.Join(tl.lines, "\n    "))
}
