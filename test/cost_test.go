//go:build linux

package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// The cost tests run the plain build of anyroute (plainBinary): the race detector's build would
// add its own CPU and memory to what they measure. They read the process's CPU time and RSS from
// /proc, as the kernel accounts them, hence Linux only.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// architecture Go supports (the kernel scales to it whatever its own HZ).
const clockTicks = 100

// processCPU is the CPU time the process has used, user and system, from /proc/PID/stat.
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name, field 2, is in parentheses and may hold spaces: count from its end.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("cannot read utime and stime of %q", b)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// rss is the process's resident set size in bytes, VmRSS of /proc/PID/status.
func rss(t *testing.T, pid int) float64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// startPlain runs the plain build of anyroute on the config file, which the test may rewrite.
func startPlain(t *testing.T, file string) *proc {
	t.Helper()
	apiAddr, adminAddr := kit.FreeAddr(t), kit.FreeAddr(t)
	p := &proc{
		Proc: kit.StartT(t, kit.Cmd{Name: "anyroute", Path: plainBinary,
			Args: []string{"-config", file, "-http.addr", apiAddr, "-admin.addr", adminAddr}}),
		api:   "http://" + apiAddr,
		admin: "http://" + adminAddr,
	}
	kit.WaitHTTP(t, p.Proc, p.admin+"/readyz", nil, 15*time.Second)
	return p
}

// costConfig writes a config file and returns its path.
func costConfig(t *testing.T, doc string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.json")
	writeAtomically(t, file, doc)
	return file
}

// requests sends n GETs to url from workers goroutines and fails the test on any answer but 200.
func requests(t *testing.T, url string, n, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[int]int{}
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for range next {
				if code, _ := kit.Get(url); code != 200 {
					mu.Lock()
					failed[code]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("answers other than 200, by status (0: none): %v", failed)
	}
}

// waitGauge polls the admin /metrics until the metric's value (its series added up) satisfies ok,
// and returns it; it fails the test after timeout with the last value.
func waitGauge(t *testing.T, p *proc, name string, ok func(float64) bool, timeout time.Duration) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := p.metrics(t).Sum(name)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %g after %s", name, v, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const mib = 1 << 20

// TestCPUCostBurnsProcessCPU: 1,000 requests to a route with cpu 5ms raise the process's CPU time
// (utime + stime, as the kernel counts it) by 5 s within 15%, and app_cpu_burned_seconds_total
// says so. Four clients at a time on a machine other processes load: the burn is measured on
// the thread's own CPU clock, which does not run while the thread waits for a core, so the CPU
// is the same however long the wall clock takes. What is beyond the 5 s is the serving itself
// (HTTP, JSON, metrics), measured alone on a route without cost for the log.
func TestCPUCostBurnsProcessCPU(t *testing.T) {
	p := startPlain(t, costConfig(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "burn", "match": "/burn", "cpu": "5ms"},
  {"name": "plain", "match": "/plain"}]}`))
	pid := p.Pid()
	requests(t, p.api+"/plain", 50, 4) // warm: connections, first allocations

	before := processCPU(t, pid)
	requests(t, p.api+"/plain", 1000, 4)
	serving := processCPU(t, pid) - before

	before = processCPU(t, pid)
	begin := time.Now()
	requests(t, p.api+"/burn", 1000, 4)
	wall := time.Since(begin)
	burned := processCPU(t, pid) - before
	t.Logf("1,000 requests with cpu 5ms: process CPU +%s in %s of wall time; 1,000 without cost: +%s", burned, wall.Round(time.Millisecond), serving)
	if want := 5 * time.Second; burned < want*85/100 || burned > want*115/100 {
		t.Errorf("process CPU rose by %s, want 5s within 15%%", burned)
	}

	// The counter: each request burns at least its 5 ms by the thread's clock, and little more.
	counted := waitGauge(t, p, "app_cpu_burned_seconds_total", func(v float64) bool { return v >= 5 }, 5*time.Second)
	if counted > 5.25 {
		t.Errorf("app_cpu_burned_seconds_total = %g, want 5 and at most 5%% more", counted)
	}
	m := p.metrics(t)
	if s := m.Series("app_cpu_burned_seconds_total"); len(s) != 1 || s[0].Labels["route"] != "burn" {
		t.Errorf("app_cpu_burned_seconds_total series %v, want one, route burn", s)
	}
}

// TestMemoryCostRaisesRSSWhileHeld: requests of a route with memory hold that many bytes resident
// while they are answered, and give them back as they end. Tolerance: 12 MiB either way of the
// 96 MiB held, for the rest of the process moving meanwhile (goroutine stacks, buffers, the heap);
// the memory is mapped apart from the Go heap and unmapped at the answer, so it goes back to the
// kernel at once, not at the collector's pace.
func TestMemoryCostRaisesRSSWhileHeld(t *testing.T) {
	const held, tolerance = 96 * mib, 12 * mib
	p := startPlain(t, costConfig(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [
  {"name": "mem", "match": "/mem", "memory": 50331648, "delay": "3s"}]}`))
	pid := p.Pid()
	requests(t, p.api+"/mem-warm", 20, 2) // the catch-all: warm the serving path
	before := rss(t, pid)

	done := make(chan struct{})
	go func() { defer close(done); requests(t, p.api+"/mem", 2, 2) }()
	waitGauge(t, p, "app_memory_held_bytes", func(v float64) bool { return v == held }, 5*time.Second)
	during := rss(t, pid)
	<-done
	waitGauge(t, p, "app_memory_held_bytes", func(v float64) bool { return v == 0 }, 5*time.Second)
	after := rss(t, pid)
	t.Logf("RSS %.1f MiB, %.1f MiB while 2 requests hold 48 MiB each, %.1f MiB after", before/mib, during/mib, after/mib)
	if rise := during - before; rise < held-tolerance || rise > held+tolerance {
		t.Errorf("RSS rose by %.1f MiB while 96 MiB were held, want within 12 MiB of it", rise/mib)
	}
	if after-before > tolerance {
		t.Errorf("RSS %.1f MiB above where it started once the requests ended, want at most 12", (after-before)/mib)
	}
}

