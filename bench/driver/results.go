package main

import (
	"math"
	"slices"
	"strings"
)

// window is one measured window of one server.
type window struct {
	wrkResult
	CPU      float64 // server CPU seconds over the window
	Wall     float64 // seconds
	Syscalls float64 // read and write system calls over the window, -1 unknown
	RSS      float64 // MiB at the window's end
	Heap     float64 // heap in use mid-window, bytes; NaN unknown
	Live     float64 // live heap mid-window, bytes; NaN unknown
	UpOpen   float64 // connections open to the upstream mid-window; NaN when none
}

// CPUPerRequest is in µs.
func (w window) CPUPerRequest() float64 { return w.CPU / w.Requests * 1e6 }

// Busy is the share of its core the server used.
func (w window) Busy() float64 { return w.CPU / w.Wall }

// pair is a case's window and its baseline's, back to back.
type pair struct {
	Round         int
	Subject, Base window
}

// figures are a case's totals over the run.
type figures struct {
	RSSIdle    float64 // MiB after its first request
	Allocs     float64 // per request; NaN when the server exposes no Go metrics
	Bytes      float64 // per request
	GC         float64 // cycles per 1,000 requests
	UpAccepted float64 // TCP connections its upstream accepted over the run; NaN when none
	UpCalls    float64 // calls its upstream answered over the run
	// Counted is what the server's app_requests_total grew by from before the first window to
	// after the last, for anyroute's gRPC and h2c cases (NaN for the others): with
	// bench/rpcload, which counts every call it starts, it equals the calls of the windows.
	Counted     float64
	UpstreamURL string
}

type memoryRow struct {
	ID                 string
	Idle, Held         float64 // MiB
	IdleAnon, IdleFile float64 // MiB: Idle's anonymous and file-backed parts, NaN unknown
	Open, Est, Closed  int
	Errors             string
}

type stormWindow struct {
	Round, Pair int
	Storm       bool
	RPS, P99    float64
	CPU         float64 // µs per request
	Scrapes     map[string]float64
}

type stormResult struct {
	Series  float64
	Windows []stormWindow
}

// results are everything the tables are made of.
type results struct {
	Opt                   options
	Date, Machine, Wrk    string
	LoadBefore, LoadAfter string
	Run                   []Case
	Missing               map[string]string // peers that could not be built, why
	Builds                map[string]string // each peer's stamp from scripts/tools.sh, by tool
	Windows               map[string][]window
	Pairs                 map[string][]pair
	Figures               map[string]*figures
	Traced                map[string]string
	Memory                []memoryRow
	Storm                 map[string]*stormResult
}

func newResults(o options) *results {
	return &results{Opt: o, Missing: map[string]string{}, Windows: map[string][]window{}, Pairs: map[string][]pair{},
		Builds: map[string]string{}, Figures: map[string]*figures{}, Traced: map[string]string{}, Storm: map[string]*stormResult{}}
}

func (r *results) ran(id string) bool {
	return slices.ContainsFunc(r.Run, func(c Case) bool { return c.ID == id })
}

func (r *results) figures(id string) *figures {
	if f, ok := r.Figures[id]; ok {
		return f
	}
	return &figures{RSSIdle: nan(), Allocs: nan(), Bytes: nan(), GC: nan(), UpAccepted: nan(), UpCalls: nan(), Counted: nan()}
}

// cpuRatio is the case's CPU per request over its baseline's, pair by pair.
func (r *results) cpuRatio(id string) Estimate {
	var xs []float64
	for _, p := range r.Pairs[id] {
		xs = append(xs, p.Subject.CPUPerRequest()/p.Base.CPUPerRequest())
	}
	return Estimated(xs)
}

// rpsRatio is the case's throughput over its baseline's, pair by pair.
func (r *results) rpsRatio(id string) Estimate {
	var xs []float64
	for _, p := range r.Pairs[id] {
		xs = append(xs, p.Subject.RPS/p.Base.RPS)
	}
	return Estimated(xs)
}

// med is the median of f over the case's windows, NaN ones left out.
func (r *results) med(id string, f func(window) float64) float64 {
	var xs []float64
	for _, w := range r.Windows[id] {
		if v := f(w); !math.IsNaN(v) {
			xs = append(xs, v)
		}
	}
	return Median(xs)
}

// highest is the largest of f over the case's windows.
func (r *results) highest(id string, f func(window) float64) float64 {
	v := nan()
	for _, w := range r.Windows[id] {
		if x := f(w); math.IsNaN(v) || x > v {
			v = x
		}
	}
	return v
}

// errors are the case's distinct error lines (wrk's or rpcload's), "none" for none.
func (r *results) errors(id string) string {
	var errs []string
	for _, w := range r.Windows[id] {
		if w.Errors != "" && !slices.Contains(errs, w.Errors) {
			errs = append(errs, w.Errors)
		}
	}
	if len(errs) == 0 {
		return "none"
	}
	return strings.Join(errs, "; ")
}

// syscallsPerRequest is the median over the windows, NaN when /proc/PID/io was unreadable.
func (r *results) syscallsPerRequest(id string) float64 {
	return r.med(id, func(w window) float64 {
		if w.Syscalls < 0 {
			return nan()
		}
		return w.Syscalls / w.Requests
	})
}

// stormRatios are, pair by pair, the CPU per request quiet ÷ storm and the throughput storm ÷
// quiet.
func (s *stormResult) ratios() (cpu, rps Estimate) {
	type key struct{ round, pair int }
	quiet := map[key]stormWindow{}
	for _, w := range s.Windows {
		if !w.Storm {
			quiet[key{w.Round, w.Pair}] = w
		}
	}
	var cs, rs []float64
	for _, w := range s.Windows {
		if q, ok := quiet[key{w.Round, w.Pair}]; ok && w.Storm {
			cs = append(cs, q.CPU/w.CPU)
			rs = append(rs, w.RPS/q.RPS)
		}
	}
	return Estimated(cs), Estimated(rs)
}

// med is the median of f over the quiet or storm windows.
func (s *stormResult) med(storm bool, f func(stormWindow) float64) float64 {
	var xs []float64
	for _, w := range s.Windows {
		if w.Storm == storm {
			xs = append(xs, f(w))
		}
	}
	return Median(xs)
}

// scrapes is the storm windows' scrape figure: summed for counts, the median for the rest.
func (s *stormResult) scrapes(field string, sum bool) float64 {
	var xs []float64
	total := 0.0
	for _, w := range s.Windows {
		if w.Storm {
			xs = append(xs, w.Scrapes[field])
			total += w.Scrapes[field]
		}
	}
	if sum {
		return total
	}
	return Median(xs)
}
