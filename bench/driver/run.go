package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The cores: each server alone on serverCPU, wrk and everything else of the run on loadCPU.
const (
	serverCPU = "0"
	loadCPU   = "1"
	// settle outlasts anyroute's 1 s flush interval: its /metrics page is gathered once a flush,
	// so a scrape at least this long after the last one, with the server idle since, reads
	// figures of that moment.
	settle = 1200 * time.Millisecond
)

type driver struct {
	o       options
	client  *http.Client // scrapes, kept alive: one connection to each metrics port
	probe   *http.Client // readiness, not kept alive: no connection of the driver's stays open to an API
	mu      sync.Mutex
	procs   []*exec.Cmd
	servers map[string]*server
	res     *results
}

// server is one running server of the load phase.
type server struct {
	c          Case
	cmd        *exec.Cmd
	pid        int
	port       int
	url        string // what wrk asks for
	metricsURL string // its Go runtime figures, "" when it has none
	readyURL   string // anyroute's /readyz, "" for the others
	up         *server
	upAdmin    int
	logFile    string
}

func newDriver(o options) *driver {
	// The client reads the servers' metrics pages without asking for gzip: compressing its page
	// costs anyroute a compressor of about a megabyte, live for two GC cycles after each scrape,
	// which a probe taken mid-window must not add to what it measures.
	return &driver{o: o, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}},
		probe: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}, servers: map[string]*server{}, res: newResults(o)}
}

func (d *driver) run(ctx context.Context) error {
	if err := os.MkdirAll(d.o.out, 0o755); err != nil {
		return err
	}
	if err := d.portsFree(); err != nil {
		return err
	}
	if err := d.prepare(ctx); err != nil {
		return err
	}
	d.res.LoadBefore = loadAverage()
	if d.hasLoad() {
		if err := d.loadPhase(ctx); err != nil {
			return err
		}
		if err := d.memoryPhase(ctx); err != nil {
			return err
		}
	}
	if d.hasStorm() {
		if err := d.stormPhase(ctx); err != nil {
			return err
		}
	}
	d.res.LoadAfter = loadAverage()
	return d.report()
}

func (d *driver) hasLoad() bool {
	for _, c := range d.res.Run {
		if c.Group != groupScrapes {
			return true
		}
	}
	return false
}

func (d *driver) hasStorm() bool {
	for _, c := range d.res.Run {
		if c.Group == groupScrapes {
			return true
		}
	}
	return false
}

// Ports, all on 127.0.0.1: case i's API on base+i and its admin or metrics port on base+20+i;
// the call cases' upstreams from base+40, Jaeger's listeners from base+50.
func (d *driver) port(id string) int      { return d.o.portBase + caseIndex(id) }
func (d *driver) adminPort(id string) int { return d.o.portBase + 20 + caseIndex(id) }
func (d *driver) upstreamPort(id string) int {
	k := 0
	for _, c := range cases {
		if c.ID == id {
			break
		}
		if c.Upstream {
			k++
		}
	}
	return d.o.portBase + 40 + 2*k // its admin port next to it
}

// portsFree fails when any of the run's 80 ports is taken.
func (d *driver) portsFree() error {
	var taken []string
	for p := d.o.portBase; p < d.o.portBase+80; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			taken = append(taken, fmt.Sprint(p))
			continue
		}
		l.Close()
	}
	if len(taken) > 0 {
		return fmt.Errorf("ports %s are taken; set -port-base to a free block of 80 ports", strings.Join(taken, " "))
	}
	return nil
}

