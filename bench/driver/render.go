package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// num formats v, "-" for NaN.
func num(format string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// est is an estimate as "**median** [lo–hi]", or its range when too few pairs reach 95%.
func est(e Estimate) string {
	if e.N == 0 {
		return "-"
	}
	if !e.OK() {
		return fmt.Sprintf("**%.3f** (range %.3f–%.3f; %d pairs, too few for 95%%)", e.Median, e.Lo, e.Hi, e.N)
	}
	return fmt.Sprintf("**%.3f** [%.3f–%.3f]", e.Median, e.Lo, e.Hi)
}

// verdict is the target beside the estimate: met or missed by the median, or inconclusive when
// the interval does not reach 95% or is wider than ±3%. ceiling says the target is a most.
func verdict(e Estimate, target float64, ceiling bool) string {
	if target == 0 || e.N == 0 {
		return ""
	}
	op, met := "≥", e.Median >= target
	if ceiling {
		op, met = "≤", e.Median <= target
	}
	v := fmt.Sprintf("%s %.2f: ", op, target)
	switch {
	case !e.OK():
		return v + "inconclusive (too few pairs for a 95% interval)"
	case !e.Conclusive():
		return v + fmt.Sprintf("inconclusive (interval ±%.1f%%, wider than ±%.0f%%)", 100*e.HalfWidth(), 100*MaxHalfWidth)
	case met:
		return v + "met"
	default:
		return v + "**missed**"
	}
}

func mib(bytes float64) float64 { return bytes / (1 << 20) }

// heap is "in use / live" in MiB, live "-" where the server does not expose it.
func (r *results) heap(id string) string {
	inuse := r.med(id, func(w window) float64 { return w.Heap })
	live := r.med(id, func(w window) float64 { return w.Live })
	if math.IsNaN(inuse) {
		return "-"
	}
	return num("%.1f", mib(inuse)) + " / " + num("%.1f", mib(live))
}

// row is the columns the tracing and call tables share, after the server's name and request.
func (r *results) row(c Case) string {
	f := r.figures(c.ID)
	ratio, target, rps := "1 (baseline)", "", "1"
	if c.Base != "" {
		e := r.cpuRatio(c.ID)
		ratio, target, rps = est(e), verdict(e, c.Target, true), est(r.rpsRatio(c.ID))
	}
	cols := []string{
		c.Name, c.request(), ratio, target,
		num("%.1f", f.Allocs), num("%.0f", f.Bytes), num("%.2f", f.GC), r.heap(c.ID),
		num("%.1f", r.syscallsPerRequest(c.ID)), rps,
		num("%.1f", r.med(c.ID, window.CPUPerRequest)),
		num("%.0f", r.med(c.ID, func(w window) float64 { return w.RPS })),
		num("%.0f", r.med(c.ID, func(w window) float64 { return w.P50 })) + " / " +
			num("%.0f", r.med(c.ID, func(w window) float64 { return w.P99 })),
		num("%.2f", r.med(c.ID, window.Busy)),
		num("%.1f", f.RSSIdle) + " / " + num("%.1f", r.highest(c.ID, func(w window) float64 { return w.RSS })),
		r.errors(c.ID),
	}
	return "| " + strings.Join(cols, " | ") + " |"
}

const rowHead = "| server | request | CPU per request ÷ %s, median of the pairs [95%% interval] | target | allocs per request | bytes per request | GC cycles per 1,000 requests | heap in use / live (MiB) | read + write syscalls per request | req/s ÷ %s [95%% interval] | server CPU per request (µs) | req/s | p50 / p99 (µs) | server core busy | RSS idle / after load (MiB) | wrk errors |"

func rule(n int) string { return "|" + strings.Repeat("---|", n) }

func (r *results) tracingTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, rowHead[:len(rowHead)-1]+"| Jaeger |\n", "bare", "bare")
	b.WriteString(rule(17) + "\n")
	for _, c := range r.Run {
		if c.Group == groupTracing {
			fmt.Fprintf(&b, "%s %s |\n", r.row(c), r.Traced[c.ID])
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func (r *results) callTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, rowHead[:len(rowHead)-1]+"| upstream: TCP connections accepted / calls answered over the run | connections open to the upstream half-way through a window (median) |\n", "the bare caller's", "the bare caller's")
	b.WriteString(rule(18) + "\n")
	for _, c := range r.Run {
		if c.Group == groupCall {
			f := r.figures(c.ID)
			fmt.Fprintf(&b, "%s %s / %s | %s |\n", r.row(c), num("%.0f", f.UpAccepted), num("%.0f", f.UpCalls),
				num("%.0f", r.med(c.ID, func(w window) float64 { return w.UpOpen })))
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// protocolsTable is the gRPC and h2c cases, each beside the bare server of its protocol, with
// the calls the client made in the windows beside those anyroute counted.
func (r *results) protocolsTable() string {
	var b strings.Builder
	head := strings.Replace(rowHead[:len(rowHead)-1], "| wrk errors ", "| client errors ", 1)
	fmt.Fprintf(&b, head+"| calls in the windows: client / anyroute's `app_requests_total` |\n", "its baseline's", "its baseline's")
	b.WriteString(rule(17) + "\n")
	for _, c := range cases {
		if c.Group != groupProtocols || (!r.ran(c.ID) && r.Missing[c.ID] == "") {
			continue
		}
		if why := r.Missing[c.ID]; why != "" {
			fmt.Fprintf(&b, "| %s | %s | could not be built: `%s` |%s\n", c.Name, c.request(), why, strings.Repeat(" |", 17-3))
			continue
		}
		var client float64
		for _, w := range r.Windows[c.ID] {
			client += w.Requests
		}
		fmt.Fprintf(&b, "%s %s / %s |\n", r.row(c), num("%.0f", client), num("%.0f", r.figures(c.ID).Counted))
	}
	return strings.TrimRight(b.String(), "\n")
}

func (r *results) peersTable() string {
	var b strings.Builder
	b.WriteString("| server | request | what it answers | comparable work | CPU per request ÷ bare [95% interval] | CPU per request ÷ anyroute tracing none's | allocs per request | GC cycles per 1,000 requests | heap in use (MiB) | req/s ÷ bare [95% interval] | server CPU per request (µs) | req/s | p99 (µs) | wrk errors |\n")
	b.WriteString(rule(14) + "\n")
	none := r.cpuRatio("none")
	for _, c := range cases {
		if c.Group != groupPeers || (!r.ran(c.ID) && r.Missing[c.ID] == "") {
			continue
		}
		if why := r.Missing[c.ID]; why != "" {
			fmt.Fprintf(&b, "| %s | `GET %s` | %s | %s | could not be built: `%s` |%s\n", c.Name, c.Path, c.Does, c.Comparable, why,
				strings.Repeat(" |", 14-5)) // the other columns empty
			continue
		}
		f := r.figures(c.ID)
		e := r.cpuRatio(c.ID)
		vsNone := "-"
		if none.N > 0 && e.N > 0 {
			vsNone = fmt.Sprintf("%.2f", e.Median/none.Median)
		}
		heap := r.med(c.ID, func(w window) float64 { return w.Heap })
		fmt.Fprintf(&b, "| %s | `GET %s` | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Name, c.Path, c.Does, c.Comparable,
			est(e), vsNone, num("%.1f", f.Allocs), num("%.2f", f.GC), num("%.1f", mib(heap)), est(r.rpsRatio(c.ID)),
			num("%.1f", r.med(c.ID, window.CPUPerRequest)), num("%.0f", r.med(c.ID, func(w window) float64 { return w.RPS })),
			num("%.0f", r.med(c.ID, func(w window) float64 { return w.P99 })), r.errors(c.ID))
	}
	return strings.TrimRight(b.String(), "\n")
}

func (r *results) memoryTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| server | RSS idle (MiB) | of which anonymous / file-backed (MiB) | RSS with %d idle keep-alive connections (MiB) | per connection established (KiB) | connections open / established at the server / closed by it while held |\n", r.Opt.idleConns)
	b.WriteString(rule(6) + "\n")
	for _, m := range r.Memory {
		c, _ := caseByID(m.ID)
		per := nan()
		if m.Est > 0 {
			per = (m.Held - m.Idle) * 1024 / float64(m.Est)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s / %s | %.1f | %s | %d / %d / %d |\n", c.Name, m.Idle, num("%.1f", m.IdleAnon), num("%.1f", m.IdleFile),
			m.Held, num("%.1f", per), m.Open, m.Est, m.Closed)
	}
	return strings.TrimRight(b.String(), "\n")
}

func (r *results) stormTable() string {
	var b strings.Builder
	b.WriteString("| server | CPU per request quiet ÷ storm, median of the pairs [95% interval] | target | req/s storm ÷ quiet [95% interval] | CPU per request, quiet / storm (µs) | req/s quiet / storm | scrapes ok / refused / failed | scrape p50 / p99 (ms) | request series | gzipped page |\n")
	b.WriteString(rule(10) + "\n")
	for _, c := range r.Run {
		s := r.Storm[c.ID]
		if c.Group != groupScrapes || s == nil {
			continue
		}
		cpu, rps := s.ratios()
		target := verdict(cpu, c.Target, false)
		if refused := s.scrapes("refused", true); target != "" && refused > 0 {
			target += fmt.Sprintf("; %.0f scrapes refused: **missed**", refused)
		}
		cpuOf := func(w stormWindow) float64 { return w.CPU }
		rpsOf := func(w stormWindow) float64 { return w.RPS }
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s / %s | %s / %s | %s / %s / %s | %s / %s | %s | %s B |\n", c.Name, est(cpu), target, est(rps),
			num("%.2f", s.med(false, cpuOf)), num("%.2f", s.med(true, cpuOf)),
			num("%.0f", s.med(false, rpsOf)), num("%.0f", s.med(true, rpsOf)),
			num("%.0f", s.scrapes("ok", true)), num("%.0f", s.scrapes("refused", true)), num("%.0f", s.scrapes("failed", true)),
			num("%.2f", s.scrapes("p50_ms", false)), num("%.2f", s.scrapes("p99_ms", false)),
			num("%.0f", s.Series), num("%.0f", s.scrapes("gzip_bytes", false)))
	}
	return strings.TrimRight(b.String(), "\n")
}

// builds names the build of each peer of group g in the run, in the run's order: a section says how
// only the peers in its own table were built.
func (r *results) builds(g group) string {
	var parts []string
	for _, c := range r.Run {
		if c.Group != g || c.Tool == "" {
			continue
		}
		if part := c.Tool + ": " + r.Builds[c.Tool]; !slices.Contains(parts, part) {
			parts = append(parts, part)
		}
	}
	return strings.Join(parts, "; ")
}

func (r *results) has(g group) bool {
	for _, c := range r.Run {
		if c.Group == g {
			return true
		}
	}
	return false
}

// missing says a case of the group could not be built.
func (r *results) missing(g group) bool {
	for _, c := range cases {
		if c.Group == g && r.Missing[c.ID] != "" {
			return true
		}
	}
	return false
}

// method is the paragraph that says how the load figures were made.
func (r *results) method() string {
	o := r.Opt
	return fmt.Sprintf("Command: `make bench` (`bench/driver`), %s. Machine: %s; load average (1, 5, 15 min) %s before the run, %s after.\n"+
		"Every server of the run starts at once and stays warm, pinned to core %s and idle but for its own windows; `wrk -t1 -c%d -d%ds --latency` runs on core %s, always a `GET` with only a Host header, after a %ds warm-up of each server. "+
		"Each case is measured in %d pairs of windows, its own and its baseline's back to back, the pairs interleaved across the cases (forward in odd rounds, backward in even ones) and the order within a pair alternating, so that a slow spell of the machine falls on both sides of a pair. "+
		"The headline is server CPU per request: the server process's user + system time over the window (`/proc/PID/stat`) over the requests wrk completed, as a ratio to the baseline's in the same pair. "+
		"The figure is the median of the pairs' ratios with its 95%% interval from order statistics (the k-th smallest and k-th largest ratio, k from the binomial distribution: no assumption about how the ratios spread); a target gets a verdict only when that interval lies within ±%.0f%% of the median, and is marked inconclusive otherwise. "+
		"Beside it, the figures that do not drift with the machine's speed and explain the CPU: allocations, bytes and GC cycles per request are the server's Go runtime counters on its metrics page (`go_memstats_mallocs_total`, `go_memstats_alloc_bytes_total`, GC cycles; `bench/bare -metrics` serves the same from runtime/metrics), read before the first window and again %v after the last (the server idle but for its windows in between), over the requests of its windows; the heap in use (and the live heap, where the server exposes `go_gc_heap_live_bytes`) is read half-way through each window (the page asked for without gzip, so that the probe costs the server no compressor), the median shown; read + write system calls are `syscr + syscw` of `/proc/PID/io` over each window. "+
		"Throughput, with its interval, and latency are secondary: they move with what else the machine runs. \"Core busy\" is the server's CPU time over the window's wall time. Jaeger (the tracing cases' agent and OTLP receiver) and the upstreams of the call cases share the load core.",
		r.Date, r.Machine, r.LoadBefore, r.LoadAfter, serverCPU, o.connections, int(o.window/time.Second), loadCPU, int(o.warmup/time.Second),
		o.pairs, 100*MaxHalfWidth, strings.Replace(settle.String(), "s", " s", 1))
}

// loadSection is the doc's "load" section.
func (r *results) loadSection() string {
	var b strings.Builder
	p := func(s ...string) {
		for _, x := range s {
			b.WriteString(x + "\n")
		}
	}
	p("<!-- load:begin (written by bench/driver) -->",
		"## Load: anyroute, its peers and a bare net/http server, side by side", "", r.method())
	if r.has(groupTracing) {
		p("", "### anyroute against bare net/http, by tracing backend", "",
			"The bare server (`bench/bare`) answers the same JSON echo as anyroute (method, path, query, route, status, instance, trace id, a request id also in the `X-Request-Id` header) with encoding/json, no middleware and no metrics, with anyroute's default server timeouts. Both are built as the image builds anyroute (static, `CGO_ENABLED=0`, `-ldflags \"-s -w\"`, anyroute with `-tags nodoctor`); anyroute runs with its embedded defaults (metrics on, access log off) and each case's `tracing` block; every traced case reports under its own service name, and the Jaeger column says whether Jaeger received its spans. Targets (issue 29), CPU per request ÷ bare's: tracing none ≤ 1.05, jaeger probabilistic 0.01 ≤ 1.07, every request traced ≤ 1.30 with jaeger and with otlp.",
			"", r.tracingTable())
	}
	if r.has(groupPeers) || r.missing(groupPeers) {
		p("", "### Peers", "",
			"Built from the Go module proxy at pinned versions by `scripts/tools.sh` (`go install` takes all three), each run with its per-request log off and otherwise its defaults, each paired with the bare server as anyroute is. Each is asked for the nearest it has to a JSON echo of method and path; none has exactly that: podinfo's `/api/echo` answers the posted body (empty for a `GET`: a 202 with no body), so `/headers`; go-httpbin's `/anything` is such an echo; fortio's `/debug` is a text one (its `/` answers an empty 200). podinfo's Go runtime figures come from its `/metrics`; go-httpbin and fortio expose none. CPU per request ÷ anyroute tracing none's is the ratio of the two medians. Builds: "+r.builds(groupPeers)+".",
			"", r.peersTable())
	}
	if r.has(groupProtocols) || r.missing(groupProtocols) {
		p("", "### gRPC and h2c", "",
			fmt.Sprintf("wrk speaks HTTP/1.1 only, so these cases are driven by `bench/rpcload` on the load core instead: closed-loop, %d calls in flight spread evenly over %d HTTP/2 connections opened before the window, no call started after the window's end and every call in flight waited for, so that it counts each call it started once, answered or failed (the last column: for anyroute the client's count and the server's agree to the call). "+
				"**gRPC**: unary calls of `%s` with one small message (fortio's PingMessage, 20 bytes), over a raw codec, against anyroute's gRPC listener (embedded defaults, no route: the raw echo), a bare grpc-go server (`bench/bare/grpc`: an unknown-service handler echoing the message back with the same facts in the response header, anyroute's default message and metadata limits, no metrics, no interceptors) and fortio's gRPC ping server, whose method the call is; each is paired with the bare server. "+
				"**h2c**: `GET /bench/x` over HTTP/2 with prior knowledge, against anyroute's API (h2c on by default: net/http reads the preface, `transport/h2c.go` hands the connection to golang.org/x/net/http2's server) and `bench/bare -h2c` (the JSON echo of the HTTP cases, net/http's own unencrypted HTTP/2, with anyroute's default HTTP/2 limits). No targets: issue 28 asks for the figures. Builds: %s.",
				r.Opt.connections, r.Opt.h2Conns, grpcMethod, r.builds(groupProtocols)),
			"", r.protocolsTable())
	}
	if r.has(groupCall) {
		up := r.figures("anyroute-call").UpstreamURL
		p("", "### One upstream call", "",
			"anyroute with one route whose every request calls an upstream (`{\"name\": \"hop\", \"match\": \"/*\", \"calls\": [{\"name\": \"up\", \"url\": \""+up+"\", \"timeout\": \"1s\"}]}`), against the bare server with `-upstream`, which makes the same call (`GET`, x-request-id and hop headers, 1 s timeout, the answer nested in the echo) with the same client settings (`http.DefaultTransport` cloned, no proxy, 64 kept-alive connections per host, as `transport/client.go`). Each caller has an upstream of its own, a plain anyroute on the load core for the whole run; it reports the TCP connections it accepted when its API stops (`connections_accepted`) and the calls it answered (`app_requests_total`), warm-up included. Connections are reused when that count stays near the client's connections however many calls were made. Target (issue 29): CPU per request ≤ 1.10 of the bare caller's.",
			"", r.callTable())
	}
	if len(r.Memory) > 0 {
		p("", "### Memory", "",
			fmt.Sprintf("Each server fresh and alone: RSS one second after its first request, then with %d keep-alive connections open and idle (`bench/conns`: each sends one request, reads the answer and stays open), one second after the last opened, each server's connections from a loopback address of their own; the file limit raised to its hard limit for the run. A server that closes idle connections shows fewer established than opened (go-httpbin sets no idle timeout, so its 5 s read timeout closes idle connections), and the figure per connection is over those established. Anonymous memory is the heap, stacks and the runtime's own; file-backed is the pages of the binary (and libraries) mapped in, which the kernel maps in blocks around each page touched, so it grows with the binary's size more than with what runs. Target (issue 29): anyroute idle ≤ 12 MiB.", r.Opt.idleConns),
			"", r.memoryTable())
	}
	p("<!-- load:end -->")
	return strings.TrimRight(b.String(), "\n")
}

// scrapesSection is the doc's "scrapes" section.
func (r *results) scrapesSection() string {
	o := r.Opt
	perRound := max(1, (o.pairs+o.scrapeRounds-1)/o.scrapeRounds)
	return strings.Join([]string{
		"<!-- scrapes:begin (written by bench/driver) -->",
		"## Scrapes: the API under a scrape storm",
		"",
		fmt.Sprintf("Command: `make bench` (`bench/driver`), %s. Machine: %s; load average %s before the run, %s after.", r.Date, r.Machine, r.LoadBefore, r.LoadAfter),
		fmt.Sprintf("anyroute runs with %d routes configured (each answering 503 to half its requests: about 800 request series, 11,200 bucket lines), pinned to core %s. After a %ds warm-up, `wrk -t1 -c%d -d%ds` walks every route with GET and POST on core %s in windows that alternate quiet and storm: during a storm window %d scrapers (`bench/scrapers`, on core %s too) scrape `/metrics` %g times a second each, with Prometheus 2.42's Accept header and gzip. %d rounds of %d pairs of windows for each binary, one warm server a round, the order within a pair alternating. "+
			"The headline is CPU per request (the server's user + system time from `/proc/PID/stat` over the window, over the requests) of the quiet window ÷ its storm neighbour's: the throughput ratio a server with a whole core would see, and far steadier than throughput on a shared machine. The figure is the median of the pairs' ratios with its 95%% interval from order statistics, inconclusive when wider than ±%.0f%%; storm ÷ quiet throughput is secondary. Target (issue 17): ≥ 0.95 with no scrape refused.",
			stormRoutes, serverCPU, int(o.warmup/time.Second), o.connections, int(o.window/time.Second), loadCPU, o.scrapers, loadCPU, o.scrapeRate,
			o.scrapeRounds, perRound, 100*MaxHalfWidth),
		"",
		r.stormTable(),
		"<!-- scrapes:end -->",
	}, "\n")
}

// readmeParagraph is the README's performance paragraph: ratios of this run, no absolute
// numbers.
func (r *results) readmeParagraph() string {
	ci := func(id string) string {
		e := r.cpuRatio(id)
		if !e.OK() {
			return fmt.Sprintf("**%.2f×** (range %.2f–%.2f)", e.Median, e.Lo, e.Hi)
		}
		verdict := ""
		if !e.Conclusive() {
			verdict = ", inconclusive: wider than ±3%"
		}
		return fmt.Sprintf("**%.2f×** (95%% interval %.2f–%.2f%s)", e.Median, e.Lo, e.Hi, verdict)
	}
	s := fmt.Sprintf("`make bench` measures anyroute beside a bare net/http server answering the same JSON echo, in %d short pairs of windows per case, each case's window beside the bare server's; the figures are the medians of the pairs' ratios of server CPU per request, with their 95%% intervals ([docs/benchmarks.md](docs/benchmarks.md) has the tables, allocations, GC cycles and heap per request, the peers and the method).", r.Opt.pairs)
	if r.ran("none") {
		s += fmt.Sprintf(" With metrics on and tracing off anyroute uses %s the bare server's CPU per request (throughput %.2f× bare's)", ci("none"), r.rpsRatio("none").Median)
		if r.ran("jaeger-prob") {
			s += "; with jaeger probabilistic 0.01 " + ci("jaeger-prob")
		}
		if r.ran("jaeger-const") {
			s += "; tracing every request, jaeger " + ci("jaeger-const")
		}
		if r.ran("otlp-const") {
			s += " and otlp " + ci("otlp-const")
		}
		s += "."
	}
	if r.ran("anyroute-call") {
		f := r.figures("anyroute-call")
		s += fmt.Sprintf(" A route that makes one upstream call per request uses %s the CPU per request of a bare server making the same call with the same client settings, over kept-alive connections (its upstream accepted %s connections for %s calls).",
			ci("anyroute-call"), num("%.0f", f.UpAccepted), num("%.0f", f.UpCalls))
	}
	if r.ran("grpc") {
		s += fmt.Sprintf(" Its gRPC listener uses %s the CPU per call of a bare grpc-go server echoing the same message", ci("grpc"))
		if r.ran("h2c") {
			s += fmt.Sprintf(", and its API over h2c %s that of bare net/http over h2c", ci("h2c"))
		}
		s += "."
	} else if r.ran("h2c") {
		s += fmt.Sprintf(" Over h2c its API uses %s the CPU per request of bare net/http over h2c.", ci("h2c"))
	}
	var peers []string
	none := r.cpuRatio("none")
	for _, c := range r.Run {
		if c.Group == groupPeers && none.N > 0 {
			peers = append(peers, fmt.Sprintf("%.2f× %s's", none.Median/r.cpuRatio(c.ID).Median, c.Name))
		}
	}
	if len(peers) > 0 {
		s += " Against the peers users pick instead, anyroute with tracing off uses " + strings.Join(peers, ", ") + " CPU per request (podinfo's request does comparable work: JSON and per-request metrics)."
	}
	var idleNone, idleBare, heldNone, heldBare float64
	for _, m := range r.Memory {
		switch m.ID {
		case "none":
			idleNone, heldNone = m.Idle, m.Held
		case "bare":
			idleBare, heldBare = m.Idle, m.Held
		}
	}
	if idleNone > 0 && idleBare > 0 {
		s += fmt.Sprintf(" With %d idle keep-alive connections open its RSS is %.2f× the bare server's (idle, %.1f×).", r.Opt.idleConns, heldNone/heldBare, idleNone/idleBare)
	}
	return "<!-- perf:begin (written by bench/driver) -->\n" + fold(s, 100) + "\n<!-- perf:end -->"
}

// fold breaks s into lines of at most width characters at spaces.
func fold(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// report prints the tables and writes the doc's sections and the README's paragraph.
func (d *driver) report() error {
	r := d.res
	r.Date = time.Now().UTC().Format("2006-01-02")
	wrk, _ := exec.Command("wrk", "--version").CombinedOutput()
	first := strings.Fields(strings.SplitN(string(wrk), "\n", 2)[0])
	wrkVersion := strings.Join(first[:min(2, len(first))], " ")
	r.Machine = fmt.Sprintf("%d cores (%s), %s, %s", runtime.NumCPU(), cpuModel(), runtime.Version(), wrkVersion)
	var sections []struct{ name, text string }
	if d.hasLoad() {
		sections = append(sections, struct{ name, text string }{"load", r.loadSection()})
	}
	if d.hasStorm() {
		sections = append(sections, struct{ name, text string }{"scrapes", r.scrapesSection()})
	}
	for _, s := range sections {
		fmt.Println()
		fmt.Println(s.text)
	}
	if d.o.doc == "" {
		return nil
	}
	for _, s := range sections {
		if err := writeSection(d.o.doc, s.name, s.text); err != nil {
			return err
		}
		fmt.Printf("bench: wrote the %s section of %s\n", s.name, d.o.doc)
	}
	if d.o.readme == "" || !d.hasLoad() || !r.ran("none") {
		return nil
	}
	b, err := os.ReadFile(d.o.readme)
	if err != nil || !strings.Contains(string(b), "<!-- perf:begin") {
		return nil // a README without the paragraph is left alone
	}
	if err := writeSection(d.o.readme, "perf", r.readmeParagraph()); err != nil {
		return err
	}
	fmt.Printf("bench: wrote the performance paragraph of %s\n", d.o.readme)
	return nil
}
