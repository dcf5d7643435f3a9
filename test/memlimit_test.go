package test

import (
	"strings"
	"testing"
)

// TestMemoryLimitFromTheEnvironment: the real binary leaves a GOMEMLIMIT from the environment to
// the runtime (go_gc_gomemlimit_bytes shows it, whatever the cgroup says), and refuses at start,
// with exit 2 and a line naming the flag, a memory limit ratio outside 0 to 1. The cgroup reading
// itself is cmd/anyroute's unit test, on a fake cgroup tree.
func TestMemoryLimitFromTheEnvironment(t *testing.T) {
	p := start(t, "", "GOMEMLIMIT=48MiB")
	if got := p.metrics(t).Sum("go_gc_gomemlimit_bytes"); got != 48<<20 {
		t.Errorf("go_gc_gomemlimit_bytes %v with GOMEMLIMIT=48MiB, want %d", got, 48<<20)
	}

	code, out := runBinary(t, "-memory.limit-ratio", "1.5", "-http.addr", "127.0.0.1:0", "-admin.addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(out, "-memory.limit-ratio") {
		t.Errorf("-memory.limit-ratio 1.5: exit %d, output %q; want 2 and a line naming the flag", code, out)
	}
}
