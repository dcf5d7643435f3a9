package kit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cmd is a program for Start, StartT or Run.
type Cmd struct {
	Name    string   // in messages; the program's base name when empty
	Path    string   // the program
	Args    []string // its arguments
	Env     []string // added to the environment that Env returns
	Dir     string   // its working directory; the test's when empty
	Stdin   io.Reader
	LogFile string        // Start: the file its output is appended to; empty keeps it in memory
	Grace   time.Duration // StartT: how long the cleanup waits after SIGTERM before SIGKILL; 5s when 0
}

func (c Cmd) name() string {
	if c.Name != "" {
		return c.Name
	}
	return filepath.Base(c.Path)
}

// Env returns the test's environment without proxy settings, with extra added: the programs the
// tests run talk to loopback and to the tests' own addresses only, never through a proxy.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(name) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "NO_PROXY=*", "no_proxy=*")
	return append(env, extra...)
}

// Proc is a program started by Start. Its output is kept, in memory or in its log file; it runs
// in its own process group, which Stop and an interrupted test binary end.
type Proc struct {
	Name    string
	cmd     *exec.Cmd
	logFile string  // the output, when it goes to a file
	mem     *buffer // the output, when it is kept in memory
	done    chan struct{}

	mu       sync.Mutex
	err      error // what Wait returned, once done is closed
	stopping bool
}

// Start starts a program.
func Start(c Cmd) (*Proc, error) {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = Env(c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.SysProcAttr = sysProcAttr()
	// A grandchild that keeps the output pipe open must not keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	p := &Proc{Name: c.name(), cmd: cmd, done: make(chan struct{})}
	var logFile *os.File
	if c.LogFile != "" {
		f, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", p.Name, err)
		}
		logFile, p.logFile = f, c.LogFile
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		p.mem = &buffer{}
		cmd.Stdout, cmd.Stderr = p.mem, p.mem
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", p.Name, err)
	}
	unregister := OnInterrupt(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	go func() {
		err := cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		unregister()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// StartT starts a program for the test, failing it when the program does not start. At cleanup
// the program is stopped (SIGTERM, SIGKILL after c.Grace); its output is logged when the test
// failed, and a data race the race detector reported in it fails the test.
func StartT(t testing.TB, c Cmd) *Proc {
	t.Helper()
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	grace := c.Grace
	if grace == 0 {
		grace = 5 * time.Second
	}
	t.Cleanup(func() {
		p.Stop(grace)
		switch {
		case strings.Contains(p.Logs(), "WARNING: DATA RACE"):
			t.Errorf("%s: the race detector reported a data race:\n%s", p.Name, p.Logs())
		case t.Failed():
			t.Logf("--- %s %s", p.Name, p.dump())
		}
	})
	return p
}

// dump is the output to show of a failed test: all of it from memory, the end of a log file.
func (p *Proc) dump() string {
	if p.mem != nil {
		return "output:\n" + p.mem.String()
	}
	return "(" + p.logFile + "), last lines:\n" + p.Tail(40)
}

// Pid is the program's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the program has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signal sends sig to the program (not to its process group).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// SignalT is Signal, failing the test when the signal cannot be sent.
func (p *Proc) SignalT(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}

// Stop ends the program: SIGTERM to its process group, SIGKILL when it has not ended within
// grace. It returns once the program has ended.
func (p *Proc) Stop(grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if ended, _ := p.Exited(); ended {
		return
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the program has ended, and with what error from exec (nil for exit 0).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// UnexpectedExit returns an error, with the end of the program's output, when it has ended
// without Stop asking it to.
func (p *Proc) UnexpectedExit() error {
	ended, err := p.Exited()
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	if !ended || stopping {
		return nil
	}
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("%s exited unexpectedly (%w); its output ends:\n%s", p.Name, err, p.Tail(40))
}

// Wait waits up to timeout for the program to end and returns its exit code (-1 when a signal
// ended it).
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	if ended, err := p.Exited(); ended {
		return exitCode(err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s still running after %v", p.Name, timeout)
	}
	_, err := p.Exited()
	return exitCode(err)
}

// WaitExit is Wait, failing the test when the program runs on past timeout.
func (p *Proc) WaitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	code, err := p.Wait(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// exitCode turns what exec returned into an exit code; err is kept only when it is not about the
// exit status.
func exitCode(err error) (int, error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	default:
		return -1, err
	}
}

// Logs returns everything the program has written so far.
func (p *Proc) Logs() string {
	if p.mem != nil {
		return p.mem.String()
	}
	b, err := os.ReadFile(p.logFile)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Tail returns the last lines of the program's output, indented.
func (p *Proc) Tail(lines int) string {
	var b []byte
	if p.mem != nil {
		b = []byte(p.mem.String())
	} else {
		b = tailBytes(p.logFile, 64<<10)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return "    | " + strings.Join(all, "\n    | ")
}

func tailBytes(path string, maxBytes int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return []byte(err.Error())
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		_, _ = f.Seek(st.Size()-maxBytes, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return b
}

// Result is what a program that Run ran did.
type Result struct {
	Stdout, Stderr string
	Output         string // stdout and stderr, interleaved as written
	Code           int    // the exit code; -1 when a signal ended it or it did not start
}

// Run runs a program to completion; ctx ending kills it. The error, for a program that did not
// start, did not exit 0 or was killed, names the command and holds its output; it wraps the
// *exec.ExitError of a non-zero exit.
func Run(ctx context.Context, c Cmd) (Result, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = Env(c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr, both buffer
	cmd.Stdout = io.MultiWriter(&stdout, &both)
	cmd.Stderr = io.MultiWriter(&stderr, &both)
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Output: both.String()}
	r.Code, _ = exitCode(err)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w\n%s", c.name(), strings.Join(c.Args, " "), err, r.Output)
	}
	return r, nil
}

// buffer collects a program's output while the test reads it.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
