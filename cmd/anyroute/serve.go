package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/net/netutil"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/instrumenting/metrics"
	"github.com/anyroute/anyroute/instrumenting/tracing"
	"github.com/anyroute/anyroute/instrumenting/tracing/jaeger"
	"github.com/anyroute/anyroute/instrumenting/tracing/otlp"
	"github.com/anyroute/anyroute/instrumenting/tracing/zipkin"
	"github.com/anyroute/anyroute/service"
	"github.com/anyroute/anyroute/transport"
)

func serve(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags("anyroute", args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitBadUsage
	}
	ver, rev := buildVersion()
	if o.version {
		fmt.Fprintf(stdout, "anyroute %s (revision %s, %s)\n", ver, rev, runtime.Version())
		return exitOK
	}
	cfg, err := o.loadConfig()
	if err != nil {
		printConfigError(stderr, err)
		return exitBadUsage
	}
	logger := newLogger(stderr, cfg.Log)
	_ = level.Info(logger).Log("msg", "starting", "version", ver, "revision", rev, "config", configSource(o.configFile))
	if err := serveConfig(o, cfg, logger); errors.Is(err, errDrainCut) {
		_ = level.Warn(logger).Log("msg", "stopped", "err", err)
		return exitDrainCut
	} else if err != nil {
		_ = level.Error(logger).Log("msg", "exiting", "err", err)
		return exitFailure
	}
	_ = level.Info(logger).Log("msg", "stopped")
	return exitOK
}

func configSource(file string) string {
	if file == "" {
		return "embedded defaults"
	}
	return file
}

