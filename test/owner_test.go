package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// patchRoute sends PATCH /-/routes/{name} with a merge patch and returns the answer.
func patchRoute(ctx context.Context, admin, name, patch string) (int, string) {
	return kit.Do(ctx, "PATCH", admin+"/-/routes/"+name,
		http.Header{"Content-Type": {"application/merge-patch+json"}}, strings.NewReader(patch))
}

// runningStatuses reads the status of every route from GET /-/config, the config as it runs.
func runningStatuses(t *testing.T, admin string) map[string]int {
	t.Helper()
	var cfg struct {
		Routes []struct {
			Name   string `json:"name"`
			Status int    `json:"status"`
		} `json:"routes"`
	}
	if err := kit.GetJSON(context.Background(), admin+"/-/config", &cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range cfg.Routes {
		got[r.Name] = r.Status
	}
	return got
}

// TestConcurrentPatchesAreAllApplied: two PATCHes of different routes sent at the same moment,
// 200 rounds, are both in force after every round, as the running config and as the answers.
// Before one owner held the running config, a patch read it, released the lock, and applied its
// copy over the other's change: one of the two was lost in some rounds, every one answered 200.
func TestConcurrentPatchesAreAllApplied(t *testing.T) {
	p := start(t, `{"admin": {"lifecycle": true}, "routes": [{"name": "a", "match": "/a/*"}, {"name": "b", "match": "/b/*"}]}`)
	ctx := context.Background()
	var lost []string
	for round := 1; round <= 200; round++ {
		status := 200 + round
		var wg sync.WaitGroup
		answers := make([]string, 2)
		for i, name := range []string{"a", "b"} {
			wg.Go(func() {
				code, body := patchRoute(ctx, p.admin, name, fmt.Sprintf(`{"status": %d}`, status))
				if code != 200 {
					answers[i] = fmt.Sprintf("PATCH %s: %d %q", name, code, body)
				}
			})
		}
		wg.Wait()
		for _, a := range answers {
			if a != "" {
				t.Fatalf("round %d: %s", round, a)
			}
		}
		got := runningStatuses(t, p.admin)
		if got["a"] != status || got["b"] != status {
			lost = append(lost, fmt.Sprintf("round %d: a=%d b=%d, want both %d", round, got["a"], got["b"], status))
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of 200 rounds lost a patch answered 200: %s", len(lost), strings.Join(lost, "; "))
	}
	for _, name := range []string{"a", "b"} {
		if code, _ := kit.Get(p.api + "/" + name + "/x"); code != 400 {
			t.Errorf("/%s answers %d, want the last patch's 400", name, code)
		}
	}
}

// versionAnswer is what the reload tests' version route answers, the version it runs as 200+N.
func versionAnswer(p *proc) int {
	code, _ := kit.Get(p.api + "/version")
	return code
}

// TestEachReloadTriggerOnItsOwn: with the watcher off (-config.watch=false), a change written to
// the file is not applied until asked, then SIGHUP alone applies one and POST /-/reload alone
// another, answering only once it is applied; a bad file is answered 500 with every problem, and
// the running rules stay. (The watcher alone is TestConfigMapSwapReloads' and
// TestReloadUnderLoad's: nothing else asks for their file reloads.)
func TestEachReloadTriggerOnItsOwn(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	writeAtomically(t, file, reloadConfig(0))
	p := startFile(t, file, "-config.watch=false")

	writeAtomically(t, file, reloadConfig(1))
	time.Sleep(5 * watchDebounce) // the watcher, were it on, would have reloaded by now
	if got := versionAnswer(p); got != 200 {
		t.Fatalf("with the watcher off, a written file was applied unasked: /version answers %d", got)
	}
	p.SignalT(t, syscall.SIGHUP)
	kit.WaitFor(t, 5*time.Second, "SIGHUP to apply version 1", func() bool { return versionAnswer(p) == 201 })

	writeAtomically(t, file, reloadConfig(2))
	if code, body := kit.Do(context.Background(), "POST", p.admin+"/-/reload", nil, nil); code != 200 {
		t.Fatalf("POST /-/reload: %d %q", code, body)
	}
	if got := versionAnswer(p); got != 202 {
		t.Fatalf("after POST /-/reload answered, /version answers %d, want 202", got)
	}

	// Two problems at once: both named in the answer, with their pointers.
	writeAtomically(t, file, `{"admin": {"lifecycle": true}, "routes": [{"name": "x", "match": "/x", "status": 99}, {"name": "y", "match": "/y", "colour": "red"}]}`)
	code, body := kit.Do(context.Background(), "POST", p.admin+"/-/reload", nil, nil)
	if code != 500 || !strings.Contains(body, "the running config stays") ||
		!strings.Contains(body, "/routes/0/status: ") || !strings.Contains(body, "/routes/1/colour: unknown key") {
		t.Errorf("POST /-/reload of a bad file: %d %q, want 500 naming both problems", code, body)
	}
	if got := p.metrics(t).Sum("app_config_last_reload_successful"); got != 0 {
		t.Errorf("app_config_last_reload_successful %v after a refused reload, want 0", got)
	}
	if got := versionAnswer(p); got != 202 {
		t.Errorf("after a refused reload /version answers %d, want the running 202", got)
	}
}

// watchDebounce is the service's: how long its watcher waits after a change before it reloads.
const watchDebounce = 200 * time.Millisecond

// writeConfigMapVersion writes config.json into a new version directory of dir and points ..data
// at it as kubelet's AtomicWriter does: a new symlink ..data_tmp renamed over ..data, then the
// old version's directory removed.
func writeConfigMapVersion(t *testing.T, dir, version, content string) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	if err := os.Mkdir(filepath.Join(dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, version, "config.json"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConfigMapSwapReloads: anyroute runs on a mounted ConfigMap's layout (config.json a symlink
// to ..data/config.json, ..data a symlink to the timestamped directory of the current version),
// and each swap of ..data to a new version, as kubelet makes it, is applied by the watcher alone.
func TestConfigMapSwapReloads(t *testing.T) {
	dir := t.TempDir()
	writeConfigMapVersion(t, dir, "..2026_12_06_07_00_00.0", reloadConfig(0))
	file := filepath.Join(dir, "config.json")
	if err := os.Symlink(filepath.Join("..data", "config.json"), file); err != nil {
		t.Fatal(err)
	}
	p := startFile(t, file)
	for v := 1; v <= 3; v++ {
		writeConfigMapVersion(t, dir, fmt.Sprintf("..2026_12_06_07_0%d_00.%d", v, v), reloadConfig(v))
		kit.WaitFor(t, 5*time.Second, fmt.Sprintf("the watcher to apply version %d", v), func() bool { return versionAnswer(p) == 200+v })
	}
	if n := strings.Count(p.Logs(), `source="file change"`); n != 3 {
		t.Errorf("%d reloads by the watcher, want 3 (one a swap)", n)
	}
	if got := p.metrics(t).Sum("app_config_last_reload_successful"); got != 1 {
		t.Errorf("app_config_last_reload_successful %v, want 1", got)
	}
}

// raceConfig is TestPatchRacesFileReloadAndSIGHUP's file: route a answers the version, b 200.
func raceConfig(version int) string {
	return fmt.Sprintf(`{"admin": {"lifecycle": true}, "routes": [{"name": "a", "match": "/a/*", "status": %d}, {"name": "b", "match": "/b/*"}]}`, 200+version)
}

// appliedBy counts the changes the process logged as applied, asked by source.
func appliedBy(p *proc, source string) int {
	n := 0
	for line := range strings.SplitSeq(p.Logs(), "\n") {
		if strings.Contains(line, `msg="config applied"`) && strings.Contains(line, "source="+source) {
			n++
		}
	}
	return n
}

// TestPatchRacesFileReloadAndSIGHUP: each round writes the file (route a's new status), and
// after a random wait sends SIGHUP and a PATCH of route b at once, while the watcher reloads
// the file on its own. Once the watcher's and the SIGHUP's reloads are applied, a is always the
// file's, b the file's (a reload came after the patch, which it undoes, as documented) or the
// patch's (on top of the reloaded file), and the gauge is 1.
func TestPatchRacesFileReloadAndSIGHUP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	writeAtomically(t, file, raceConfig(0))
	p := startFile(t, file)
	ctx := context.Background()
	orders := map[string]int{}
	for round := 1; round <= 20; round++ {
		writeAtomically(t, file, raceConfig(round))
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond) // before, around or after the watcher's debounce
		var wg sync.WaitGroup
		wg.Go(func() { p.SignalT(t, syscall.SIGHUP) })
		var code int
		var body string
		wg.Go(func() { code, body = patchRoute(ctx, p.admin, "b", fmt.Sprintf(`{"status": %d}`, 300+round)) })
		wg.Wait()
		if code != 200 {
			t.Fatalf("round %d: PATCH: %d %q", round, code, body)
		}
		kit.WaitFor(t, 10*time.Second, fmt.Sprintf("round %d: the watcher's and the SIGHUP's reloads applied", round), func() bool {
			return appliedBy(p, `"file change"`) >= round && appliedBy(p, "SIGHUP") >= round
		})
		got := runningStatuses(t, p.admin)
		switch {
		case got["a"] != 200+round:
			t.Fatalf("round %d: a=%d, want the file's %d: a reload was lost", round, got["a"], 200+round)
		case got["b"] == 0: // the file's b: a reload came last
			orders["a reload last"]++
		case got["b"] == 300+round:
			orders["the patch last"]++
		default:
			t.Fatalf("round %d: b=%d, want the file's or the patch's %d", round, got["b"], 300+round)
		}
		if got := p.metrics(t).Sum("app_config_last_reload_successful"); got != 1 {
			t.Fatalf("round %d: app_config_last_reload_successful %v, want 1", round, got)
		}
	}
	t.Logf("orders seen: %v", orders)
}
