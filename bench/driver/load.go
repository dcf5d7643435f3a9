package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startServer starts a case's server on the server core, and the upstream it calls on the load
// core, and waits until both answer.
func (d *driver) startServer(ctx context.Context, c Case, logSuffix string) (*server, error) {
	s := &server{c: c, port: d.port(c.ID), logFile: d.path(c.ID + logSuffix + ".log")}
	s.url = fmt.Sprintf("http://127.0.0.1:%d%s", s.port, c.Path)
	admin := fmt.Sprintf("127.0.0.1:%d", d.adminPort(c.ID))
	upstream := ""
	if c.Upstream {
		upPort := d.upstreamPort(c.ID)
		upstream = fmt.Sprintf("127.0.0.1:%d", upPort)
		up := &server{port: upPort, upAdmin: upPort + 1, logFile: d.path(c.ID + "-upstream" + logSuffix + ".log")}
		cmd, err := d.start(loadCPU, up.logFile, nil, d.path("anyroute"),
			"-http.addr", upstream, "-admin.addr", fmt.Sprintf("127.0.0.1:%d", up.upAdmin))
		if err != nil {
			return nil, err
		}
		up.cmd, up.pid = cmd, cmd.Process.Pid
		if err := d.waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", up.upAdmin)); err != nil {
			return nil, fmt.Errorf("%s's upstream: %w", c.ID, err)
		}
		s.up = up
	}
	var name string
	var args, env []string
	switch c.Kind {
	case kindBare:
		name, args = d.path("bare"), []string{"-addr", fmt.Sprintf("127.0.0.1:%d", s.port), "-metrics", admin}
		switch {
		case c.Upstream:
			args = append(args, "-upstream", "http://"+upstream+"/up/")
		case c.Proto == protoGRPC:
			name = d.path("bare-grpc")
		case c.Proto == protoH2C:
			args = append(args, "-h2c")
		}
		s.metricsURL = "http://" + admin + "/metrics"
	case kindAnyroute:
		cfg := d.path("config-" + c.ID + ".json")
		body := strings.NewReplacer("{agent}", d.jaegerAgent(), "{otlp}", d.jaegerOTLP(), "{upstream}", upstream).Replace(c.Config)
		if err := os.WriteFile(cfg, []byte(body+"\n"), 0o644); err != nil {
			return nil, err
		}
		name, args = d.path("anyroute"), []string{"-config", cfg, "-http.addr", fmt.Sprintf("127.0.0.1:%d", s.port), "-admin.addr", admin}
		if c.Proto == protoGRPC {
			// The case's port is the gRPC listener's; the API, which no client of the case
			// asks, takes a port of the kernel's choosing.
			args = []string{"-config", cfg, "-http.addr", "127.0.0.1:0", "-grpc.addr", fmt.Sprintf("127.0.0.1:%d", s.port), "-admin.addr", admin}
		}
		s.metricsURL = "http://" + admin + "/metrics"
		s.readyURL = "http://" + admin + "/readyz"
	case kindPeer:
		// Their per-request logs off (anyroute's access log is off by default too).
		name = d.toolsBin(c.Tool)
		port := fmt.Sprint(s.port)
		switch c.Tool {
		case "podinfo":
			data := d.path("podinfo-data")
			_ = os.MkdirAll(data, 0o755)
			args = []string{"--host", "127.0.0.1", "--port", port, "--level", "warn", "--data-path", data, "--ui-path", data}
			s.metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", s.port)
		case "go-httpbin":
			args = []string{"-host", "127.0.0.1", "-port", port, "-log-level", "WARN"}
		case "fortio":
			httpAddr, grpcAddr := "127.0.0.1:"+port, "disabled"
			if c.Proto == protoGRPC { // its gRPC ping on the case's port, its HTTP server aside
				httpAddr, grpcAddr = admin, "127.0.0.1:"+port
			}
			args = []string{"server", "-http-port", httpAddr, "-loglevel", "warning", "-ui-path", "",
				"-tcp-port", "disabled", "-udp-port", "disabled", "-grpc-port", grpcAddr, "-redirect-port", "disabled"}
		}
	default:
		return nil, fmt.Errorf("case %s is not a load case", c.ID)
	}
	cmd, err := d.start(serverCPU, s.logFile, env, name, args...)
	if err != nil {
		return nil, err
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	if err := d.waitReady(ctx, s); err != nil {
		return nil, fmt.Errorf("%s: %w (log: %s)", c.ID, err, s.logFile)
	}
	return s, nil
}