func newLogger(w io.Writer, c config.Log) log.Logger {
	var logger log.Logger
	if c.Format == "json" {
		logger = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		logger = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	logger = log.With(logger, "ts", log.DefaultTimestampUTC)
	return level.NewFilter(logger, level.Allow(level.ParseDefault(c.Level, level.InfoValue())))
}

// app is the assembled service: every layer wired, nothing listening yet. The wiring test drives
// its handlers through httptest; serveConfig runs them on real listeners.
type app struct {
	api      http.Handler
	admin    http.Handler
	ready    *atomic.Bool
	registry *prometheus.Registry
	flusher  *metrics.Flusher
	// tracing's Close flushes the spans still buffered: the last actor of the run group calls it,
	// once the API has drained.
	tracing *tracing.Tracing
	// router is the business core, whose rules a reload replaces; agg and calls keep the counts
	// of their requests and their upstream calls.
	router   *service.Router
	agg      *metrics.Aggregator
	calls    *metrics.Aggregator
	reloader *reloader
	// rejected counts an answer net/http wrote by itself; inFlight is the requests being answered.
	rejected func(status int)
	inFlight func() int64
}

// tracingBackends are the tracing libraries by their tracing.backend name; "none" has none.
// Dropping a library is deleting its folder under instrumenting/tracing and its line here.
var tracingBackends = map[string]func(config.Tracing, tracing.Reporting) (tracing.Backend, error){
	"jaeger": jaeger.New,
	"zipkin": zipkin.New,
	"otlp":   otlp.New,
}

// newApp wires the layers. Decorators are applied in this one place, innermost first, so their
// order can be read top to bottom.
func newApp(cfg config.Config, logger log.Logger) (*app, error) {
	return newAppWith(cfg, logger, nil)
}

// newAppWith is newApp with a middleware put around the business core, innermost, so the wiring
// test can make it fail under the real decorators; nil puts none.
func newAppWith(cfg config.Config, logger log.Logger, inner service.Middleware) (*app, error) {
	a := &app{ready: &atomic.Bool{}, registry: prometheus.NewRegistry()}
	ns := cfg.Metrics.Namespace // every metric of ours is named under it

	// Request metrics: the hot path adds into the aggregator, the flusher publishes it, the
	// collector serves what was published.
	// Upstream calls go through an aggregator of their own, by route and call, flushed with it.
	// Reloads add routes and calls; a name that goes keeps its counts: at most 4 × max_routes
	// names are ever counted apart.
	bound := metrics.MaxRoutes(4*cfg.Metrics.MaxRoutes + 1)
	agg := metrics.NewAggregator(service.OtherRoute, nil, cfg.Metrics.Buckets, bound,
		metrics.NativeHistograms(cfg.Metrics.NativeHistograms))
	a.calls = metrics.NewAggregator("", nil, cfg.Metrics.Buckets, bound)
	a.flusher = metrics.NewFlusherWithCalls(agg, a.calls, cfg.Metrics.FlushInterval.D())
	a.agg = agg
	a.rejected = func(status int) { agg.End(agg.Begin(), 0, "", status, 0) } // no route, no method, no duration
	a.inFlight = agg.InFlight
	ver, rev := buildVersion()
	a.registry.MustRegister(
		metrics.NewCollector(ns, a.flusher, metrics.BuildInfo{Version: ver, Revision: rev}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	// Tracing: the backend the config names, none for "none"; spans it never gets are counted.
	reporting, err := tracing.NewReporting(logger, a.registry, ns, cfg.Tracing.Backend)
	if err != nil {
		return nil, err
	}
	sample, err := tracing.NewSampler(cfg.Tracing.Sampler)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	var backend tracing.Backend
	if newBackend, ok := tracingBackends[cfg.Tracing.Backend]; ok {
		if backend, err = newBackend(cfg.Tracing, reporting); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	} else if cfg.Tracing.Backend != "none" {
		return nil, fmt.Errorf("tracing: unknown backend %q", cfg.Tracing.Backend)
	}
	a.tracing = tracing.New(backend, sample)

	// The upstream client: a go-kit client endpoint, a client span around every call.
	caller := metrics.CountingCaller(a.calls)(transport.NewCaller(transport.ClientOptions{
		Before:     []kithttp.RequestFunc{a.tracing.ContextToHTTP(logger)},
		After:      []kithttp.ClientResponseFunc{a.tracing.ClientAfter()},
		Middleware: a.tracing.Client(),
	}))

	// The service and its decorators, innermost first.
	var svc service.Service
	{
		rules := a.routeRules(cfg)
		opts := service.Options{Caller: caller, MaxHops: cfg.MaxHops, Random: service.NewRandom(cfg.Seed)}
		if a.router, err = service.New(rules, opts); err != nil {
			_ = a.tracing.Close(context.Background())
			return nil, err
		}
		svc = a.router
		if inner != nil {
			svc = inner(svc)
		}
		svc = a.tracing.Delay()(svc) // innermost: it draws the delay the service reports
		panics := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "panics_total",
			Help: "Requests whose handling panicked and were answered 500."})
		a.registry.MustRegister(panics)
		svc = service.Recover(log.With(logger, "component", "service"), a.tracing.TraceID, panics)(svc)
		svc = metrics.Counting(agg, a.tracing.SampledTraceID)(svc) // outside Recover, so a panicked request is counted too; sampled ones leave exemplars
	}

	// The endpoint and its middlewares; endpoint.Chain lists the outermost first.
	var handle kitendpoint.Endpoint
	{
		handle = endpoint.MakeHandleEndpoint(svc)
		handle = kitendpoint.Chain(
			a.tracing.Server(),
			endpoint.AccessLog(log.With(logger, "component", "access"), cfg.Log.AccessSample, a.tracing.TraceID),
		)(handle)
	}

	a.api = transport.NewHTTPHandler(handle, transport.Options{
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		Instance:     instanceName(),
		Before:       []kithttp.RequestFunc{a.tracing.HTTPToContext(logger)},
		Logger:       log.With(logger, "component", "transport"),
	})
	a.reloader = newReloader(a, cfg, a.registry, logger)
	a.admin = transport.NewAdminHandler(transport.AdminOptions{
		Metrics:     metrics.NewExposition(a.registry, a.flusher), // encoded once per flush and format
		Ready:       a.ready,
		PProf:       cfg.Admin.PProf,
		Lifecycle:   a.reloader,
		LifecycleOn: cfg.Admin.Lifecycle,
		Logger:      logger,
	})
	return a, nil
}

// replaceRules swaps in the route rules of a config that passed its checks.
func (a *app) replaceRules(cfg config.Config) error {
	return a.router.Replace(a.routeRules(cfg), service.Options{MaxHops: cfg.MaxHops, Random: service.NewRandom(cfg.Seed)})
}

// errDrainCut is serveConfig's error when requests were still running as the drain ended (the
// grace period ran out, or a second signal came): serve exits with exitDrainCut for it.
var errDrainCut = errors.New("drain cut short")

// Listener limits: the admin listener takes a few connections, and the API all the process's file
// descriptors but a reserve, so that neither listener, nor a flood of idle connections, can starve
// the other of descriptors (nor outbound calls and log files of theirs).
const (
	adminMaxConns = 16
	fdReserve     = 64 + adminMaxConns
)

// serveConfig runs the app on its listeners until a signal or a failure. The run group's
// interrupts run in the order the actors are added, which is the shutdown order: stop accepting
// and drain the API, then close the admin listener, so that the last scrape sees every answer.
func serveConfig(o options, cfg config.Config, logger log.Logger) error {
	a, err := newApp(cfg, logger)
	if err != nil {
		return err
	}
	if o.configFile != "" {
		a.reloader.load = o.loadConfig
	}
	ready := a.ready

	rawAPI, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	rawAdmin, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		_ = rawAPI.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	apiMaxConns := maxAPIConns()
	apiLn := transport.NewListener(rawAPI, apiMaxConns, a.rejected)
	adminLn := netutil.LimitListener(rawAdmin, adminMaxConns)

	// force is cancelled by a second signal: the drain stops waiting and everything closes at once.
	force, forceNow := context.WithCancel(context.Background())
	defer forceNow()
	var drainCut atomic.Bool

	var g run.Group
	{ // Signals: the first drops readiness, waits drain_delay, then ends the group. SIGHUP
		// reloads the config file, as it does for Prometheus (by default it would end the process).
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		hups := make(chan os.Signal, 1)
		signal.Notify(hups, syscall.SIGHUP)
		stop := make(chan struct{})
		g.Add(func() error {
			for {
				select {
				case <-hups:
					_ = a.reloader.reload("SIGHUP")
				case s := <-sigs:
					ready.Store(false)
					_ = level.Info(logger).Log("msg", "shutting down", "signal", s, "grace", cfg.Shutdown.Grace.D())
					go func() {
						s := <-sigs
						_ = level.Warn(logger).Log("msg", "second signal, closing at once", "signal", s)
						forceNow()
					}()
					sleepCtx(force, cfg.Shutdown.DrainDelay.D())
					return nil
				case <-stop:
					return nil
				}
			}
		}, func(error) {
			close(stop)
		})
	}
	{ // API listener: on interrupt, stop accepting and let in-flight requests finish within grace.
		// The drain closes the listener itself and turns keep-alives off, then waits for the
		// connections to close, before it calls Shutdown: net/http drops a request it reads once
		// Shutdown has begun, and this way every connection the listener took gets its answer.
		// Requests still running when grace ends are cut: their context is cancelled with the
		// cause service.ErrStopping, so they are answered and counted 503, and given a moment to
		// write that before the connections close.
		base, cut := context.WithCancelCause(context.Background())
		defer cut(nil)
		srv := newAPIServer(cfg.HTTP, a.api, logger)
		srv.BaseContext = func(net.Listener) context.Context { return base }
		g.Add(func() error {
			_ = level.Info(logger).Log("msg", "API listening", "addr", rawAPI.Addr(), "max_connections", apiMaxConns)
			ready.Store(true)
			return serveUntilClosed(srv, apiLn)
		}, func(error) {
			ready.Store(false)
			ctx, cancel := context.WithTimeout(force, cfg.Shutdown.Grace.D())
			defer cancel()
			_ = apiLn.Close()
			srv.SetKeepAlivesEnabled(false) // closes the idle connections; answers close theirs
			waitCtx(ctx, cfg.Shutdown.Grace.D(), func() bool { return apiLn.Open() == 0 })
			if err := srv.Shutdown(ctx); err != nil {
				inFlight := a.inFlight()
				_ = level.Warn(logger).Log("msg", "API drain cut short", "err", err, "in_flight", inFlight)
				drainCut.Store(inFlight > 0)
				cut(service.ErrStopping)
				waitCtx(context.Background(), cutAnswerTime, func() bool { return a.inFlight() == 0 })
				_ = srv.Close()
			}
			_ = level.Info(logger).Log("msg", "API stopped", "connections_accepted", apiLn.Accepted())
		})
	}
	if o.configFile != "" { // Config watcher: a change of the file's content reloads it.
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			return watchFile(ctx, o.configFile, logger, func() { _ = a.reloader.reload("file change") })
		}, func(error) { cancel() })
	}
	{ // Flusher: its interrupt runs after the API drained and flushes once more, so the last
		// scrape before the admin listener closes sees every answered request.
		g.Add(a.flusher.Run, func(error) { a.flusher.Stop() })
	}
	{ // Admin listener: closed after the API has drained and the final flush, and after
		// metrics_linger, so that a last scrape can collect the final counts.
		srv := newAdminServer(a.admin, logger)
		g.Add(func() error {
			_ = level.Info(logger).Log("msg", "admin listening", "addr", rawAdmin.Addr(), "pprof", cfg.Admin.PProf)
			return serveUntilClosed(srv, adminLn)
		}, func(error) {
			sleepCtx(force, cfg.Shutdown.MetricsLinger.D())
			ctx, cancel := context.WithTimeout(force, 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
	}
	{ // Tracer: keep this actor last. Its interrupt runs after the API has drained, so the spans of
		// the last requests have ended; it sends them before the process exits.
		stop := make(chan struct{})
		g.Add(func() error {
			<-stop
			return nil
		}, func(error) {
			close(stop)
			ctx, cancel := context.WithTimeout(force, 5*time.Second)
			defer cancel()
			if err := a.tracing.Close(ctx); err != nil {
				_ = level.Warn(logger).Log("msg", "tracer flush incomplete", "err", err)
			}
		})
	}
	if err := g.Run(); err != nil {
		return err
	}
	if drainCut.Load() {
		return errDrainCut
	}
	return nil
}

// cutAnswerTime is how long requests cut at the end of the grace period get to write their 503.
const cutAnswerTime = 500 * time.Millisecond

// maxAPIConns is how many connections the API listener holds at once: the file descriptor limit
// (which Go raises to its hard maximum at start) less the reserve, and at least half the limit.
// Without such a limit (windows) it is unbounded.
func maxAPIConns() int {
	limit, ok := fdLimit()
	if !ok || limit > math.MaxInt32 {
		return math.MaxInt32
	}
	n := int(limit)
	return max(n-fdReserve, n/2)
}

// netHTTPHeaderSlop is what net/http adds to Server.MaxHeaderBytes before it refuses a request
// head (its bufio slop); subtracting it makes http.max_header_bytes the limit actually applied.
const netHTTPHeaderSlop = 4096

// newAPIServer applies every timeout and size limit: a catch-all service faces arbitrary clients.
// OPTIONS * reaches the service like any request, instead of net/http answering it uncounted.
func newAPIServer(c config.HTTP, h http.Handler, logger log.Logger) *http.Server {
	return &http.Server{
		Handler:                      h,
		ReadHeaderTimeout:            c.ReadHeaderTimeout.D(),
		ReadTimeout:                  c.ReadTimeout.D(),
		WriteTimeout:                 c.WriteTimeout.D(),
		IdleTimeout:                  c.IdleTimeout.D(),
		MaxHeaderBytes:               c.MaxHeaderBytes - netHTTPHeaderSlop,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     stdLogger(logger),
	}
}

// newAdminServer hardens the admin listener as the API is: a client that never reads, or idles, is
// cut off. Scrapes and probes are small and quick; pprof's long profiles lift the write deadline
// for themselves (transport.NewAdminHandler).
func newAdminServer(h http.Handler, logger log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdLogger(logger),
	}
}

// stdLogger routes net/http's own complaints (TLS handshakes, bad requests it rejects itself) into
// the structured log.
func stdLogger(logger log.Logger) *stdlog.Logger {
	return stdlog.New(log.NewStdlibAdapter(level.Warn(log.With(logger, "component", "http"))), "", 0)
}

// serveUntilClosed serves until the server or its listener is closed, which is not an error.
func serveUntilClosed(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// waitCtx polls done until it holds, d passes or ctx ends.
func waitCtx(ctx context.Context, d time.Duration, done func() bool) {
	deadline := time.Now().Add(d)
	for !done() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// instanceName is what the echo reports as "instance": the pod name in Kubernetes, else the host.
func instanceName() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	if host, err := os.Hostname(); err == nil {
		return host
	}
	return "unknown"
}

// routeRules are the service's rules, each route and each call with the id the aggregators
// count it under (registered if new).
func (a *app) routeRules(cfg config.Config) []service.Rule {
	rules := make([]service.Rule, len(cfg.Routes))
	for i, r := range cfg.Routes {
		rules[i] = r.Rule(cfg.HTTP)
		rules[i].ID = a.agg.Register(r.Name)
		for j := range rules[i].Calls {
			rules[i].Calls[j].ID = a.calls.Register(metrics.CallSlot(r.Name, rules[i].Calls[j].Name))
		}
	}
	return rules
}
