package kit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as the program the process tests run: the test binary itself, told what to do
// by KIT_HELPER, so that the kit's tests need nothing but Go.
func TestMain(m *testing.M) {
	switch os.Getenv("KIT_HELPER") {
	case "":
		os.Exit(m.Run())
	case "exit3":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(3)
	case "term-exits-0":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("waiting")
		<-sig
		fmt.Println("terminated")
		os.Exit(0)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("waiting")
		time.Sleep(time.Minute)
	}
	os.Exit(99)
}

func helper(name string) Cmd {
	return Cmd{Name: "helper " + name, Path: os.Args[0], Env: []string{"KIT_HELPER=" + name}}
}

func TestFreePortsAreNeverHandedOutTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		for _, addr := range []string{"tcp " + FreeAddr(t), "udp " + FreeUDPAddr(t)} {
			if seen[addr] {
				t.Fatalf("%s handed out twice", addr)
			}
			seen[addr] = true
		}
	}
}

func TestProcKeepsOutputAndExitCode(t *testing.T) {
	for _, logFile := range []string{"", t.TempDir() + "/helper.log"} {
		c := helper("exit3")
		c.LogFile = logFile
		p := StartT(t, c)
		if code := p.WaitExit(t, 10*time.Second); code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
		if logs := p.Logs(); !strings.Contains(logs, "to stdout\n") || !strings.Contains(logs, "to stderr\n") {
			t.Errorf("logs (file %q): %q", logFile, logs)
		}
		if tail := p.Tail(1); tail != "    | to stdout" && tail != "    | to stderr" {
			t.Errorf("tail: %q", tail)
		}
		if err := p.UnexpectedExit(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("UnexpectedExit: %v", err)
		}
	}
}

func TestStopSendsSIGTERMThenSIGKILL(t *testing.T) {
	polite := StartT(t, helper("term-exits-0"))
	WaitFor(t, 10*time.Second, "the helper to run", func() bool { return strings.Contains(polite.Logs(), "waiting") })
	polite.Stop(10 * time.Second)
	if code, err := polite.Wait(0); code != 0 || err != nil || !strings.Contains(polite.Logs(), "terminated") {
		t.Errorf("after SIGTERM: exit %d %v, output %q", code, err, polite.Logs())
	}
	if err := polite.UnexpectedExit(); err != nil {
		t.Errorf("a stopped process reported as ending unexpectedly: %v", err)
	}

	stubborn := StartT(t, helper("ignore-term"))
	WaitFor(t, 10*time.Second, "the helper to run", func() bool { return strings.Contains(stubborn.Logs(), "waiting") })
	begin := time.Now()
	stubborn.Stop(300 * time.Millisecond)
	if code, err := stubborn.Wait(0); code != -1 || err != nil {
		t.Errorf("after SIGKILL: exit %d %v, want -1 (a signal)", code, err)
	}
	if d := time.Since(begin); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("Stop took %v with a grace of 300ms", d)
	}
}

func TestRunReportsStreamsAndExitCode(t *testing.T) {
	r, err := Run(context.Background(), helper("exit3"))
	var ee *exec.ExitError
	if r.Code != 3 || !errors.As(err, &ee) || r.Stdout != "to stdout\n" || r.Stderr != "to stderr\n" ||
		!strings.Contains(r.Output, "to stdout\n") || !strings.Contains(err.Error(), "to stderr") {
		t.Errorf("Run: %+v, %v", r, err)
	}
	if r, err := Run(context.Background(), Cmd{Path: "/nonexistent/program"}); r.Code != -1 || err == nil {
		t.Errorf("Run of a missing program: %+v, %v", r, err)
	}
}

// failTB records a test's failure instead of failing; Fatalf ends the goroutine, as it does.
type failTB struct {
	testing.TB
	msg string
}

func (f *failTB) Helper() {}
func (f *failTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func failure(f func(t testing.TB)) string {
	tb := &failTB{}
	done := make(chan struct{})
	go func() { defer close(done); f(tb) }()
	<-done
	return tb.msg
}

func TestWaitUntilPollsToTheDeadline(t *testing.T) {
	n := 0
	WaitFor(t, 5*time.Second, "the third call", func() bool { n++; return n == 3 })

	begin := time.Now()
	msg := failure(func(tb testing.TB) {
		WaitUntil(tb, 200*time.Millisecond, "never", func() (bool, string, error) { return false, "still no", nil })
	})
	if d := time.Since(begin); msg != "timed out after 200ms waiting for never (last seen: still no)" || d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("after %v: %q", d, msg)
	}
	msg = failure(func(tb testing.TB) {
		WaitUntil(tb, time.Hour, "a lost cause", func() (bool, string, error) { return false, "", errors.New("gone") })
	})
	if msg != "waiting for a lost cause: gone" {
		t.Errorf("an error must fail at once: %q", msg)
	}
}

func TestParseEchoHoldsTheEncoderToTheType(t *testing.T) {
	e, err := ParseEcho(`{"method":"GET","path":"/a","query":"","route":"other","status":200,"instance":"h","trace_id":""}`)
	if err != nil || e.Method != "GET" || e.Status != 200 {
		t.Errorf("a valid echo: %+v %v", e, err)
	}
	for _, bad := range []string{`{"method":"GET","colour":"red"}`, `{"method":"GET"} {}`, `not json`} {
		if _, err := ParseEcho(bad); err == nil {
			t.Errorf("ParseEcho accepted %s", bad)
		}
	}
}

func TestBinaryPlatformReadsTheHeader(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	goos, goarch, err := BinaryPlatform(b)
	if err != nil || goos != runtime.GOOS || goarch != runtime.GOARCH {
		t.Errorf("the test binary: %s/%s, %v; want %s/%s", goos, goarch, err, runtime.GOOS, runtime.GOARCH)
	}
	if goos, goarch, err := BinaryPlatform([]byte("#!/bin/sh\n")); err == nil {
		t.Errorf("a shell script: %s/%s, want an error", goos, goarch)
	}
}