// waitReady waits until the server answers: an HTTP server (h2c ones speak HTTP/1.1 too) its
// case's request; a gRPC one accepts connections, with anyroute's /readyz and the bare server's
// metrics page answering too.
func (d *driver) waitReady(ctx context.Context, s *server) error {
	if s.c.Proto != protoGRPC {
		return d.waitHTTP(ctx, s.url)
	}
	for _, u := range []string{s.readyURL, s.metricsURL} {
		if u != "" {
			if err := d.waitHTTP(ctx, u); err != nil {
				return err
			}
		}
	}
	return d.waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", s.port))
}

func (d *driver) stopServer(s *server) {
	d.stop(s.cmd)
	if s.up != nil {
		d.stop(s.up.cmd)
	}
}

// Jaeger's listeners, moved into the run's port block in the order of jaegerKeys.
var jaegerKeys = []string{"extensions.jaeger_query.http", "extensions.jaeger_query.grpc", "extensions.remote_sampling.http",
	"extensions.remote_sampling.grpc", "extensions.healthcheckv2.http", "extensions.healthcheckv2.grpc",
	"receivers.otlp.protocols.grpc", "receivers.otlp.protocols.http", "receivers.jaeger.protocols.grpc",
	"receivers.jaeger.protocols.thrift_http", "receivers.jaeger.protocols.thrift_binary",
	"receivers.jaeger.protocols.thrift_compact", "receivers.zipkin"}

func (d *driver) jaegerPort(key string) int {
	for i, k := range jaegerKeys {
		if k == key {
			return d.o.portBase + 50 + i
		}
	}
	panic(key)
}

func (d *driver) jaegerAgent() string {
	return fmt.Sprintf("127.0.0.1:%d", d.jaegerPort("receivers.jaeger.protocols.thrift_compact"))
}

func (d *driver) jaegerOTLP() string {
	return fmt.Sprintf("127.0.0.1:%d", d.jaegerPort("receivers.otlp.protocols.http"))
}

// startJaeger runs Jaeger on the load core; it receives the traced cases' spans.
func (d *driver) startJaeger(ctx context.Context) (func(), error) {
	args := []string{"--config", "file:scripts/jaeger-config.yaml", "--set=service.telemetry.metrics.level=none"}
	for _, k := range jaegerKeys {
		args = append(args, fmt.Sprintf("--set=%s.endpoint=127.0.0.1:%d", k, d.jaegerPort(k)))
	}
	cmd, err := d.start(loadCPU, d.path("jaeger.log"), []string{"JAEGER_LISTEN_HOST=127.0.0.1"}, d.toolsBin("jaeger"), args...)
	if err != nil {
		return nil, err
	}
	stop := func() { d.stop(cmd) }
	for _, u := range []string{
		fmt.Sprintf("http://127.0.0.1:%d/status", d.jaegerPort("extensions.healthcheckv2.http")),
		fmt.Sprintf("http://127.0.0.1:%d/api/services", d.jaegerPort("extensions.jaeger_query.http")),
	} {
		if err := d.waitHTTP(ctx, u); err != nil {
			stop()
			return nil, fmt.Errorf("jaeger: %w", err)
		}
	}
	return stop, nil
}

