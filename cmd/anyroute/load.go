package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/instrumenting/metrics"
	"github.com/anyroute/anyroute/transport/load"
	"github.com/anyroute/anyroute/transport/load/stages"
)

// loadOptions are the flags of `anyroute load`, beside the spec they build or override.
type loadOptions struct {
	metricsAddr string
	linger      time.Duration
	progress    string
}

// runLoad is `anyroute load`: shaped, counted load against the URLs given (see docs/load.md).
// Exit 0 when the run ended (its schedule ran out or a signal stopped it) and the summary was
// written; 2 for bad usage; 1 when it could not start (the metrics address taken).
func runLoad(args []string, stdout, stderr io.Writer) int {
	spec, o, err := parseLoad(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(stderr, "load: %s\n", line)
		}
		return exitBadUsage
	}
	return loadRun(spec, o, stdout, stderr)
}

func parseLoad(args []string, stderr io.Writer) (load.Spec, loadOptions, error) {
	var (
		o                                  loadOptions
		file, stagesArg, method, body, wts string
		headers                            headerFlags
		f                                  load.Spec
	)
	fs := flag.NewFlagSet("anyroute load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&file, "f", "", "JSON file of the run (targets, stages, rate, duration, concurrency, seed, timeout, drain, max_in_flight, new_connections, tracing); flags override it")
	fs.Float64Var(&f.Rate, "rate", 0, fmt.Sprintf("open model: requests per second, constant for -duration (cap %d)", load.MaxRate))
	duration := fs.Duration("duration", 0, fmt.Sprintf("how long: with -rate, or of the closed model (cap %s)", load.MaxDuration))
	fs.StringVar(&stagesArg, "stages", "", `open model: the schedule, a file or inline JSON: {"stages":[{"duration":"30s","target_rate":500},...]}`)
	fs.IntVar(&f.Concurrency, "concurrency", 0, fmt.Sprintf("closed model: workers, each sending when its last answer came (cap %d)", load.MaxConcurrency))
	fs.Uint64Var(&f.Seed, "seed", 0, "seed of the choice of target per request")
	fs.StringVar(&method, "method", "", "method of the URLs given as arguments (default GET)")
	fs.Var(&headers, "H", `header of the URLs given as arguments, "Name: value" (repeatable)`)
	fs.StringVar(&body, "body", "", "request body of the URLs given as arguments")
	fs.StringVar(&wts, "weights", "", "comma-separated weights of the URLs given as arguments, in order (default 1 each)")
	timeout := fs.Duration("timeout", 0, "per request (default 10s)")
	drain := fs.Duration("drain", 0, "at the end or on SIGINT/SIGTERM, how long to wait for requests in flight before canceling them (default 10s)")
	fs.IntVar(&f.MaxInFlight, "max-in-flight", 0, fmt.Sprintf("open model: requests out at once; a due request past it is dropped and counted (default 1000, cap %d)", load.MaxInFlight))
	fs.BoolVar(&f.NewConnections, "new-connections", false, "open a new connection for every request (no keep-alive): behind a Kubernetes Service each one is balanced, so pods added during the run get their share")
	fs.StringVar(&o.metricsAddr, "metrics.addr", "", "serve the run's /metrics on this address (none by default)")
	fs.DurationVar(&o.linger, "linger", 0, "keep /metrics up this long after the run, for a last scrape")
	fs.StringVar(&o.progress, "progress", "auto", "progress line on stderr: auto (when stderr is a terminal), on, off")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: anyroute load [flags] URL...\n       anyroute load -f run.json [flags] [URL...]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return load.Spec{}, o, err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	spec := load.Spec{Tracing: load.DefaultTracing()}
	var errs []error
	if file != "" {
		doc, err := os.ReadFile(file)
		if err == nil {
			spec, err = load.ParseSpec(doc)
		}
		if err != nil {
			return spec, o, fmt.Errorf("%s: %w", file, err)
		}
	}
	if stagesArg != "" {
		p, err := readStages(stagesArg)
		if err != nil {
			return spec, o, err
		}
		spec.Stages = p.Stages
	}
	targets, err := argTargets(fs.Args(), method, headers, body, wts)
	errs = append(errs, err)
	spec.Targets = append(spec.Targets, targets...)
	if set["rate"] {
		spec.Rate = f.Rate
	}
	if set["duration"] {
		spec.Duration = stages.Duration(*duration)
	}
	if set["concurrency"] {
		spec.Concurrency = f.Concurrency
	}
	if set["seed"] {
		spec.Seed = f.Seed
	}
	if set["timeout"] {
		spec.Timeout = stages.Duration(*timeout)
	}
	if set["drain"] {
		spec.Drain = stages.Duration(*drain)
	}
	if set["max-in-flight"] {
		spec.MaxInFlight = f.MaxInFlight
	}
	if set["new-connections"] {
		spec.NewConnections = f.NewConnections
	}
	switch o.progress {
	case "auto", "on", "off":
	default:
		errs = append(errs, fmt.Errorf("-progress: %q is none of auto, on, off", o.progress))
	}
	if o.linger < 0 || o.linger > time.Hour {
		errs = append(errs, fmt.Errorf("-linger: %s is outside [0, 1h]", o.linger))
	}
	spec = spec.WithDefaults()
	errs = append(errs, spec.Check())
	return spec, o, errors.Join(errs...)
}

// readStages reads -stages: inline JSON when it starts with '{', else a file.
func readStages(arg string) (stages.Plan, error) {
	doc := []byte(arg)
	if !strings.HasPrefix(strings.TrimSpace(arg), "{") {
		var err error
		if doc, err = os.ReadFile(arg); err != nil {
			return stages.Plan{}, fmt.Errorf("-stages: %w", err)
		}
	}
	p, err := stages.Parse(doc, stages.Limits{MaxRate: load.MaxRate, MaxDuration: load.MaxDuration})
	if err != nil {
		return p, fmt.Errorf("-stages: %w", err)
	}
	return p, nil
}

// argTargets are the URLs given as arguments, with the method, headers, body and weights of the
// flags.
func argTargets(urls []string, method string, headers headerFlags, body, weights string) ([]load.Target, error) {
	var ws []float64
	if weights != "" {
		for w := range strings.SplitSeq(weights, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
			if err != nil {
				return nil, fmt.Errorf("-weights: %q is not a number", w)
			}
			ws = append(ws, v)
		}
		if len(ws) != len(urls) {
			return nil, fmt.Errorf("-weights: %d weights for %d URLs", len(ws), len(urls))
		}
	}
	var ts []load.Target
	for i, u := range urls {
		t := load.Target{URL: u, Method: method, Body: body, Headers: map[string]string(headers)}
		if ws != nil {
			t.Weight = ws[i]
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// headerFlags collects -H "Name: value".
type headerFlags map[string]string

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("%q is not \"Name: value\"", v)
	}
	if *h == nil {
		*h = headerFlags{}
	}
	(*h)[strings.TrimSpace(name)] = strings.TrimSpace(value)
	return nil
}

// loadRun wires one run: the aggregator and its flusher, the tracer, the runner, /metrics, the
// progress line; then runs it and prints the summary.
func loadRun(spec load.Spec, o loadOptions, stdout, stderr io.Writer) int {
	logger := log.NewLogfmtLogger(log.NewSyncWriter(stderr))
	reg := prometheus.NewRegistry()
	agg := load.NewAggregator(spec, config.Default().Metrics.Buckets)
	flusher := metrics.NewFlusher(agg, time.Second)
	tr, err := newTracing(*spec.Tracing, "load", reg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return exitBadUsage
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Close(closeCtx)
	}()
	runner := load.NewRunner(spec, agg, tr, logger)
	reg.MustRegister(metrics.NewClientCollector("load", flusher,
		"Time from each request's due time (open model; its send in the closed model) to the end of its answer, by target, method and code."))
	reg.MustRegister(runner.Collectors()...)
	reg.MustRegister(collectors.NewGoCollector())

	var srv *http.Server
	if o.metricsAddr != "" {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "load: -metrics.addr: %v\n", err)
			return exitFailure
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		fmt.Fprintf(stderr, "load: metrics on http://%s/metrics\n", ln.Addr())
	}
	go func() { _ = flusher.Run() }()

	// The first SIGINT or SIGTERM stops the sending and drains (or ends the linger); a second cuts
	// the drain short.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs, exit := make(chan os.Signal, 2), make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	defer close(exit)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-sigs:
			case <-exit:
				return
			}
			if n == 0 {
				fmt.Fprintln(stderr, "load: stopping: no more sends; waiting for the requests in flight (a second signal cancels them)")
				stop()
			} else {
				runner.Abort()
			}
		}
	}()

	stopProgress := startProgress(runner, o.progress, stderr)
	runner.Run(ctx)
	stopProgress()
	flusher.Stop() // flushes once more: /metrics shows every request ended

	sum := runner.Summary()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(sum)
	fmt.Fprintf(stderr, "load: %s: sent %d of %d due (%d dropped), %.1f/s against %.1f/s scheduled, codes %v\n",
		sum.StoppedBy, sum.Sent, sum.Scheduled, sum.Dropped, sum.AchievedRate, sum.ScheduledRate, sum.Codes)

	if srv != nil {
		if o.linger > 0 {
			t := time.NewTimer(o.linger)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
	}
	return exitOK
}

// startProgress writes a progress line to stderr once a second, when asked or (auto) when stderr
// is a terminal: a log collector or a pipe gets only the summary. It returns the function that
// ends the line.
func startProgress(r *load.Runner, mode string, stderr io.Writer) func() {
	if mode == "off" || (mode == "auto" && !isTerminal(stderr)) {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(stderr, "\r%s\n", progressLine(r.Progress()))
				return
			case <-tick.C:
				fmt.Fprintf(stderr, "\r%s", progressLine(r.Progress()))
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func progressLine(p load.Progress) string {
	return fmt.Sprintf("%5.0fs/%.0fs  due %.0f/s  sent %d  2xx %d  3xx %d  4xx %d  5xx %d  no answer %d  dropped %d  late %d  in flight %d ",
		p.Elapsed.Seconds(), p.Planned.Seconds(), p.Rate, p.Sent, p.Classes[2], p.Classes[3], p.Classes[4], p.Classes[5], p.Classes[0],
		p.Dropped, p.Late, p.InFlt)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