// prepare installs wrk, builds the servers and the helpers, the peers and Jaeger, and keeps the
// cases that can run; a peer that cannot be built is left out, and the doc says why.
func (d *driver) prepare(ctx context.Context) error {
	if out, err := d.command(ctx, "scripts/deps.sh", "wrk").CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/deps.sh wrk: %w\n%s", err, out)
	}
	builds := [][]string{
		// The two servers compared are built as the image builds anyroute
		// (deployments/docker/Dockerfile): static (CGO_ENABLED=0), symbols stripped, and anyroute
		// without the doctor, whose client-go would add a live heap that makes the garbage
		// collector run more often. Built with cgo, each maps libc too: 1.5 MiB more RSS apiece.
		{"build", "-trimpath", "-ldflags", "-s -w", "-o", d.path("bare"), "./bench/bare"},
		{"build", "-trimpath", "-ldflags", "-s -w", "-o", d.path("bare-grpc"), "./bench/bare/grpc"},
		{"build", "-o", d.path("rpcload"), "./bench/rpcload"},
		{"build", "-trimpath", "-tags", "nodoctor", "-ldflags", "-s -w", "-o", d.path("anyroute"), "./cmd/anyroute"},
	}
	// The helpers of the memory figures and of the scrape storm, when the run has them.
	memory, storm := false, false
	for _, id := range d.o.cases {
		c, _ := caseByID(id)
		memory = memory || (c.Memory && d.o.idleConns > 0)
		storm = storm || c.Group == groupScrapes
	}
	if memory {
		builds = append(builds, []string{"build", "-o", d.path("conns"), "./bench/conns"})
	}
	if storm {
		builds = append(builds, []string{"build", "-o", d.path("scrapers"), "./bench/scrapers"})
	}
	for _, b := range builds {
		cmd := d.command(ctx, d.o.goCmd, b...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %w\n%s", d.o.goCmd, strings.Join(b, " "), err, out)
		}
	}
	tracing := false
	for _, id := range d.o.cases {
		c, _ := caseByID(id)
		if c.Tool != "" {
			log := d.path("tools-" + c.Tool + ".log")
			out, err := d.command(ctx, "scripts/tools.sh", c.Tool).CombinedOutput()
			_ = os.WriteFile(log, out, 0o644)
			if err != nil {
				d.res.Missing[c.ID] = lastLines(string(out), 3)
				fmt.Fprintf(os.Stderr, "bench: %s could not be built, left out: %s\n", c.Name, d.res.Missing[c.ID])
				continue
			}
		}
		if c.Ref {
			if d.o.baselineRef == "" {
				continue
			}
			if err := d.buildRef(ctx); err != nil {
				return err
			}
			c.Name = fmt.Sprintf(c.Name, d.o.baselineRef)
		}
		tracing = tracing || c.Service != ""
		d.res.Run = append(d.res.Run, c)
	}
	if tracing {
		if out, err := d.command(ctx, "scripts/tools.sh", "jaeger").CombinedOutput(); err != nil {
			return fmt.Errorf("scripts/tools.sh jaeger: %w\n%s", err, out)
		}
	}
	d.res.Builds = d.peerBuilds()
	return nil
}

// buildRef builds anyroute from -baseline-ref's tree, whatever the working tree holds.
func (d *driver) buildRef(ctx context.Context) error {
	src := d.path("baseline-src")
	_ = os.RemoveAll(src)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	archive := d.command(ctx, "git", "archive", d.o.baselineRef)
	archive.Stderr = os.Stderr
	untar := d.command(ctx, "tar", "-x", "-C", src)
	untar.Stderr = os.Stderr
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	if err := archive.Start(); err != nil {
		return err
	}
	if err := untar.Run(); err != nil {
		return fmt.Errorf("unpacking %s: %w", d.o.baselineRef, err)
	}
	if err := archive.Wait(); err != nil {
		return fmt.Errorf("git archive %s: %w", d.o.baselineRef, err)
	}
	abs, err := filepath.Abs(d.path("baseline"))
	if err != nil {
		return err
	}
	build := d.command(ctx, d.o.goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", abs, "./cmd/anyroute")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as this tree's anyroute (prepare)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", d.o.baselineRef, err, out)
	}
	return nil
}

// peerBuilds is what scripts/tools.sh stamped for each peer of the run, by tool.
func (d *driver) peerBuilds() map[string]string {
	dir := os.Getenv("TOOLS_DIR")
	if dir == "" {
		dir = ".tools"
	}
	builds := map[string]string{}
	for _, c := range d.res.Run {
		if c.Tool == "" || builds[c.Tool] != "" {
			continue
		}
		builds[c.Tool] = "not built"
		if m, _ := filepath.Glob(filepath.Join(dir, "stamps", c.Tool+"-*")); len(m) > 0 {
			if b, err := os.ReadFile(m[0]); err == nil {
				builds[c.Tool] = strings.TrimSpace(string(b))
			}
		}
	}
	return builds
}