// loadPhase measures every paired case against its baseline: all servers warm at once, each
// idle but for its own windows, and pairs of windows interleaved across the cases.
func (d *driver) loadPhase(ctx context.Context) error {
	var load []Case
	tracing := false
	for _, c := range d.res.Run {
		if c.Group != groupScrapes {
			load = append(load, c)
			tracing = tracing || c.Service != ""
		}
	}
	if tracing {
		stop, err := d.startJaeger(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	for _, c := range load {
		s, err := d.startServer(ctx, c, "")
		if err != nil {
			return err
		}
		d.servers[c.ID] = s
		f := d.res.figures(c.ID)
		f.RSSIdle, _ = rssMiB(s.pid)
		if s.up != nil {
			f.UpstreamURL = fmt.Sprintf("http://127.0.0.1:%d/up/{path}", s.up.port)
		}
		d.res.Figures[c.ID] = f
	}
	for _, c := range load {
		fmt.Printf("bench: warming up %s\n", c.Name)
		if _, err := d.load(ctx, d.servers[c.ID], d.o.warmup, ""); err != nil {
			return err
		}
	}
	// The request counts first: their reads are scrapes, which the allocation figures, from
	// begin on, must not hold. They wait a settle at least, which the snapshots need too.
	countsBegin := d.requestCounts(d.counted())
	begin := d.snapshots()

	var paired []Case
	for _, c := range load {
		if c.Base != "" {
			paired = append(paired, c)
		}
	}
	for round := 1; round <= d.o.pairs; round++ {
		fmt.Printf("bench: pair %d of %d (load average %s)\n", round, d.o.pairs, loadAverage())
		for i := range paired {
			// Forward in odd rounds, backward in even ones; within a pair, which goes first
			// alternates too, so that neither the order nor the place in a round is favoured.
			j := i
			if round%2 == 0 {
				j = len(paired) - 1 - i
			}
			c := paired[j]
			subject, base := d.servers[c.ID], d.servers[c.Base]
			first, second := subject, base
			if (round+i)%2 == 0 {
				first, second = base, subject
			}
			w1, err := d.window(ctx, first, fmt.Sprintf("%s-%d-%s", first.c.ID, round, c.ID))
			if err != nil {
				return err
			}
			w2, err := d.window(ctx, second, fmt.Sprintf("%s-%d-%s", second.c.ID, round, c.ID))
			if err != nil {
				return err
			}
			if first != subject {
				w1, w2 = w2, w1
			}
			d.res.Pairs[c.ID] = append(d.res.Pairs[c.ID], pair{Round: round, Subject: w1, Base: w2})
			d.res.Windows[c.ID] = append(d.res.Windows[c.ID], w1)
			d.res.Windows[c.Base] = append(d.res.Windows[c.Base], w2)
			fmt.Printf("bench: %s: %.1f µs CPU a request, %.2f× %s's (%.0f against %.0f req/s)\n",
				c.Name, w1.CPUPerRequest(), w1.CPUPerRequest()/w2.CPUPerRequest(), c.Base, w1.RPS, w2.RPS)
		}
	}
	time.Sleep(settle)
	end := d.snapshots()
	for _, c := range load {
		d.totals(c.ID, begin[c.ID], end[c.ID])
	}
	for id, n := range d.requestCounts(d.counted()) {
		d.res.Figures[id].Counted = n - countsBegin[id]
	}
	if tracing {
		d.checkTraced()
	}
	for _, c := range load {
		s := d.servers[c.ID]
		if s.up != nil {
			f := d.res.Figures[c.ID]
			if page, err := d.scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.up.upAdmin)); err == nil {
				f.UpCalls = page["app_requests_total"]
			}
			d.stop(s.up.cmd)
			if n := connectionsAccepted(s.up.logFile); n >= 0 {
				f.UpAccepted = n
			}
		}
		d.stop(s.cmd)
		delete(d.servers, c.ID)
	}
	return nil
}

