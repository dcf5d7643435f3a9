package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
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

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/instrumenting"
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
	if err := serveConfig(cfg, logger); err != nil {
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
	flusher  *instrumenting.Flusher
	// closeTracer flushes the spans still buffered and closes the tracer: the last actor of the
	// run group calls it, once the API has drained.
	closeTracer func(context.Context) error
}

// newApp wires the layers. Decorators are applied in this one place, innermost first, so their
// order can be read top to bottom.
func newApp(cfg config.Config, logger log.Logger) (*app, error) {
	return newAppWith(cfg, logger, service.New)
}

// newAppWith is newApp with the business core supplied, so the wiring test can put a failing
// service under the real decorators.
func newAppWith(cfg config.Config, logger log.Logger, newService func([]service.Rule) (service.Service, error)) (*app, error) {
	a := &app{ready: &atomic.Bool{}, registry: prometheus.NewRegistry()}

	// Request metrics: the hot path adds into the aggregator, the flusher publishes it, the
	// collector serves what was published.
	agg := instrumenting.NewAggregator(routeNames(cfg.Routes), service.OtherRoute, cfg.Metrics.Buckets)
	a.flusher = instrumenting.NewFlusher(agg, cfg.Metrics.FlushInterval.D())
	ver, rev := buildVersion()
	a.registry.MustRegister(
		instrumenting.NewCollector(cfg.Metrics.Namespace, a.flusher, instrumenting.BuildInfo{Version: ver, Revision: rev}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	// Tracing: one OpenTracing tracer whatever the backend (a no-op one for "none"); spans the
	// backend never gets are counted under the metrics namespace.
	tracer, closeTracer, err := instrumenting.NewTracer(cfg.Tracing, logger,
		prometheus.WrapRegistererWithPrefix(cfg.Metrics.Namespace+"_", a.registry))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	a.closeTracer = closeTracer
	traceID := instrumenting.TraceID

	// The service and its decorators, innermost first.
	var svc service.Service
	{
		rules := routeRules(cfg.Routes)
		if svc, err = newService(rules); err != nil {
			_ = closeTracer(context.Background())
			return nil, err
		}
		svc = instrumenting.TraceDelay(tracer, rules)(svc) // innermost: it reads the matched rule's delay
		panics := instrumenting.NewPanicCounter(a.registry, cfg.Metrics.Namespace)
		svc = instrumenting.Recover(log.With(logger, "component", "service"), traceID, panics)(svc)
		svc = instrumenting.Counting(agg)(svc) // outside Recover, so a panicked request is counted too
	}

	// The endpoint and its middlewares; endpoint.Chain lists the outermost first.
	var handle kitendpoint.Endpoint
	{
		handle = endpoint.MakeHandleEndpoint(svc)
		handle = kitendpoint.Chain(
			instrumenting.Tracing(tracer),
			instrumenting.AccessLog(log.With(logger, "component", "access"), cfg.Log.AccessSample, traceID),
		)(handle)
	}

	a.api = transport.NewHTTPHandler(handle, transport.Options{
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		Instance:     instanceName(),
		TraceID:      traceID,
		Before:       []kithttp.RequestFunc{instrumenting.HTTPToContext(tracer, logger)},
		Logger:       logger,
	})
	a.admin = transport.NewAdminHandler(transport.AdminOptions{
		Gatherer: a.registry,
		Ready:    a.ready,
		PProf:    cfg.Admin.PProf,
	})
	return a, nil
}

// serveConfig runs the app on its listeners until a signal or a failure. The run group's
// interrupts run in the order the actors are added, which is the shutdown order: stop accepting
// and drain the API, then close the admin listener, so that the last scrape sees every answer.
func serveConfig(cfg config.Config, logger log.Logger) error {
	a, err := newApp(cfg, logger)
	if err != nil {
		return err
	}
	ready := a.ready

	apiLn, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		_ = apiLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}

	// force is cancelled by a second signal: the drain stops waiting and everything closes at once.
	force, forceNow := context.WithCancel(context.Background())
	defer forceNow()

	var g run.Group
	{ // Signals: the first drops readiness, waits drain_delay, then ends the group.
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		stop := make(chan struct{})
		g.Add(func() error {
			select {
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
		}, func(error) {
			close(stop)
		})
	}
	{ // API listener: on interrupt, stop accepting and let in-flight requests finish within grace.
		srv := newAPIServer(cfg.HTTP, a.api, logger)
		g.Add(func() error {
			_ = level.Info(logger).Log("msg", "API listening", "addr", apiLn.Addr())
			ready.Store(true)
			return serveUntilClosed(srv, apiLn)
		}, func(error) {
			ready.Store(false)
			ctx, cancel := context.WithTimeout(force, cfg.Shutdown.Grace.D())
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				_ = level.Warn(logger).Log("msg", "API drain cut short", "err", err)
				_ = srv.Close()
			}
		})
	}
	{ // Flusher: its interrupt runs after the API drained and flushes once more, so the last
		// scrape before the admin listener closes sees every answered request.
		g.Add(a.flusher.Run, func(error) { a.flusher.Stop() })
	}
	{ // Admin listener: closed after the API has drained and the final flush, and after
		// metrics_linger, so that a last scrape can collect the final counts.
		srv := &http.Server{Handler: a.admin, ReadHeaderTimeout: 5 * time.Second, ErrorLog: stdLogger(logger)}
		g.Add(func() error {
			_ = level.Info(logger).Log("msg", "admin listening", "addr", adminLn.Addr(), "pprof", cfg.Admin.PProf)
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
			if err := a.closeTracer(ctx); err != nil {
				_ = level.Warn(logger).Log("msg", "tracer flush incomplete", "err", err)
			}
		})
	}
	return g.Run()
}

// newAPIServer applies every timeout and size limit: a catch-all service faces arbitrary clients.
func newAPIServer(c config.HTTP, h http.Handler, logger log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout.D(),
		ReadTimeout:       c.ReadTimeout.D(),
		WriteTimeout:      c.WriteTimeout.D(),
		IdleTimeout:       c.IdleTimeout.D(),
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          stdLogger(logger),
	}
}

// stdLogger routes net/http's own complaints (TLS handshakes, bad requests it rejects itself) into
// the structured log.
func stdLogger(logger log.Logger) *stdlog.Logger {
	return stdlog.New(log.NewStdlibAdapter(level.Warn(log.With(logger, "component", "http"))), "", 0)
}

func serveUntilClosed(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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

// routeNames are the route label values, in rule order: a rule's index is its route id.
func routeNames(routes []config.Route) []string {
	names := make([]string, len(routes))
	for i, r := range routes {
		names[i] = r.Name
	}
	return names
}

func routeRules(routes []config.Route) []service.Rule {
	rules := make([]service.Rule, len(routes))
	for i, r := range routes {
		rules[i] = service.Rule{
			Name:        r.Name,
			Match:       r.Match,
			Methods:     r.Methods,
			Status:      r.Status,
			Delay:       r.Delay.D(),
			Jitter:      r.Jitter.D(),
			ErrorRate:   r.ErrorRate,
			ErrorStatus: r.ErrorStatus,
			BodyBytes:   r.BodyBytes,
		}
	}
	return rules
}