// TestResidentAndLeak: resident raises RSS by its size from start, a reload that removes it
// gives it back, and one that brings it back raises RSS again; the leak grows with requests up to its cap and no further, raising RSS by as
// much, and POST /-/leak/release (a lifecycle mutation) gives it back, after which it grows again;
// a reload that removes it gives it back too. Tolerance as for memory: 12 MiB.
func TestResidentAndLeak(t *testing.T) {
	const resident, leakCap, tolerance = 128 * mib, 64 * mib, 12 * mib
	config := func(resident int, leak string) string {
		return fmt.Sprintf(`{"admin": {"lifecycle": true}, "metrics": {"flush_interval": "100ms"}, "resident": %d, %s "routes": [{"name": "r", "match": "/r"}]}`, resident, leak)
	}
	leak := fmt.Sprintf(`"leak": {"per_request": %d, "max": %d},`, mib, leakCap)
	file := costConfig(t, config(resident, ""))
	p := startPlain(t, file)
	pid := p.Pid()
	reload := func(doc string) {
		t.Helper()
		writeAtomically(t, file, doc)
		if code, body := kit.Do(context.Background(), "POST", p.admin+"/-/reload", nil, nil); code != 200 {
			t.Fatalf("POST /-/reload: %d %s", code, body)
		}
	}
	within := func(what string, got, want float64) {
		t.Helper()
		if got < want-tolerance || got > want+tolerance {
			t.Errorf("%s: RSS moved by %.1f MiB, want %.1f within 12", what, got/mib, want/mib)
		}
	}

	requests(t, p.api+"/r", 20, 2)
	is := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	waitGauge(t, p, "app_memory_resident_bytes", is(resident), 5*time.Second)
	withResident := rss(t, pid)
	reload(config(0, ""))
	waitGauge(t, p, "app_memory_resident_bytes", is(0), 5*time.Second)
	base := rss(t, pid)
	t.Logf("RSS %.1f MiB with resident 128 MiB, %.1f MiB once a reload removed it", withResident/mib, base/mib)
	within("a reload removing resident", base-withResident, -resident)

	reload(config(0, leak))
	// The gauges are read once a flush (100 ms here), as every metric served: wait for a flush
	// past the requests, then a second one, so that a value still growing would show.
	requests(t, p.api+"/r", 40, 2)
	waitGauge(t, p, "app_memory_leaked_bytes", is(40*mib), 5*time.Second)
	requests(t, p.api+"/other", 60, 2) // every route leaks, the catch-all's too
	waitGauge(t, p, "app_memory_leaked_bytes", is(leakCap), 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if v := p.metrics(t).Sum("app_memory_leaked_bytes"); v != leakCap {
		t.Fatalf("app_memory_leaked_bytes = %.1f MiB after 100 requests of 1 MiB, want the cap, 64", v/mib)
	}
	full := rss(t, pid)
	within("the leak at its cap", full-base, leakCap)

	if code, body := kit.Do(context.Background(), "POST", p.admin+"/-/leak/release", nil, nil); code != 200 || body != fmt.Sprintf("released %d bytes\n", leakCap) {
		t.Fatalf("POST /-/leak/release: %d %q", code, body)
	}
	released := rss(t, pid)
	waitGauge(t, p, "app_memory_leaked_bytes", is(0), 5*time.Second)
	within("the release", released-full, -leakCap)

	requests(t, p.api+"/r", 10, 2)
	waitGauge(t, p, "app_memory_leaked_bytes", is(10*mib), 5*time.Second)
	reload(config(0, ""))
	waitGauge(t, p, "app_memory_leaked_bytes", is(0), 5*time.Second)
	t.Logf("RSS %.1f MiB with the leak at its cap, %.1f MiB after the release", full/mib, released/mib)

	gone := rss(t, pid)
	reload(config(resident, ""))
	waitGauge(t, p, "app_memory_resident_bytes", is(resident), 5*time.Second)
	within("a reload adding resident", rss(t, pid)-gone, resident)
}
