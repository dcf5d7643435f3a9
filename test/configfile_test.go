//go:build linux

package test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// fileConfig is the config the tests below start from and replace with what is not a config.
const fileConfig = `{"admin": {"lifecycle": true}, "metrics": {"flush_interval": "100ms"}, "shutdown": {"grace": "2s"},
  "routes": [{"name": "a", "match": "/a/*", "status": 201}]}`

// startOnFile writes fileConfig into a directory of the test's and runs anyroute on it.
func startOnFile(t *testing.T) (*proc, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.json")
	writeAtomically(t, file, fileConfig)
	return startFile(t, file), file
}

// postReload asks POST /-/reload, giving up after 10 s: a reload that reads no more than a
// regular file answers in milliseconds.
func postReload(t *testing.T, p *proc) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return kit.Do(ctx, "POST", p.admin+"/-/reload", nil, nil)
}

// peakRSS is the process's resident memory high-water mark (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// stillServing checks that the process answers its probes and its routes as before.
func stillServing(t *testing.T, p *proc) {
	t.Helper()
	if code, _ := kit.Get(p.admin + "/healthz"); code != 200 {
		t.Errorf("/healthz answers %d", code)
	}
	if code, _ := kit.Get(p.api + "/a/x"); code != 201 {
		t.Errorf("the running route answers %d, want its 201", code)
	}
}

// TestConfigFIFONeverHoldsUpReloadOrShutdown: the config file replaced by a FIFO with no writer
// (opening it for reading would wait for one) is refused at once by POST /-/reload and by the
// watcher, and SIGTERM still drains and exits within the grace period. Before, the reload and
// the watcher waited on the FIFO for ever, and the process ran past its grace until SIGKILL.
func TestConfigFIFONeverHoldsUpReloadOrShutdown(t *testing.T) {
	p, file := startOnFile(t)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := postReload(t, p); code != 500 || !strings.Contains(body, "not a regular file (a FIFO)") {
		t.Fatalf("POST /-/reload on a FIFO: %d %q, want 500 saying it is a FIFO", code, body)
	}
	kit.WaitFor(t, 5*time.Second, "the watcher's reload refused too", func() bool {
		return strings.Contains(p.Logs(), `source="file change"`) && p.metrics(t).Sum("app_config_last_reload_successful") == 0
	})
	stillServing(t, p)
	begin := time.Now()
	p.SignalT(t, syscall.SIGTERM)
	if code := p.WaitExit(t, 2*time.Second+8*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("exited %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
}

// TestConfigDevZeroIsRefused: the config file replaced by a symlink to /dev/zero is refused as a
// character device, by the watcher and by POST /-/reload, without a byte read: the process keeps
// serving and its memory does not grow. Before, the watcher read /dev/zero until the process
// died.
func TestConfigDevZeroIsRefused(t *testing.T) {
	p, file := startOnFile(t)
	before := peakRSS(t, p.Pid())
	tmp := file + ".tmp"
	if err := os.Symlink("/dev/zero", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	kit.WaitFor(t, 5*time.Second, "the watcher's reload refused", func() bool {
		return strings.Contains(p.Logs(), "not a regular file (a character device)") && p.metrics(t).Sum("app_config_last_reload_successful") == 0
	})
	if code, body := postReload(t, p); code != 500 || !strings.Contains(body, "not a regular file (a character device)") {
		t.Fatalf("POST /-/reload on /dev/zero: %d %q, want 500 saying it is a device", code, body)
	}
	stillServing(t, p)
	grown := peakRSS(t, p.Pid()) - before
	if grown > 32<<20 {
		t.Errorf("the peak RSS grew by %d MiB refusing /dev/zero", grown>>20)
	}
	t.Logf("peak RSS %.1f MiB, grown by %d KiB refusing /dev/zero", float64(before+grown)/(1<<20), grown>>10)
}

// TestConfigOversizedFileIsRefused: a 100 MB config file is refused naming the 4 MiB cap, by the
// watcher and by POST /-/reload, having cost no more than the cap: the watcher read all of it
// before (110 MiB of peak RSS).
func TestConfigOversizedFileIsRefused(t *testing.T) {
	p, file := startOnFile(t)
	before := peakRSS(t, p.Pid())
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(100 << 20); err != nil { // sparse: 100 MB of zeros on no disk
		t.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	kit.WaitFor(t, 5*time.Second, "the watcher's reload refused", func() bool {
		return strings.Contains(p.Logs(), "larger than 4 MiB") && p.metrics(t).Sum("app_config_last_reload_successful") == 0
	})
	if code, body := postReload(t, p); code != 500 || !strings.Contains(body, "larger than 4 MiB (4194304 bytes)") {
		t.Errorf("POST /-/reload of 100 MB: %d %q, want 500 naming the cap", code, body)
	}
	grown := peakRSS(t, p.Pid()) - before
	if grown > 32<<20 {
		t.Errorf("the peak RSS grew by %d MiB refusing a 100 MB file", grown>>20)
	}
	t.Logf("peak RSS %.1f MiB, grown by %d KiB refusing a 100 MB file", float64(before+grown)/(1<<20), grown>>10)
	stillServing(t, p)
}
