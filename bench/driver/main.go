// Command driver is the project's load benchmark, one program for what `make bench`,
// `make bench-load` and `make bench-scrapes` measure: anyroute by tracing mode, its peers
// (podinfo, go-httpbin, fortio), one upstream hop, the memory an idle connection costs, each
// against a bare net/http server doing the same work the plain way (bench/bare); its gRPC
// listener beside a bare grpc-go echo (bench/bare/grpc) and fortio's gRPC ping, and its h2c beside
// bare net/http over h2c, those driven by bench/rpcload where wrk cannot go; and the API under a
// scrape storm. It prints its tables and rewrites the generated sections of
// docs/benchmarks.md and the README's performance paragraph.
//
// The headline is server CPU per request relative to bare, because on a shared machine a
// server's throughput moves with what else runs and its CPU per request far less. Every case is
// measured in many short pairs of windows, the case and its baseline back to back on warm
// servers, alternating which goes first; each pair gives a ratio taken within a few seconds, and
// the figure is the median of the ratios with a distribution-free 95% interval (stats.go), marked
// inconclusive when the interval is wider than ±3%. Beside it, figures that do not drift with the
// machine's speed and explain the CPU: allocations and bytes per request, GC cycles per 1,000
// requests and the heap (from the server's Go runtime metrics), and read and write system calls
// per request (/proc/PID/io). Throughput is a secondary column.
//
//	go run ./bench/driver -cases all -pairs 20 -window 2s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the driver's flags; the Makefile's BENCH_* variables set them.
type options struct {
	cases        []string
	whole        bool // the selection named only groups: its tables are whole ones, fit for the doc
	pairs        int
	window       time.Duration
	warmup       time.Duration
	connections  int
	h2Conns      int // the HTTP/2 cases' connections, -connections calls in flight over them
	idleConns    int
	scrapeRounds int
	scrapers     int
	scrapeRate   float64
	baselineRef  string
	portBase     int
	doc, readme  string
	out          string
	goCmd        string
}

// selectors name groups of cases in -cases.
var selectors = map[string]func(Case) bool{
	"all":   func(Case) bool { return true },
	"load":  func(c Case) bool { return c.Group != groupScrapes },
	"storm": func(c Case) bool { return c.Group == groupScrapes },
}

func main() {
	var o options
	var casesFlag string
	flag.StringVar(&casesFlag, "cases", "all", "cases to run, space- or comma-separated ids, or a group: all, load (every case but the scrape storm), storm")
	flag.IntVar(&o.pairs, "pairs", 20, "pairs of windows per case (the scrape storm: in all, over -scrape-rounds servers)")
	flag.DurationVar(&o.window, "window", 2*time.Second, "length of one measured window, whole seconds")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "load on each server before the first window, whole seconds")
	flag.IntVar(&o.connections, "connections", 64, "wrk's connections; the gRPC and h2c cases' calls in flight (bench/rpcload)")
	flag.IntVar(&o.h2Conns, "h2-connections", 4, "the gRPC and h2c cases' connections, -connections calls in flight spread over them")
	flag.IntVar(&o.idleConns, "idle-connections", 5000, "idle keep-alive connections of the memory figures (0: none)")
	flag.IntVar(&o.scrapeRounds, "scrape-rounds", 3, "scrape storm: servers started per binary, the pairs split among them")
	flag.IntVar(&o.scrapers, "scrapers", 8, "scrape storm: scrapers")
	flag.Float64Var(&o.scrapeRate, "scrape-rate", 2, "scrape storm: scrapes a second per scraper")
	flag.StringVar(&o.baselineRef, "baseline-ref", "3c32b1d", "scrape storm: the git ref whose anyroute is the storm-baseline case (before the cached exposition)")
	flag.IntVar(&o.portBase, "port-base", 18100, "first of the 80 loopback ports the run uses")
	flag.StringVar(&o.doc, "doc", "docs/benchmarks.md", "doc whose load and scrapes sections are rewritten (empty: print only; a run of named cases prints only unless -doc is given)")
	flag.StringVar(&o.readme, "readme", "README.md", "file whose perf section (the performance paragraph) is rewritten with the doc (empty: none)")
	flag.StringVar(&o.out, "out", ".build/bench", "directory of the builds, configs and logs of the run")
	flag.StringVar(&o.goCmd, "go", "go", "the go command that builds the servers")
	flag.Parse()

	docSet := false
	flag.Visit(func(f *flag.Flag) { docSet = docSet || f.Name == "doc" })
	var err error
	o.cases, o.whole, err = selectCases(casesFlag)
	if err == nil {
		err = o.validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if !o.whole && !docSet {
		o.doc = ""
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := newDriver(o)
	err = d.run(ctx)
	d.stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"window", o.window}, {"warmup", o.warmup}} {
		if d.v < time.Second || d.v%time.Second != 0 {
			return fmt.Errorf("-%s %v: want whole seconds, at least 1s (wrk's unit)", d.name, d.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"pairs", float64(o.pairs)}, {"connections", float64(o.connections)}, {"h2-connections", float64(o.h2Conns)},
		{"scrape-rounds", float64(o.scrapeRounds)}, {"scrapers", float64(o.scrapers)}, {"scrape-rate", o.scrapeRate}} {
		if f.v <= 0 {
			return fmt.Errorf("-%s %v: must be positive", f.name, f.v)
		}
	}
	if o.h2Conns > o.connections {
		return fmt.Errorf("-h2-connections (%d) is at most -connections (%d): every connection carries calls", o.h2Conns, o.connections)
	}
	return nil
}

// selectCases turns -cases into case ids in the table's order, each baseline a case is paired
// with added; whole says every word was a group.
func selectCases(spec string) ([]string, bool, error) {
	want := map[string]bool{}
	whole := true
	for w := range strings.FieldsFuncSeq(spec, func(r rune) bool { return r == ',' || r == ' ' }) {
		if sel, ok := selectors[w]; ok {
			for _, c := range cases {
				if sel(c) {
					want[c.ID] = true
				}
			}
			continue
		}
		c, ok := caseByID(w)
		if !ok {
			ids := make([]string, 0, len(cases))
			for _, c := range cases {
				ids = append(ids, c.ID)
			}
			return nil, false, fmt.Errorf("unknown case %q (groups: all, load, storm; cases: %s)", w, strings.Join(ids, " "))
		}
		want[c.ID] = true
		whole = false
	}
	var ids []string
	for _, c := range cases {
		if want[c.ID] && c.Base != "" {
			want[c.Base] = true
		}
	}
	for _, c := range cases {
		if want[c.ID] {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil, false, fmt.Errorf("no cases selected")
	}
	return ids, whole, nil
}
