//go:build external

package test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// The tool these tests build: fortio, the smallest of scripts/tools.sh's, which make test's
// test-deps has built already, so that a build here is mostly a link from the Go build cache.
const smallTool = "fortio"

// toolsRun runs scripts/tools.sh for smallTool with its tree in dir and its cache in cache
// (empty: none).
func toolsRun(ctx context.Context, t *testing.T, dir, cache string) (string, error) {
	t.Helper()
	r, err := kit.Run(ctx, kit.Cmd{Path: kit.RepoPath(t, "scripts", "tools.sh"), Args: []string{smallTool},
		Env: []string{"TOOLS_DIR=" + dir, "TOOLS_CACHE=" + cache}})
	return r.Output, err
}

// TestToolsCacheServesANewTree: a tool built into one tree is copied, not built, into a new one
// (a fresh clone) from TOOLS_CACHE, binary and stamp alike; with TOOLS_CACHE empty it is built.
func TestToolsCacheServesANewTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	tmp, cache := t.TempDir(), t.TempDir()
	first, second, uncached := filepath.Join(tmp, "first"), filepath.Join(tmp, "second"), filepath.Join(tmp, "uncached")

	out, err := toolsRun(ctx, t, first, cache)
	if err != nil || !strings.Contains(out, ": built in ") {
		t.Fatalf("the first tree: want a build, got %v:\n%s", err, out)
	}
	out, err = toolsRun(ctx, t, second, cache)
	if err != nil || !regexp.MustCompile(`: copied from `+regexp.QuoteMeta(cache)+`/`+smallTool+`-`).MatchString(out) {
		t.Fatalf("the second tree: want a copy from %s, got %v:\n%s", cache, err, out)
	}
	for _, rel := range []string{filepath.Join("bin", smallTool), filepath.Join("stamps", smallTool+"-*")} {
		a, b := glob1(t, filepath.Join(first, rel)), glob1(t, filepath.Join(second, rel))
		if !bytes.Equal(readFile(t, a), readFile(t, b)) {
			t.Errorf("%s differs between the built tree and the copied one", rel)
		}
	}
	out, err = toolsRun(ctx, t, uncached, "")
	if err != nil || !strings.Contains(out, ": built in ") {
		t.Fatalf("TOOLS_CACHE empty: want a build, got %v:\n%s", err, out)
	}
}

// TestToolsLockIsPerTool: a run that needs a tool whose lock another run holds waits until it is
// released; a lock of other tools (the Kubernetes build's) does not hold it up.
func TestToolsLockIsPerTool(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	tmp, cache := t.TempDir(), t.TempDir()
	if out, err := toolsRun(ctx, t, filepath.Join(tmp, "warm"), cache); err != nil {
		t.Fatalf("filling the cache: %v\n%s", err, out)
	}

	dir := filepath.Join(tmp, "tree")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	other := holdLock(t, filepath.Join(dir, ".lock-kubernetes"))
	defer other()
	if out, err := toolsRun(ctx, t, dir, cache); err != nil || !strings.Contains(out, ": copied from ") {
		t.Fatalf("with the Kubernetes build's lock held: want a copy, got %v:\n%s", err, out)
	}

	dir = filepath.Join(tmp, "waits")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, filepath.Join(dir, ".lock-"+smallTool))
	done := make(chan string, 1)
	go func() {
		out, err := toolsRun(ctx, t, dir, cache)
		if err != nil {
			out += "\n" + err.Error()
		}
		done <- out
	}()
	select {
	case out := <-done:
		release()
		t.Fatalf("finished while another run held %s's lock:\n%s", smallTool, out)
	case <-time.After(3 * time.Second):
	}
	release()
	select {
	case out := <-done:
		if !strings.Contains(out, ": copied from ") {
			t.Fatalf("after the lock was released: want a copy, got:\n%s", out)
		}
	case <-ctx.Done():
		t.Fatal("still waiting after the lock was released")
	}
}

// holdLock takes the flock scripts/tools.sh takes on path, as a run building that tool holds it;
// the returned func releases it.
func holdLock(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { _ = f.Close() }
}

func glob1(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: want one file, got %v (%v)", pattern, m, err)
	}
	return m[0]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
