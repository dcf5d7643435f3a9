//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// env is one run of the test: a work directory removed at the end (kept when E2E_KEEP is set),
// the processes it started, and the timeline it prints.
type env struct {
	t   *testing.T
	dir string
	tl  *timeline

	mu    sync.Mutex
	procs []*process
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
	unregister := onInterrupt(func() {
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
			e.dumpLogs()
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
		if os.RemoveAll(filepath.Join(os.TempDir(), ent.Name())) == nil {
			t.Logf("removed %s, left by an earlier run", ent.Name())
		}
	}
}

// lockMachine serialises e2e runs on the machine: they share the test network's addresses. The
// lock file is removed at the end; a waiter that locked a file removed meanwhile tries again.
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
			unregister := onInterrupt(func() { os.Remove(path) })
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

// tool returns the path of a tool that scripts/tools.sh builds, failing when it is missing.
func (e *env) tool(name string) string {
	e.t.Helper()
	p := filepath.Join(repoRoot, ".tools", "bin", name)
	if _, err := os.Stat(p); err != nil {
		e.t.Fatalf("%s is missing: build the tools with `make e2e` or "+
			"`scripts/tools.sh etcd kube-apiserver kube-controller-manager kubectl prometheus-adapter helm`", p)
	}
	return p
}

// systemTool returns the path of a command installed from Debian (scripts/deps.sh).
func (e *env) systemTool(name string) string {
	e.t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		e.t.Fatalf("%s is not installed: run `scripts/deps.sh %s` (or `make e2e`)", name, name)
	}
	return p
}

// start runs a long-lived component, stopped at cleanup.
func (e *env) start(name string, envVars []string, bin string, args ...string) *process {
	e.t.Helper()
	p, err := startProcess(name, e.path("logs", name+".log"), envVars, bin, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.track(p)
	e.t.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

// track adds a process to those whose logs are shown when the test fails.
func (e *env) track(p *process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procs = append(e.procs, p)
}

func (e *env) dumpLogs() {
	e.mu.Lock()
	procs := append([]*process(nil), e.procs...)
	e.mu.Unlock()
	sort.SliceStable(procs, func(i, j int) bool { return procs[i].name < procs[j].name })
	for _, p := range procs {
		e.t.Logf("--- %s (%s), last lines:\n%s", p.name, p.logPath, p.tail(25))
	}
}

// waitHTTP waits until url answers 200, failing with the process's log when it ends first.
func (e *env) waitHTTP(p *process, url, token string, timeout time.Duration) {
	e.t.Helper()
	client := insecureClient(2 * time.Second)
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if ended, err := p.exited(); ended {
			e.t.Fatalf("%s exited (%v) before %s answered; its log ends:\n%s", p.name, err, url, p.tail(40))
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("%s: %s not ready within %v (last answer: %s); its log ends:\n%s", p.name, url, timeout, last, p.tail(40))
}

// insecureClient talks to the control plane's self-signed serving certificates.
func insecureClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's own throwaway certificates
		},
	}
}

// run runs a command to completion and returns its combined output.
func (e *env) run(ctx context.Context, envVars []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(childEnv(), envVars...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