// snapshots reads every server's Go runtime figures; servers without them have none.
func (d *driver) snapshots() map[string]samples {
	m := map[string]samples{}
	for id, s := range d.servers {
		if s.metricsURL == "" {
			continue
		}
		page, err := d.scrape(s.metricsURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", id, err)
			continue
		}
		m[id] = page
	}
	return m
}

// totals sets the case's allocations, bytes and GC cycles per request over its windows, from the
// counters read before the first window and after the last, the server idle but for its windows
// (and one scrape each) between them.
func (d *driver) totals(id string, begin, end samples) {
	f := d.res.figures(id)
	d.res.Figures[id] = f
	var requests float64
	for _, w := range d.res.Windows[id] {
		requests += w.Requests
	}
	if begin == nil || end == nil || requests == 0 {
		return
	}
	delta := func(names []string) float64 {
		a, ok1 := begin.first(names...)
		b, ok2 := end.first(names...)
		if !ok1 || !ok2 {
			return nan()
		}
		return b - a
	}
	f.Allocs = delta(metricMallocs) / requests
	f.Bytes = delta(metricAllocated) / requests
	f.GC = delta(metricGCCycles) / requests * 1000
}

// counted are the cases whose requests the driver checks against the server's count: anyroute's
// gRPC and h2c cases, whose client (bench/rpcload) counts every call it starts.
func (d *driver) counted() []string {
	var ids []string
	for _, c := range d.res.Run {
		if c.Kind == kindAnyroute && c.Proto != protoHTTP1 {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// requestCounts reads app_requests_total of each server of ids, idle, again a settle later until
// two reads agree: anyroute's page changes once a flush, and on a loaded machine a flush may come
// late. NaN where no two reads agreed. It returns a settle later at least, ids or none.
func (d *driver) requestCounts(ids []string) map[string]float64 {
	if len(ids) == 0 {
		time.Sleep(settle)
		return nil
	}
	read := func(id string) float64 {
		page, err := d.scrape(d.servers[id].metricsURL)
		if err != nil {
			return nan()
		}
		if v, ok := page.first("app_requests_total"); ok {
			return v
		}
		return nan()
	}
	counts := map[string]float64{}
	last := map[string]float64{}
	for _, id := range ids {
		last[id] = read(id)
	}
	for try := 0; try < 5 && len(counts) < len(ids); try++ {
		time.Sleep(settle)
		for _, id := range ids {
			if _, ok := counts[id]; ok {
				continue
			}
			v := read(id)
			if v == last[id] {
				counts[id] = v
			}
			last[id] = v
		}
	}
	for _, id := range ids {
		if _, ok := counts[id]; !ok {
			counts[id] = nan()
		}
	}
	return counts
}

// window runs one measured window against a warm server: its CPU time and system calls from
// /proc around its client's run, its heap and the connections open to its upstream half-way through.
func (d *driver) window(ctx context.Context, s *server, slug string) (window, error) {
	w := window{Heap: nan(), Live: nan(), UpOpen: nan()}
	cpu0, err := cpuSeconds(s.pid)
	if err != nil {
		return w, fmt.Errorf("%s: %w", s.c.ID, err)
	}
	sys0 := syscalls(s.pid)
	t0 := time.Now()
	var mid sync.WaitGroup
	mid.Go(func() {
		select {
		case <-time.After(d.o.window / 2):
		case <-ctx.Done():
			return
		}
		if s.metricsURL != "" {
			if page, err := d.scrape(s.metricsURL); err == nil {
				if v, ok := page.first(metricHeapInuse...); ok {
					w.Heap = v
				}
				if v, ok := page.first(metricHeapLive...); ok {
					w.Live = v
				}
			}
		}
		if s.up != nil {
			w.UpOpen = float64(established(s.up.port))
		}
	})
	r, err := d.load(ctx, s, d.o.window, d.path(slug+".load"))
	cpu1, cerr := cpuSeconds(s.pid)
	sys1 := syscalls(s.pid)
	wall := time.Since(t0).Seconds()
	mid.Wait()
	w.Wall = wall
	if err != nil {
		return w, err
	}
	if cerr != nil {
		return w, fmt.Errorf("%s: %w", s.c.ID, cerr)
	}
	w.wrkResult, w.CPU = r, cpu1-cpu0
	w.Syscalls = -1
	if sys0 >= 0 && sys1 >= 0 {
		w.Syscalls = sys1 - sys0
	}
	w.RSS, _ = rssMiB(s.pid)
	return w, nil
}

// checkTraced asks Jaeger which services it knows: each traced case's spans arrived or not.
func (d *driver) checkTraced() {
	time.Sleep(2 * time.Second) // the reporters' last batches
	url := fmt.Sprintf("http://127.0.0.1:%d/api/services", d.jaegerPort("extensions.jaeger_query.http"))
	body := ""
	if resp, err := d.client.Get(url); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	for _, c := range d.res.Run {
		if c.Service == "" {
			continue
		}
		if strings.Contains(body, `"`+c.Service+`"`) {
			d.res.Traced[c.ID] = "spans in Jaeger"
		} else {
			d.res.Traced[c.ID] = "NO spans in Jaeger"
		}
	}
}

// memoryPhase measures RSS idle, after one request, and with -idle-connections idle keep-alive
// connections open, each server fresh and alone.
func (d *driver) memoryPhase(ctx context.Context) error {
	if d.o.idleConns <= 0 {
		return nil
	}
	// Both ends hold one descriptor a connection: the soft file limit raised to the hard one,
	// which the servers and bench/conns inherit.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if rl.Cur < uint64(d.o.idleConns+1000) {
		fmt.Fprintf(os.Stderr, "bench: the file limit (%d) is too low for %d connections; no memory figures\n", rl.Cur, d.o.idleConns)
		return nil
	}
	for _, c := range d.res.Run {
		if !c.Memory {
			continue
		}
		if err := d.memory(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (d *driver) memory(ctx context.Context, c Case) error {
	s, err := d.startServer(ctx, c, "-memory")
	if err != nil {
		return err
	}
	defer d.stopServer(s)
	time.Sleep(time.Second)
	row := memoryRow{ID: c.ID}
	idle, _ := residentMiB(s.pid)
	row.Idle, row.IdleAnon, row.IdleFile = idle.total, idle.anon, idle.file
	// Each case's connections come from a loopback address of their own (see bench/conns).
	out := d.path("conns-" + c.ID + ".out")
	_ = os.Remove(out)
	conns, err := d.start(loadCPU, out, nil, d.path("conns"), "-addr", fmt.Sprintf("127.0.0.1:%d", s.port),
		"-source", fmt.Sprintf("127.0.1.%d", caseIndex(c.ID)+1), "-path", c.Path,
		"-n", fmt.Sprint(d.o.idleConns), "-hold", "10m")
	if err != nil {
		return err
	}
	opened := func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "open ")
	}
	for deadline := time.Now().Add(3 * time.Minute); !opened() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	row.Held, _ = rssMiB(s.pid)
	row.Est = established(s.port)
	d.stop(conns)
	b, _ := os.ReadFile(out)
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "open "):
			_, _ = fmt.Sscanf(line, "open %d", &row.Open) // a line that does not parse leaves 0
		case strings.HasPrefix(line, "closed by the server while held: "):
			_, _ = fmt.Sscanf(line, "closed by the server while held: %d", &row.Closed)
		case strings.HasPrefix(line, "conns: "):
			row.Errors = strings.TrimSpace(strings.Join([]string{row.Errors, line}, " "))
		}
	}
	d.res.Memory = append(d.res.Memory, row)
	fmt.Printf("bench: memory: %s: RSS idle %.1f MiB (anonymous %.1f, file %.1f), with %d idle connections %.1f MiB (%d established; %d closed by the server while held)\n",
		c.Name, row.Idle, row.IdleAnon, row.IdleFile, row.Open, row.Held, row.Est, row.Closed)
	return nil
}
