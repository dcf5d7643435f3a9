// Package test runs the real anyroute binary the way users do. `go test ./...` runs what needs
// nothing but Go; the tests that also run outside programs (Prometheus, promtool, Jaeger, helm,
// wrk) carry the build tag `external`, which `make test` sets, and fail when a program is missing.
// Real containers (test/containers) and a real control plane (test/e2e) have tags of their own.
package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// binary is the anyroute binary built once for the whole package by TestMain, with the race
// detector when the tests run with it; plainBinary is built without it, for the tests that measure
// memory.
var binary, plainBinary string

func TestMain(m *testing.M) {
	kit.CleanUpOnInterrupt("test")
	dir, err := os.MkdirTemp("", "anyroute-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plainBinary = filepath.Join(dir, "anyroute")
	binary = plainBinary
	builds := [][]string{{plainBinary}}
	if kit.Race { // -race needs cgo and a C compiler: only when the tests themselves have them
		binary = filepath.Join(dir, "anyroute-race")
		builds = append(builds, []string{binary, "-race"})
	}
	for _, b := range builds {
		if err := kit.BuildAnyroute(b[0], b[1:]...); err != nil {
			fmt.Fprintln(os.Stderr, "building anyroute:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// raceEnv keeps a race-enabled anyroute from sleeping a second at exit, as the race runtime
// otherwise does; a race it found still fails the test (kit.StartT looks for its report).
const raceEnv = "GORACE=atexit_sleep_ms=0"

// proc is a running anyroute process.
type proc struct {
	*kit.Proc
	api   string // http://host:port of the API listener
	admin string // http://host:port of the admin listener
}

// start runs anyroute with the given config document (JSON, "" for the embedded defaults) on
// free loopback ports, and waits until /readyz answers 200. The process is stopped at cleanup.
func start(t *testing.T, configJSON string, env ...string) *proc {
	t.Helper()
	return startBinary(t, binary, configJSON, env...)
}

// startBinary is start with a chosen build of anyroute.
func startBinary(t *testing.T, bin, configJSON string, env ...string) *proc {
	t.Helper()
	return startOn(t, bin, kit.FreeAddr(t), configJSON, env...)
}

// startOn is startBinary on a chosen API address, for services whose callers must know it first.
func startOn(t *testing.T, bin, apiAddr, configJSON string, env ...string) *proc {
	t.Helper()
	adminAddr := kit.FreeAddr(t)
	args := []string{"-http.addr", apiAddr, "-admin.addr", adminAddr}
	if configJSON != "" {
		file := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(file, []byte(configJSON), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-config", file)
	}
	p := &proc{
		Proc:  kit.StartT(t, kit.Cmd{Name: "anyroute", Path: bin, Args: args, Env: append([]string{raceEnv}, env...)}),
		api:   "http://" + apiAddr,
		admin: "http://" + adminAddr,
	}
	kit.WaitHTTP(t, p.Proc, p.admin+"/readyz", nil, 15*time.Second)
	return p
}

// metrics scrapes the process's admin /metrics.
func (p *proc) metrics(t *testing.T) kit.Metrics {
	t.Helper()
	return kit.ScrapeT(t, p.admin+"/metrics")
}

// runBinary runs anyroute with args to completion and returns its exit code and output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, err := kit.Run(context.Background(), kit.Cmd{Path: binary, Args: args, Env: []string{raceEnv}})
	if r.Code < 0 {
		t.Fatal(err)
	}
	return r.Code, r.Output
}
