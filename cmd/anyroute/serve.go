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
	"regexp"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	kitendpoint "github.com/go-kit/kit/endpoint"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

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
	src, err := o.configSource()
	var cfg config.Config
	if err == nil {
		cfg, err = src.parse(src.name, src.doc)
	}
	if err == nil {
		err = checkTLSFiles(src.name, cfg.HTTP)
	}
	if err != nil {
		printConfigError(stderr, err)
		return exitBadUsage
	}
	logger := newLogger(stderr, cfg.Log)
	_ = level.Info(logger).Log("msg", "starting", "version", ver, "revision", rev, "config", configName(o.configFile), "config_watch", o.configFile != "" && o.watch)
	if ml := applyMemoryLimit("/", o.memLimitRatio, os.Getenv); ml.applied > 0 {
		_ = level.Info(logger).Log("msg", "Go memory limit set from the cgroup's", "gomemlimit_bytes", ml.applied, "cgroup_limit_bytes", ml.cgroup, "ratio", o.memLimitRatio, "from", ml.source)
	}
	if err := serveConfig(o, src, cfg, logger); errors.Is(err, errDrainCut) {
		_ = level.Warn(logger).Log("msg", "stopped", "err", err)
		return exitDrainCut
	} else if err != nil {
		_ = level.Error(logger).Log("msg", "exiting", "err", err)
		return exitFailure
	}
	_ = level.Info(logger).Log("msg", "stopped")
	return exitOK
}

func configName(file string) string {
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
	router *service.Router
	agg    *metrics.Aggregator
	calls  *metrics.CallCounter
	// owner owns the running config: every change to it is one of its requests.
	owner *configOwner
	// draws is the seeded source the rules draw from; a scenario's steps keep it (replaceRules).
	draws *service.Random
	// rejected counts an answer net/http wrote by itself; inFlight is the requests being answered.
	rejected func(status int)
	inFlight func() int64
	// certs are the API listener's certificates (nil without http.tls); handshakeFailed counts a
	// failed TLS handshake, http2Errors an HTTP/2 protocol error.
	certs           *transport.Certs
	handshakeFailed func(error)
	http2Errors     func(typ string)
	// unready is the flag POST /-/readyz/disable sets, read by /readyz and the gRPC health service.
	unready *atomic.Bool
	// grpc is the gRPC listener's server, nil when grpc.addr is empty; draining ends when its
	// drain begins (the health watches end), and cut when the grace period runs out (the calls
	// still running are cut with the cause service.ErrStopping).
	grpc     *grpc.Server
	draining context.Context
	drain    context.CancelFunc
	cutCtx   context.Context
	cut      context.CancelCauseFunc
}

// tracingBackends are the tracing libraries by their tracing.backend name; "none" has none.
// Dropping a library is deleting its folder under instrumenting/tracing and its line here.
var tracingBackends = map[string]func(config.Tracing, tracing.Reporting) (tracing.Backend, error){
	"jaeger": jaeger.New,
	"zipkin": zipkin.New,
	"otlp":   otlp.New,
}

// newApp assembles the app from its parts: the metrics pipeline, the tracer, the request path
// (every decorator wired in one place, wireAPI, so their order can be read top to bottom), the
// config owner and the admin handler.
func newApp(cfg config.Config, logger log.Logger) (*app, error) {
	return newAppWith(cfg, logger, nil)
}

