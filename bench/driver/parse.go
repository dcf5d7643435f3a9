package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// wrkResult is what the driver reads from one wrk run's output.
type wrkResult struct {
	RPS, Requests float64
	P50, P99      float64 // µs
	Errors        string  // wrk's error lines, "" for none
}

// parseWrk reads wrk's summary: the requests completed, req/s, the latency percentiles of
// --latency and any error lines.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var errs []string
	var sawRPS, sawReqs bool
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Requests/sec:":
			r.RPS, sawRPS = parseFloat(f[1]), true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.Requests, sawReqs = parseFloat(f[0]), true
		case len(f) == 2 && f[0] == "50%":
			r.P50 = parseLatency(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.P99 = parseLatency(f[1])
		case strings.Contains(line, "Socket errors") || strings.Contains(line, "Non-2xx"):
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	if !sawRPS || !sawReqs || r.Requests <= 0 {
		return r, fmt.Errorf("wrk: no requests completed in its output:\n%s", out)
	}
	r.Errors = strings.Join(errs, "; ")
	return r, nil
}

// parseRPCLoad reads bench/rpcload's summary: every call it started, answered or failed, is a
// request, as the server counts it; its error lines say which failed and how.
func parseRPCLoad(out string) (wrkResult, error) {
	var r wrkResult
	var errs []string
	var errors float64
	seen := map[string]bool{}
	for line := range strings.SplitSeq(out, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		seen[k] = true
		switch k {
		case "calls":
			r.Requests = parseFloat(v)
		case "rps":
			r.RPS = parseFloat(v)
		case "p50_us":
			r.P50 = parseFloat(v)
		case "p99_us":
			r.P99 = parseFloat(v)
		case "errors":
			errors = parseFloat(v)
		case "error":
			errs = append(errs, strings.TrimSpace(v))
		}
	}
	for _, k := range []string{"calls", "ok", "errors", "rps", "p50_us", "p99_us"} {
		if !seen[k] {
			return r, fmt.Errorf("rpcload: no %q line in its output:\n%s", k, out)
		}
	}
	if r.Requests <= 0 {
		return r, fmt.Errorf("rpcload: no calls completed:\n%s", out)
	}
	if errors > 0 {
		r.Errors = fmt.Sprintf("%.0f calls failed: %s", errors, strings.Join(errs, "; "))
	}
	return r, nil
}

// parseLatency turns wrk's latency (1.23ms, 850.00us, 1.01s, 2.00m) into microseconds.
func parseLatency(v string) float64 {
	for _, u := range []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			return parseFloat(n) * u.us
		}
	}
	return parseFloat(v)
}

func parseFloat(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return v
}

// samples are the unlabelled samples of a Prometheus text page, by name; labelled ones are summed
// by name, which is what a page's request counter is wanted as.
type samples map[string]float64

// parseSamples reads a Prometheus text exposition (0.0.4 or OpenMetrics without exemplars on the
// lines read here).
func parseSamples(page string) samples {
	s := samples{}
	for line := range strings.SplitSeq(page, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := labelsEnd(rest)
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s[name] += v
	}
	return s
}

// labelsEnd is the index of the '}' that closes the label set s opens, outside quoted values
// (an exemplar after the value has braces of its own); -1 when there is none.
func labelsEnd(s string) int {
	quoted, escaped := false, false
	for i, r := range s {
		switch {
		case escaped:
			escaped = false
		case quoted && r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
		case !quoted && r == '}':
			return i
		}
	}
	return -1
}

// first is the value of the first of names the page has, and whether it has any.
func (s samples) first(names ...string) (float64, bool) {
	for _, n := range names {
		if v, ok := s[n]; ok {
			return v, true
		}
	}
	return 0, false
}

// Names of the Go runtime's figures: client_golang's default Go collector first, then the
// runtime/metrics rules' names bench/bare also uses.
var (
	metricMallocs   = []string{"go_memstats_mallocs_total"}
	metricAllocated = []string{"go_memstats_alloc_bytes_total"}
	metricGCCycles  = []string{"go_gc_cycles_total_gc_cycles_total", "go_gc_duration_seconds_count"}
	metricHeapInuse = []string{"go_memstats_heap_inuse_bytes"}
	metricHeapLive  = []string{"go_gc_heap_live_bytes"}
)

var acceptedRE = regexp.MustCompile(`msg="API stopped".*connections_accepted=([0-9]+)`)

// connectionsAccepted is anyroute's count of the TCP connections its API accepted, from the line
// it logs when the API stops; -1 when the log has none.
func connectionsAccepted(logFile string) float64 {
	b, err := os.ReadFile(logFile)
	if err != nil {
		return -1
	}
	m := acceptedRE.FindSubmatch(b)
	if m == nil {
		return -1
	}
	return parseFloat(string(m[1]))
}

// scrapeSummary is bench/scrapers' summary line, as key=value fields.
func parseScrapeSummary(line string) map[string]float64 {
	m := map[string]float64{}
	for f := range strings.FieldsSeq(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = parseFloat(v)
		}
	}
	return m
}