func (d *driver) toolsBin(name string) string {
	dir := os.Getenv("TOOLS_DIR")
	if dir == "" {
		dir = ".tools"
	}
	return filepath.Join(dir, "bin", name)
}

func (d *driver) path(name string) string { return filepath.Join(d.o.out, name) }

func (d *driver) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	// A canceled command's children may outlive it holding its output pipe (scripts/tools.sh's
	// flock waiting on another build's lock): without a WaitDelay, CombinedOutput would wait
	// for them past the context, up to the test's own timeout.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// start runs a command pinned to cpu in the background, its output appended to logFile.
func (d *driver) start(cpu, logFile string, env []string, name string, args ...string) (*exec.Cmd, error) {
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command("taskset", append([]string{"-c", cpu, name}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.procs = append(d.procs, cmd)
	d.mu.Unlock()
	return cmd, nil
}

// stop ends one process the run started: SIGTERM, then SIGKILL after 10 s.
func (d *driver) stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	d.mu.Lock()
	for i, p := range d.procs {
		if p == cmd {
			d.procs = append(d.procs[:i], d.procs[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// stopAll ends every process the run started and has not stopped.
func (d *driver) stopAll() {
	d.mu.Lock()
	procs := append([]*exec.Cmd(nil), d.procs...)
	d.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		d.stop(procs[i])
	}
}

// waitHTTP waits until url answers 2xx, or 15 s.
func (d *driver) waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := d.probe.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never answered", url)
}

// waitTCP waits until addr accepts a connection, or 15 s.
func (d *driver) waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never accepted a connection", addr)
}

// scrape reads a server's metrics page.
func (d *driver) scrape(url string) (samples, error) {
	resp, err := d.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseSamples(string(b)), nil
}

// load runs the case's client against s for dur, saving its output to save: wrk for HTTP/1.1,
// bench/rpcload for gRPC and h2c.
func (d *driver) load(ctx context.Context, s *server, dur time.Duration, save string) (wrkResult, error) {
	if s.c.Proto == protoHTTP1 {
		return d.wrk(ctx, s.url, dur, "", save)
	}
	return d.rpcload(ctx, s, dur, save)
}

// rpcload runs bench/rpcload on the load core for dur against s: -connections calls in flight
// over -h2-connections connections, saving its output to save.
func (d *driver) rpcload(ctx context.Context, s *server, dur time.Duration, save string) (wrkResult, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "taskset", "-c", loadCPU, d.path("rpcload"), "-proto", s.c.Proto,
		"-addr", fmt.Sprintf("127.0.0.1:%d", s.port), "-target", s.c.Path,
		"-c", fmt.Sprint(d.o.connections), "-conns", fmt.Sprint(d.o.h2Conns), "-d", dur.String())
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if save != "" {
		_ = os.WriteFile(save, out.Bytes(), 0o644)
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("rpcload %s %s: %w\n%s", s.c.Proto, s.c.ID, err, out.String())
	}
	return parseRPCLoad(out.String())
}

// wrk runs wrk on the load core for dur against url, saving its output to save.
func (d *driver) wrk(ctx context.Context, url string, dur time.Duration, script, save string) (wrkResult, error) {
	args := []string{"-c", loadCPU, "wrk", "-t1", fmt.Sprintf("-c%d", d.o.connections),
		fmt.Sprintf("-d%ds", int(dur/time.Second)), "--latency"}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, url)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "taskset", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if save != "" {
		_ = os.WriteFile(save, out.Bytes(), 0o644)
	}
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out.String())
	}
	return parseWrk(out.String())
}

func lastLines(s string, n int) string {
	var keep []string
	for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "go: downloading") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], " ")
}

func nan() float64 { return math.NaN() }

// waited is a started process whose end the run waits for rather than brings about.
type waited struct {
	d   *driver
	cmd *exec.Cmd
}

func (d *driver) waiter(cmd *exec.Cmd) waited { return waited{d, cmd} }

// Wait waits for the process to exit and forgets it.
func (w waited) Wait() error {
	err := w.cmd.Wait()
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	for i, p := range w.d.procs {
		if p == w.cmd {
			w.d.procs = append(w.d.procs[:i], w.d.procs[i+1:]...)
			break
		}
	}
	return err
}