// newAppWith is newApp with a middleware put around the business core, innermost, so the wiring
// test can make it fail under the real decorators; nil puts none. Each part is made by a named
// constructor, in the order they depend on one another; every metric is registered in the app's
// own registry, named under metrics.namespace.
func newAppWith(cfg config.Config, logger log.Logger, inner service.Middleware) (*app, error) {
	a := &app{ready: &atomic.Bool{}, unready: &atomic.Bool{}, registry: prometheus.NewRegistry()}
	a.newMetrics(cfg.Metrics)
	if err := a.newTLS(cfg.HTTP, cfg.Metrics.Namespace, logger); err != nil {
		return nil, err
	}
	var err error
	var identity []tracing.Option
	if clientIdentity(cfg.HTTP) {
		identity = append(identity, tracing.ClientSubject(transport.ClientSubject))
	}
	if a.tracing, err = newTracing(cfg.Tracing, cfg.Metrics.Namespace, a.registry, logger, identity...); err != nil {
		return nil, err
	}
	if err := a.wireAPI(cfg, logger, inner); err != nil {
		_ = a.tracing.Close(context.Background())
		return nil, err
	}
	a.owner = newConfigOwner(cfg, a.replaceRules, a.registry, logger)
	a.admin = a.newAdmin(cfg.Admin, logger)
	return a, nil
}

// wireAPI wires the request path, every decorator of it in this one function, one { } block per
// layer from the inside out: the upstream client, the service (the router a reload replaces the
// rules of), the endpoint, the transport. Each block says which way its list runs; adding a
// decorator is a line in its layer's block. nil inner puts no middleware around the router.
func (a *app) wireAPI(cfg config.Config, logger log.Logger, inner service.Middleware) error {
	// The upstream client and its decorators, innermost first: a go-kit client endpoint with a
	// client span around every call; the process's bound on calls in flight inside the counting,
	// so that a call it refuses is counted.
	var caller service.Caller
	{
		caller = transport.SchemeCaller(
			transport.NewCaller(transport.ClientOptions{
				Before:     []kithttp.RequestFunc{a.tracing.ContextToHTTP(logger)},
				After:      []kithttp.ClientResponseFunc{a.tracing.ClientAfter()},
				Middleware: a.tracing.Client(),
			}),
			transport.NewGRPCCaller(transport.GRPCClientOptions{ // grpc:// calls
				Before:     []kitgrpc.ClientRequestFunc{a.tracing.ContextToGRPC(logger)},
				Middleware: a.tracing.Client(),
			}))
		caller = service.LimitCalls(cfg.MaxCallsInFlight, service.MaxCallsPerRequest)(caller)
		caller = metrics.CountingCaller(a.calls)(caller)
	}

	// The service and its decorators, innermost first.
	var svc service.Service
	{
		var err error
		o := a.serviceOptions(cfg)
		if a.router, err = service.New(caller, a.routeRules(cfg), o); err != nil {
			return err
		}
		a.draws = o.Random
		a.registry.MustRegister(memoryGauges(cfg.Metrics.Namespace, a.router)...)
		svc = a.router
		if inner != nil {
			svc = inner(svc)
		}
		svc = a.tracing.Delay()(svc) // innermost: it draws the delay the service reports
		svc = service.Recover(log.With(logger, "component", "service"), newPanicCounter(cfg.Metrics.Namespace, a.registry))(svc)
		svc = metrics.Counting(a.agg)(svc) // outside Recover, so a panicked request is counted too; sampled ones leave exemplars
	}

	// The endpoint and its middlewares; endpoint.Chain lists the outermost first. The tracing
	// one resolves the request's trace id and sampled-ness once and carries them on the request,
	// where the access log and the service's decorators wired above (the delay span, recovery,
	// counting's exemplars) read them.
	var handle kitendpoint.Endpoint
	{
		handle = endpoint.MakeHandleEndpoint(svc)
		handle = kitendpoint.Chain(
			a.tracing.Server(),
			endpoint.AccessLog(log.With(logger, "component", "access"), cfg.Log.AccessSample),
		)(handle)
	}

	// The transport: the HTTP server's handler, the request's trace context read before the endpoint.
	a.api = transport.NewHTTPHandler(handle, transport.Options{
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		Instance:     instanceName(),
		Before:       []kithttp.RequestFunc{a.tracing.HTTPToContext(logger)},
		Logger:       log.With(logger, "component", "transport"),
		HangFor:      cfg.HTTP.WriteTimeout.D(), // a hang fault ends where an answer would be cut off
		// the client certificate's subject, echoed and on the span, when client_auth asks for one
		ClientIdentity: clientIdentity(cfg.HTTP),
	})

	// The gRPC transport, when grpc.addr is set: the same endpoint, for every service and method
	// the server does not define, the call's trace context read before the endpoint.
	if cfg.GRPC.Addr != "" {
		a.draining, a.drain = context.WithCancel(context.Background())
		a.cutCtx, a.cut = context.WithCancelCause(context.Background())
		h := transport.NewGRPCHandler(handle, transport.GRPCOptions{
			Instance: instanceName(),
			Before:   []kitgrpc.ServerRequestFunc{a.tracing.GRPCToContext(logger)},
			Logger:   log.With(logger, "component", "grpc"),
			HangFor:  cfg.HTTP.WriteTimeout.D(),
			Stopping: a.cutCtx,
		})
		a.grpc = transport.NewGRPCServer(h, transport.GRPCServerOptions{
			MaxRecvBytes:   int(min(cfg.HTTP.MaxBodyBytes, math.MaxInt32)),
			MaxHeaderBytes: cfg.HTTP.MaxHeaderBytes,
			Health:         transport.NewHealth(a.isReady, a.draining, transport.EchoService),
		})
	}
	return nil
}

