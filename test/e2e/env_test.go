//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/anyroute/anyroute/test/kit"
)

// env is one run of the test: a work directory removed at the end (kept when E2E_KEEP is set),
// and the timeline it prints.
type env struct {
	t   *testing.T
	dir string
	tl  *timeline

	mu     sync.Mutex
	onFail []func() // what to show when the test failed, in order
}

func newEnv(t *testing.T) *env {
	t.Helper()
	lockMachine(t)
	removeStaleDirs(t)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", workDirPrefix, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, tl: newTimeline(t)}
	keep := os.Getenv("E2E_KEEP") != ""
	unregister := kit.OnInterrupt(func() {
		if !keep {
			os.RemoveAll(dir)
		}
	})
	t.Cleanup(func() {
		unregister()
		if keep {
			t.Logf("E2E_KEEP: logs and state kept in %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	// Runs after every process has stopped (cleanups run last-registered first).
	t.Cleanup(func() {
		if t.Failed() {
			e.showFailure()
		}
		e.tl.print("timeline")
	})
	return e
}

// workDirPrefix starts the name of a run's directory, followed by the test binary's pid.
const workDirPrefix = "anyroute-e2e-"

// removeStaleDirs removes the directories of runs whose process is gone (a SIGKILLed run).
func removeStaleDirs(t *testing.T) {
	entries, _ := os.ReadDir(os.TempDir())
	for _, ent := range entries {
		rest, ok := strings.CutPrefix(ent.Name(), workDirPrefix)
		pid, err := strconv.Atoi(strings.Split(rest, "-")[0])
		if !ok || !ent.IsDir() || err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		// A killed run's node is still up, its mounts inside the directory.
		downStale(filepath.Join(os.TempDir(), ent.Name()))
		if os.RemoveAll(filepath.Join(os.TempDir(), ent.Name())) == nil {
			t.Logf("removed %s, left by an earlier run", ent.Name())
		}
	}
}

// lockMachine serialises e2e runs on the machine: they share the node's bridge, addresses and
// ports. The lock file is removed at the end; a waiter that locked a file removed meanwhile tries
// again.
func lockMachine(t *testing.T) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "anyroute-e2e.lock")
	waited := false
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if !waited {
				t.Log("another e2e run holds the machine lock; waiting for it")
				waited = true
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				t.Fatal(err)
			}
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			unregister := kit.OnInterrupt(func() { os.Remove(path) })
			t.Cleanup(func() {
				unregister()
				os.Remove(path)
				f.Close()
			})
			return
		}
		f.Close()
	}
}

// path returns a path inside the run's directory, creating its parent.
func (e *env) path(elem ...string) string {
	p := filepath.Join(append([]string{e.dir}, elem...)...)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// mkdir creates a directory inside the run's directory and returns its path.
func (e *env) mkdir(elem ...string) string {
	p := filepath.Join(append([]string{e.dir}, elem...)...)
	if err := os.MkdirAll(p, 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// start runs a long-lived component, logging to logs/NAME.log; it is stopped at cleanup, and the
// end of its log shown when the test failed.
func (e *env) start(name string, envVars []string, bin string, args ...string) *kit.Proc {
	e.t.Helper()
	return kit.StartT(e.t, kit.Cmd{Name: name, Path: bin, Args: args, Env: envVars, LogFile: e.path("logs", name+".log")})
}

// whenFailed adds what to show if the test fails (the node's logs, the pods' state).
func (e *env) whenFailed(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onFail = append(e.onFail, fn)
}

func (e *env) showFailure() {
	e.mu.Lock()
	fns := append([]func(){}, e.onFail...)
	e.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// run runs a command to completion and returns its combined output.
func (e *env) run(ctx context.Context, envVars []string, bin string, args ...string) (string, error) {
	r, err := kit.Run(ctx, kit.Cmd{Path: bin, Args: args, Env: envVars})
	return r.Output, err
}
