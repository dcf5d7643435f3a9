// Package test runs the real anyroute binary, and with build tags real containers and a real
// control plane, the way users do.
package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the anyroute binary built once for the whole package by TestMain, with the race
// detector; plainBinary is built without it, for the tests that measure memory.
var binary, plainBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "anyroute-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "anyroute-race")
	plainBinary = filepath.Join(dir, "anyroute")
	for _, args := range [][]string{{"-race", "-o", binary}, {"-o", plainBinary}} {
		build := exec.Command("go", append(append([]string{"build"}, args...), "../cmd/anyroute")...)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building anyroute:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running anyroute process.
type proc struct {
	cmd    *exec.Cmd
	api    string // http://host:port of the API listener
	admin  string // http://host:port of the admin listener
	logs   *syncBuffer
	done   chan struct{}
	exitMu sync.Mutex
	exit   error
}

// start runs anyroute with the given config document (JSON, "" for the embedded defaults) on
// free loopback ports, and waits until /readyz answers 200. The process is killed at cleanup.
func start(t *testing.T, configJSON string, env ...string) *proc {
	t.Helper()
	return startBinary(t, binary, configJSON, env...)
}

// startBinary is start with a chosen build of anyroute.
func startBinary(t *testing.T, bin, configJSON string, env ...string) *proc {
	t.Helper()
	apiAddr, adminAddr := freeAddr(t), freeAddr(t)
	args := []string{"-http.addr", apiAddr, "-admin.addr", adminAddr}
	if configJSON != "" {
		file := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(file, []byte(configJSON), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-config", file)
	}
	p := &proc{
		cmd:   exec.Command(bin, args...),
		api:   "http://" + apiAddr,
		admin: "http://" + adminAddr,
		logs:  &syncBuffer{},
		done:  make(chan struct{}),
	}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exitMu.Lock()
		p.exit = err
		p.exitMu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("anyroute output:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if code, _ := get(p.admin + "/readyz"); code == http.StatusOK {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("anyroute exited before it was ready: %v\n%s", p.exitErr(), p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("anyroute not ready after 15s:\n%s", p.logs.String())
		}
	}
}

func (p *proc) exitErr() error {
	p.exitMu.Lock()
	defer p.exitMu.Unlock()
	return p.exit
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("anyroute still running %v after the signal", timeout)
	}
	if err := p.exitErr(); err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			return ee.ExitCode()
		}
		t.Fatal(err)
	}
	return 0
}

var client = &http.Client{Timeout: 30 * time.Second}

// get returns the status and body of a GET, or 0 when the request failed.
func get(url string) (int, string) {
	return do(context.Background(), "GET", url, nil)
}

func do(ctx context.Context, method, url string, body io.Reader) (int, string) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runBinary runs anyroute with args to completion and returns its exit code and output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}