// isReady is the readiness /readyz answers by: serving, and not forced unready.
func (a *app) isReady() bool { return a.ready.Load() && !a.unready.Load() }

// newAdmin is the admin listener's handler: metrics, probes, pprof when admin.pprof, and the
// lifecycle endpoints, which the config owner answers (403 unless admin.lifecycle).
func (a *app) newAdmin(c config.Admin, logger log.Logger) http.Handler {
	return transport.NewAdminHandler(transport.AdminOptions{
		Metrics:     metrics.NewExposition(a.registry, a.flusher), // encoded once per flush and format
		Ready:       a.ready,
		Unready:     a.unready,
		PProf:       c.PProf,
		Lifecycle:   a.owner,
		LifecycleOn: c.Lifecycle,
		ReleaseLeak: a.router.ReleaseLeak,
		Scenario:    a.owner,
		Logger:      logger,
	})
}

// newPanicCounter counts the requests service.Recover answered 500 for a panic.
func newPanicCounter(ns string, reg prometheus.Registerer) prometheus.Counter {
	panics := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "panics_total",
		Help: "Requests whose handling panicked and were answered 500."})
	reg.MustRegister(panics)
	return panics
}

// newMetrics makes the metrics pipeline and registers its collectors: the hot path adds into the
// aggregator, the flusher publishes it, the collector serves what was published. Upstream calls go
// through a counter of their own, by route and call, flushed with it. Reloads add routes and
// calls; a name that goes keeps its counts: at most 4 × max_routes routes, and 4 × what max_routes
// routes can hold of calls, are ever counted apart, so every call of every config is counted
// under its own labels until reloads bring four times that.
func (a *app) newMetrics(c config.Metrics) {
	const reloadHeadroom = 4
	agg := metrics.NewAggregator(service.OtherRoute, nil, c.Buckets,
		metrics.MaxRoutes(reloadHeadroom*c.MaxRoutes+1), metrics.NativeHistograms(c.NativeHistograms))
	a.calls = metrics.NewCallCounter(c.Buckets, reloadHeadroom*c.MaxRoutes*config.MaxCallsPerRoute)
	a.flusher = metrics.NewFlusherWithCalls(agg, a.calls, c.FlushInterval.D())
	a.agg = agg
	a.rejected = func(status int) { agg.End(agg.Begin(), 0, "", status, 0) } // no route, no method, no duration
	a.inFlight = agg.InFlight
	a.http2Errors = newHTTP2Errors(c.Namespace, a.registry)
	ver, rev := buildVersion()
	a.registry.MustRegister(
		metrics.NewCollector(c.Namespace, a.flusher, metrics.BuildInfo{Version: ver, Revision: rev}),
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(liveHeapRule)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}

// liveHeapRule adds two runtime/metrics figures to the Go collector's defaults: the heap the last
// GC cycle found live (go_gc_heap_live_bytes), what the next cycle's goal is set from, and the GC
// cycles (go_gc_cycles_total_gc_cycles_total). The load benchmark reads them during its windows to
// explain CPU per request (issue 29); two gauges more on the page, read at scrape time only.
var liveHeapRule = collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/(heap/live:bytes|cycles/total:gc-cycles)$`)}

// newTracing makes the tracer of the backend the config names, none for "none"; the spans the
// backend never gets are counted in reg.
func newTracing(c config.Tracing, ns string, reg prometheus.Registerer, logger log.Logger, opts ...tracing.Option) (*tracing.Tracing, error) {
	reporting, err := tracing.NewReporting(logger, reg, ns, c.Backend)
	if err != nil {
		return nil, err
	}
	sample, err := tracing.NewSampler(c.Sampler)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	var backend tracing.Backend
	if newBackend, ok := tracingBackends[c.Backend]; ok {
		if backend, err = newBackend(c, reporting); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	} else if c.Backend != "none" {
		return nil, fmt.Errorf("tracing: unknown backend %q", c.Backend)
	}
	return tracing.New(backend, sample, opts...), nil
}

// clientIdentity tells whether the API listener asks clients for certificates (mTLS), whose
// subjects the echo and the server spans then carry.
func clientIdentity(c config.HTTP) bool {
	return c.TLS != nil && c.TLS.ClientAuth != "" && c.TLS.ClientAuth != "none"
}

// replaceRules swaps in the route rules of a config that passed its checks, those of the scenario
// phase named (for the spans' scenario.phase tag). keepDraws keeps the seeded source where it
// stands: a scenario's phase changes and ramp steps go on with the draws, so that the same seed
// and scenario give the same draws, where starting again from the seed at every 100 ms step would
// repeat the first draws over and over.
func (a *app) replaceRules(cfg config.Config, phase string, keepDraws bool) error {
	o := a.serviceOptions(cfg)
	if keepDraws && a.draws != nil {
		o.Random = a.draws
	}
	o.Phase = phase
	if err := a.router.Replace(a.routeRules(cfg), o); err != nil {
		return err
	}
	a.draws = o.Random
	return nil
}

// serviceOptions are what the config sets for every rule of a table, at start and at each reload,
// and the route's CPU counter that the burned CPU goes to.
func (a *app) serviceOptions(cfg config.Config) service.Options {
	return service.Options{
		MaxHops:  cfg.MaxHops,
		Random:   service.NewRandom(cfg.Seed),
		Resident: cfg.Resident,
		Leak:     service.Leak{PerRequest: cfg.Leak.PerRequest, Max: cfg.Leak.Max},
		Burned:   a.agg.AddCPU, // published with the route's requests
	}
}

// memoryGauges publish the memory the service's cost holds, read at each scrape.
func memoryGauges(ns string, r *service.Router) []prometheus.Collector {
	gauge := func(name, help string, read func(service.MemoryStats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help},
			func() float64 { return float64(read(r.Memory())) })
	}
	return []prometheus.Collector{
		gauge("memory_held_bytes", "Bytes held now by requests being answered (their route's memory key).",
			func(m service.MemoryStats) int64 { return m.Held }),
		gauge("memory_resident_bytes", "Bytes of the steady allocation the resident key asks for, held now.",
			func(m service.MemoryStats) int64 { return m.Resident }),
		gauge("memory_leaked_bytes", "Bytes the leak key keeps now, up to its max; POST /-/leak/release gives them back.",
			func(m service.MemoryStats) int64 { return m.Leaked }),
	}
}

// errDrainCut is serveConfig's error when requests were still running as the drain ended (the
// grace period ran out, or a second signal came): serve exits with exitDrainCut for it.
var errDrainCut = errors.New("drain cut short")

// Listener limits: the admin listener takes a few dozen connections, and the API all the process's
// file descriptors but a reserve, so that neither listener, nor a flood of idle connections, can
// starve the other of descriptors (nor outbound calls and log files of theirs). At its cap the
// admin listener closes a connection of the client address holding the most, the one that has
// waited longest for a request, rather than make a new one wait (transport.AdminListener), so
// what is held open to it, or a flood of new connections from elsewhere, never starves a probe.
const (
	adminMaxConns = 64
	fdReserve     = 64 + adminMaxConns
)

// serveConfig runs the app on its listeners until a signal or a failure: the app's parts, each a
// run-group actor, in the shutdown order.
func serveConfig(o options, src configSource, cfg config.Config, logger log.Logger) error {
	a, err := newApp(cfg, logger)
	if err != nil {
		return err
	}
	// SIGHUP reloads the config file, as it does for Prometheus (by default it would end the
	// process): the config's owner takes it, so that a reload never holds up the other signals.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	a.owner.setSource(src, hups)

	lns, err := listen(cfg, a.rejected)
	if err != nil {
		return err
	}
	if a.certs != nil {
		lns.api.UseTLS(a.certs.Config(), a.handshakeFailed)
	}
	grpcLn, err := listenGRPC(cfg.GRPC)
	if err != nil {
		_ = lns.api.Close()
		_ = lns.admin.Close()
		return err
	}
	sd := newShutdown(cfg.Shutdown)
	defer sd.forceNow()
	grpcStart, grpcDrained := grpcActors(a, grpcLn, sd, logger)

	// The actors, in shutdown order. When one ends (signals, at the first SIGINT or SIGTERM; any
	// other, on a failure), the run group interrupts them all in the order they are added here,
	// each interrupt returning before the next begins. So, once readiness has dropped and
	// drain_delay passed: the API stops accepting and drains; the config stops changing; the
	// flusher flushes once more; the admin listener closes after metrics_linger, so that a last
	// scrape collects every answered request; the tracer sends the last requests' spans. A new
	// part is a line in this list, at the place its stop belongs.
	var g run.Group
	for _, act := range []actor{
		signalsActor(sd, a.ready, logger),
		grpcStart, // begins the gRPC drain, which runs beside the API's
		apiActor(a, lns.api, lns.apiMaxConns, cfg.HTTP, sd, logger),
		grpcDrained, // waits for the gRPC drain
		ownerActor(a.owner),
		watcherActor(o, a.owner, logger),
		tlsWatcherActor(a, cfg.HTTP, logger),
		flusherActor(a.flusher),
		adminActor(a.admin, lns.admin, cfg.Admin, sd, logger),
		tracerActor(a.tracing, sd, logger),
	} {
		if act.execute != nil {
			g.Add(act.execute, act.interrupt)
		}
	}
	if err := g.Run(); err != nil {
		return err
	}
	if sd.drainCut.Load() {
		return errDrainCut
	}
	return nil
}

// actor is one long-running part of the process, in oklog/run's terms: execute runs until the
// part ends, or it fails; interrupt makes execute return. A part the config turns off is the zero
// actor, which serveConfig leaves out.
type actor struct {
	execute   func() error
	interrupt func(error)
}

// listeners are the API's and the admin's, each with its cap on connections (adminMaxConns).
type listeners struct {
	api         *transport.Listener
	apiMaxConns int
	admin       *transport.AdminListener
}

// listen opens both listeners, or neither; rejected counts an answer net/http writes by itself
// on the API.
func listen(cfg config.Config, rejected func(status int)) (listeners, error) {
	rawAPI, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return listeners{}, fmt.Errorf("API listener: %w", err)
	}
	rawAdmin, err := net.Listen("tcp", cfg.Admin.Addr)
	if err != nil {
		_ = rawAPI.Close()
		return listeners{}, fmt.Errorf("admin listener: %w", err)
	}
	apiMaxConns := maxAPIConns()
	return listeners{
		api:         transport.NewListener(rawAPI, apiMaxConns, rejected),
		apiMaxConns: apiMaxConns,
		admin:       transport.NewAdminListener(rawAdmin, adminMaxConns),
	}, nil
}

// shutdown is what the actors share about the process's end: its durations; force, cancelled by
// a second signal, after which the drain stops waiting and everything closes at once; and
// drainCut, set when the API's drain ended with requests still running.
type shutdown struct {
	config.Shutdown
	force    context.Context
	forceNow context.CancelFunc
	drainCut atomic.Bool
}

func newShutdown(c config.Shutdown) *shutdown {
	sd := &shutdown{Shutdown: c}
	sd.force, sd.forceNow = context.WithCancel(context.Background())
	return sd
}

// signalsActor ends the group at the first SIGINT or SIGTERM: it drops readiness, waits
// drain_delay, then returns. A second signal forces the end.
func signalsActor(sd *shutdown, ready *atomic.Bool, logger log.Logger) actor {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan struct{})
	return actor{func() error {
		select {
		case s := <-sigs:
			ready.Store(false)
			_ = level.Info(logger).Log("msg", "shutting down", "signal", s, "grace", sd.Grace.D())
			go func() {
				s := <-sigs
				_ = level.Warn(logger).Log("msg", "second signal, closing at once", "signal", s)
				sd.forceNow()
			}()
			sleepCtx(sd.force, sd.DrainDelay.D())
			return nil
		case <-stop:
			return nil
		}
	}, func(error) {
		close(stop)
	}}
}

// apiActor serves the API; on interrupt, it stops accepting and lets in-flight requests finish
// within grace. The drain closes the listener itself and turns keep-alives off, then waits for the
// HTTP/1 connections to close, before it calls Shutdown: net/http drops a request it reads once
// Shutdown has begun, and this way every connection the listener took gets its answer. HTTP/2
// connections do not close by themselves: Shutdown sends them GOAWAY (through transport.H2C, which
// serves them), their streams are answered and they close. Requests still
// running when grace ends are cut: their context is cancelled with the cause service.ErrStopping,
// so they are answered and counted 503, and given a moment to write that before the connections
// close.
func apiActor(a *app, ln *transport.Listener, maxConns int, c config.HTTP, sd *shutdown, logger log.Logger) actor {
	base, cut := context.WithCancelCause(context.Background())
	srv := newAPIServer(c, a.api, logger)
	srv.BaseContext = func(net.Listener) context.Context { return base }
	srv.ConnContext = transport.ConnContext
	http2Err := withHTTP2(srv, c, a.http2Errors)
	return actor{func() error {
		if http2Err != nil {
			return fmt.Errorf("HTTP/2: %w", http2Err)
		}
		_ = level.Info(logger).Log("msg", "API listening", "addr", ln.Addr(), "max_connections", maxConns,
			"tls", c.TLS != nil, "http2", c.HTTP2.Enabled)
		a.ready.Store(true)
		return serveUntilClosed(srv, ln)
	}, func(error) {
		defer cut(nil)
		a.ready.Store(false)
		ctx, cancel := context.WithTimeout(sd.force, sd.Grace.D())
		defer cancel()
		_ = ln.Close()
		srv.SetKeepAlivesEnabled(false) // closes the idle connections; answers close theirs
		waitCtx(ctx, sd.Grace.D(), func() bool { return ln.Open()-ln.OpenHTTP2() == 0 })
		err := srv.Shutdown(ctx)
		if err == nil { // the HTTP/2 connections, which Shutdown does not wait for (transport.H2C took them)
			waitCtx(ctx, sd.Grace.D(), func() bool { return ln.OpenHTTP2() == 0 })
			err = ctx.Err()
		}
		if err != nil {
			inFlight := a.inFlight()
			_ = level.Warn(logger).Log("msg", "API drain cut short", "err", err, "in_flight", inFlight)
			sd.drainCut.Store(inFlight > 0)
			cut(service.ErrStopping)
			waitCtx(context.Background(), cutAnswerTime, func() bool { return a.inFlight() == 0 })
			_ = srv.Close()
		}
		_ = level.Info(logger).Log("msg", "API stopped", "connections_accepted", ln.Accepted())
	}}
}

// ownerActor runs the config owner, which applies every reload and route patch, one at a time.
func ownerActor(owner *configOwner) actor {
	ctx, cancel := context.WithCancel(context.Background())
	return actor{func() error { return owner.Run(ctx) }, func(error) { cancel() }}
}

// watcherActor asks the owner to reload the config file when its content changes; there is none
// without a file or with -config.watch=false.
func watcherActor(o options, owner *configOwner, logger log.Logger) actor {
	if o.configFile == "" || !o.watch {
		return actor{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return actor{func() error {
		return watchFile(ctx, o.configFile, logger, func() { _ = owner.reloadFrom(ctx, "file change") })
	}, func(error) {
		cancel()
	}}
}

// flusherActor publishes the aggregated metrics every flush interval; stopped, it flushes once
// more, so that the last scrape sees every answered request.
func flusherActor(f *metrics.Flusher) actor {
	return actor{f.Run, func(error) { f.Stop() }}
}

// adminActor serves the admin listener; on interrupt, it waits metrics_linger, so that a last
// scrape can collect the final counts, then closes.
func adminActor(h http.Handler, ln *transport.AdminListener, c config.Admin, sd *shutdown, logger log.Logger) actor {
	srv := newAdminServer(h, logger, adminLimits)
	srv.ConnState = ln.ConnState
	return actor{func() error {
		_ = level.Info(logger).Log("msg", "admin listening", "addr", ln.Addr(), "pprof", c.PProf)
		return serveUntilClosed(srv, ln)
	}, func(error) {
		sleepCtx(sd.force, sd.MetricsLinger.D())
		ctx, cancel := context.WithTimeout(sd.force, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}}
}

// tracerActor runs nothing; its interrupt sends the spans still buffered before the process
// exits, which holds them all once the API has drained.
func tracerActor(tr *tracing.Tracing, sd *shutdown, logger log.Logger) actor {
	stop := make(chan struct{})
	return actor{func() error {
		<-stop
		return nil
	}, func(error) {
		close(stop)
		ctx, cancel := context.WithTimeout(sd.force, 5*time.Second)
		defer cancel()
		if err := tr.Close(ctx); err != nil {
			_ = level.Warn(logger).Log("msg", "tracer flush incomplete", "err", err)
		}
	}}
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
// It speaks HTTP/1 only: HTTP/2 (http.http2) is transport.H2C's, in front of its handler
// (withHTTP2), so that net/http never peeks at a connection's first bytes outside the head limit.
func newAPIServer(c config.HTTP, h http.Handler, logger log.Logger) *http.Server {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	return &http.Server{
		Protocols:                    protocols,
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
// cut off. Scrapes and probes are small and quick, sent at once by a kubelet or a Prometheus on a
// nearby host, so a head gets 2 s and an idle keep-alive 30 s (Prometheus reconnects when its
// scrape interval is longer, which costs a handshake a scrape); pprof's long profiles lift the write
// deadline for themselves (transport.NewAdminHandler). The timeouts only free what the listener's
// eviction would take back under pressure anyway. They are a parameter so that a test can show
// each one is applied without waiting for the real ones (adminActor passes adminLimits).
func newAdminServer(h http.Handler, logger log.Logger, t adminTimeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.head,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdLogger(logger),
	}
}

// adminTimeouts are the admin server's limits on a client: to send a request's head, to send a
// whole request, to take the answer, and to idle between requests on a keep-alive connection.
type adminTimeouts struct{ head, read, write, idle time.Duration }

// adminLimits are the admin server's timeouts, documented in docs/reliability.md (case 56).
var adminLimits = adminTimeouts{head: 2 * time.Second, read: 10 * time.Second, write: 30 * time.Second, idle: 30 * time.Second}

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
			rules[i].Calls[j].ID = a.calls.Register(r.Name, rules[i].Calls[j].Name)
		}
	}
	return rules
}
