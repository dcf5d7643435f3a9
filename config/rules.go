package config

import (
	"cmp"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anyroute/anyroute/service"
)

// Defaults of a route's upstream calls.
const (
	DefaultCallMethod  = "GET"
	DefaultCallTimeout = time.Second
)

// DefaultBurst is a rate_limit's burst when it gives none: requests are spread evenly.
const DefaultBurst = 1

// MaxCallsPerRoute is the most calls a route may make, the schema's maxItems of a route's calls
// (a test holds the two together): with metrics.max_routes it bounds the calls a config holds,
// which the upstream metrics size their slots from.
const MaxCallsPerRoute = 16

// Rule is the service rule of the route: the shorthands (delay and jitter, error_rate and
// error_status) turned into the latency and error mix they stand for, the calls' defaults filled
// in, and the latency of a distribution without an upper bound capped so that the answer, calls
// included, is written before http.write_timeout (also the default max_delay of overrides).
// Check has accepted the route; IDs are the caller's to give.
func (r Route) Rule(h HTTP) service.Rule {
	rule := service.Rule{
		Name:            r.Name,
		Match:           r.Match,
		Methods:         r.Methods,
		Status:          r.Status,
		Latency:         r.latency(),
		BodyBytes:       r.BodyBytes,
		Parallel:        r.CallMode == "parallel",
		FailOnCallError: r.OnCallError != "ignore",
		AllowOverrides:  r.AllowOverrides,
		MaxDelay:        r.MaxDelay.D(),
		CPU:             r.cpu(),
		Memory:          r.Memory,
		GRPCCode:        GRPCCodes[r.GRPCCode],
	}
	for _, e := range r.Errors {
		rule.Errors = append(rule.Errors, service.ErrorShare{Status: e.Status, Rate: e.Rate, GRPCCode: GRPCCodes[e.GRPCCode]})
	}
	if r.ErrorRate > 0 {
		rule.Errors = append(rule.Errors, service.ErrorShare{Status: cmp.Or(r.ErrorStatus, 500), Rate: r.ErrorRate})
	}
	for _, f := range r.Faults {
		kind, _ := service.ParseFaultKind(f.Kind)
		rule.Faults = append(rule.Faults, service.Fault{Kind: kind, Rate: f.Rate, BytesPerSecond: f.BytesPerSecond})
	}
	if q := r.RateLimit; q != nil {
		rule.RateLimit = service.RateLimit{RPS: q.RPS, Burst: cmp.Or(q.Burst, DefaultBurst)}
	}
	for _, c := range r.Calls {
		rule.Calls = append(rule.Calls, service.Call{
			Name: c.Name, URL: c.URL, Method: cmp.Or(c.Method, DefaultCallMethod), Timeout: cmp.Or(c.Timeout.D(), DefaultCallTimeout),
		})
	}
	cpu, _ := rule.CPU.Bound() // Check has made sure it has one
	implicit := implicitCap(h.WriteTimeout.D(), service.AddSaturating(r.callsBound(), cpu))
	if _, bounded := rule.Latency.Bound(); !bounded {
		rule.Latency.Max = implicit
	}
	if rule.AllowOverrides && rule.MaxDelay == 0 {
		rule.MaxDelay = implicit
	}
	return rule
}

// implicitCap is the latency cap of a distribution without a bound of its own, and the default
// max_delay: nine tenths of what the calls leave of write_timeout (computed without the overflow of
// left*9), and always less than what they leave; 0 when they leave a nanosecond or nothing, which
// Check refuses, since a cap of 0 is none.
func implicitCap(wt, calls time.Duration) time.Duration {
	left := wt - calls
	if left <= 1 {
		return 0
	}
	return left - max(left/10, 1)
}

// latency is the route's latency, its shorthand included.
func (r Route) latency() service.Latency {
	if l := r.Latency; l != nil {
		return l.service()
	}
	if r.Jitter > 0 {
		return service.Latency{Distribution: "uniform", Delay: r.Delay.D(), Jitter: r.Jitter.D()}
	}
	return service.Latency{Distribution: "fixed", Delay: r.Delay.D()}
}

// cpu is the route's CPU cost; none is the zero Latency, which burns nothing.
func (r Route) cpu() service.Latency {
	if r.CPU == nil {
		return service.Latency{}
	}
	return r.CPU.service()
}

func (l Latency) service() service.Latency {
	return service.Latency{
		Distribution: l.Distribution, Delay: l.Delay.D(), Jitter: l.Jitter.D(), Mean: l.Mean.D(),
		StdDev: l.StdDev.D(), Median: l.Median.D(), P50: l.P50.D(), P90: l.P90.D(), P99: l.P99.D(), Max: l.Max.D(),
	}
}

// callsBound is the longest the route's calls can take: the sum of their timeouts, or the longest
// of them when they are made in parallel; the longest duration when the sum does not fit in one.
func (r Route) callsBound() time.Duration {
	var total time.Duration
	for _, c := range r.Calls {
		t := cmp.Or(c.Timeout.D(), DefaultCallTimeout)
		if r.CallMode == "parallel" {
			total = max(total, t)
		} else {
			total = service.AddSaturating(total, t)
		}
	}
	return total
}

// latencyKeys are the keys each distribution takes, besides distribution and max.
var latencyKeys = map[string][]string{
	"fixed":       {"delay"},
	"uniform":     {"delay", "jitter"},
	"normal":      {"mean", "stddev"},
	"lognormal":   {"median", "p99"},
	"percentiles": {"p50", "p90", "p99"},
}

// checkRoute runs the semantic checks of one route's latency, error mix, calls and overrides;
// ptr is the route's pointer.
func (c Config) checkRoute(r Route, ptr string, loops *loopFinder, add func(ptr, format string, args ...any)) {
	wt := c.HTTP.WriteTimeout.D()
	complete := true // every key the distribution needs is there, so the service can check it
	if l := r.Latency; l != nil {
		if r.Delay != 0 || r.Jitter != 0 {
			add(ptr+"/latency", "give either latency or the delay and jitter shorthand, not both")
		}
		complete = checkDistribution(*l, ptr+"/latency", add)
	}
	lat := r.latency()
	if err := lat.Check(); err != nil && complete {
		add(ptr+"/latency", "%v", err)
	}
	var cpu time.Duration // the longest CPU a request burns
	if r.CPU != nil {
		l := r.CPU.service()
		if checkDistribution(r.CPU.Latency, ptr+"/cpu", add) {
			if err := l.Check(); err != nil {
				add(ptr+"/cpu", "%v", err)
			}
		}
		var bounded bool
		if cpu, bounded = l.Bound(); !bounded {
			add(ptr+"/cpu/max", "is required for distribution %s: the CPU a request burns needs a cap", l.Distribution)
		}
	}
	latBound, bounded := lat.Bound()
	calls := r.callsBound()
	spent := service.AddSaturating(cpu, calls) // what a request takes before its latency, at most
	switch {
	case calls >= wt:
		add(ptr+"/calls", "calls of up to %s (their timeouts) reach /http/write_timeout (%s): the answer would be cut off", calls, wt)
	case spent >= wt:
		add(ptr+"/cpu", "CPU of up to %s, beside calls of up to %s, reaches /http/write_timeout (%s): the answer would be cut off; lower them or raise the timeout",
			cpu, calls, wt)
	case (!bounded || r.AllowOverrides && r.MaxDelay == 0) && implicitCap(wt, spent) <= 0:
		add(ptr+"/calls", "calls of up to %s (their timeouts) and CPU of up to %s leave no time before /http/write_timeout (%s) for the latency", calls, cpu, wt)
	case bounded && service.AddSaturating(latBound, spent) >= wt: // saturated, a sum past any duration reaches wt too
		at := ptr + "/delay"
		if r.Latency != nil {
			at = ptr + "/latency"
		}
		add(at, "a latency of up to %s, after CPU of up to %s and calls of up to %s, reaches /http/write_timeout (%s): the answer would be cut off; lower them or raise the timeout",
			latBound, cpu, calls, wt)
	}

	sum := r.ErrorRate
	for _, e := range r.Errors {
		sum += e.Rate
	}
	if sum > 1+1e-9 {
		add(ptr+"/errors", "the error rates (error_rate included) add up to %g, more than 1", sum)
	}
	c.checkFaults(r, ptr, sum, add)

	names := map[string]int{}
	for j, call := range r.Calls {
		cp := ptr + "/calls/" + strconv.Itoa(j)
		if k, dup := names[call.Name]; dup {
			add(cp+"/name", "duplicate call name %q (also %s/calls/%d/name)", call.Name, ptr, k)
		}
		names[call.Name] = j
		u, err := url.Parse(strings.ReplaceAll(call.URL, "{path}", "p"))
		if err == nil && u.Scheme == "grpc" {
			if _, _, ok := service.GRPCTarget(call.URL); !ok {
				add(cp+"/url", "%s is not a gRPC call: grpc://host:port/pkg.Service/Method, with no {path}, query or fragment", quote(call.URL))
			}
			continue
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(cp+"/url", "%s is not an http(s) URL with a host", quote(call.URL))
		} else if pathInHost(call.URL) {
			add(cp+"/url", "%s has {path} in its host: a client would choose where the call goes; {path} may stand only after the host's /", quote(call.URL))
		} else if selfCall(c.HTTP.Addr, u) {
			if loop, ok := loops.loopsBack(call); ok {
				add(cp+"/url", "%s is this service's own API address (/http/addr %s), and reaches route %q, which makes calls: a loop in one process, each request calling itself until max_hops; call a route without calls, or another process",
					quote(call.URL), quote(c.HTTP.Addr), loop)
			}
		}
	}
	if r.MaxDelay != 0 {
		if !r.AllowOverrides {
			add(ptr+"/max_delay", "applies only with allow_overrides")
		} else if service.AddSaturating(r.MaxDelay.D(), spent) >= wt {
			add(ptr+"/max_delay", "%s, after CPU of up to %s and calls of up to %s, reaches /http/write_timeout (%s)", r.MaxDelay.D(), cpu, calls, wt)
		}
	}
}

// checkDistribution checks that a distribution at ptr has the keys it needs and none it does not
// take, and reports whether it has all it needs (so that its values can be checked).
func checkDistribution(l Latency, ptr string, add func(ptr, format string, args ...any)) bool {
	complete := true
	set := map[string]bool{"delay": l.Delay != 0, "jitter": l.Jitter != 0, "mean": l.Mean != 0, "stddev": l.StdDev != 0,
		"median": l.Median != 0, "p50": l.P50 != 0, "p90": l.P90 != 0, "p99": l.P99 != 0}
	want := latencyKeys[l.Distribution]
	for _, k := range want {
		if !set[k] && k != "jitter" && k != "stddev" {
			add(ptr+"/"+k, "is required for distribution %s", l.Distribution)
			complete = false
		}
	}
	for _, k := range []string{"delay", "jitter", "mean", "stddev", "median", "p50", "p90", "p99"} {
		if set[k] && !slices.Contains(want, k) {
			add(ptr+"/"+k, "does not apply to distribution %s (it takes %s)", l.Distribution, strings.Join(want, ", "))
		}
	}
	return complete
}

// checkFaults checks the route's faults: each kind's keys, and that with the error mix (whose rates
// add up to errorSum) they share at most all of the requests, since one draw picks among them.
func (c Config) checkFaults(r Route, ptr string, errorSum float64, add func(ptr, format string, args ...any)) {
	sum := errorSum
	for j, f := range r.Faults {
		fp := ptr + "/faults/" + strconv.Itoa(j)
		sum += f.Rate
		switch {
		case f.Kind == "slow_body" && f.BytesPerSecond == 0:
			add(fp+"/bytes_per_second", "is required for kind slow_body")
		case f.Kind != "slow_body" && f.BytesPerSecond != 0:
			add(fp+"/bytes_per_second", "applies only to kind slow_body")
		case (f.Kind == "slow_body" || f.Kind == "truncate") && bodiless(r.Status):
			add(fp+"/kind", "%s needs a body, and status %d has none", f.Kind, r.Status)
		}
	}
	if len(r.Faults) > 0 && sum > 1+1e-9 {
		add(ptr+"/faults", "the fault and error rates (error_rate included) add up to %g, more than 1", sum)
	}
}

// bodiless reports whether answers of status carry no body (RFC 9110: 204, 205 and 304).
func bodiless(status int) bool { return status == 204 || status == 205 || status == 304 }

// pathInHost reports whether a call URL's {path} stands before the first / after the scheme's //,
// in the authority, where the incoming path would name the host (and port, and user) to call.
func pathInHost(callURL string) bool {
	_, rest, _ := strings.Cut(callURL, "://")
	authority, _, _ := strings.Cut(rest, "/")
	return strings.Contains(authority, "{path}")
}

// selfCall reports whether a call URL names the service's own API listener, addr: the same port,
// and a host that is addr's, or a loopback or unspecified one when addr listens on every
// interface or on localhost. A call elsewhere may still come back (through another service, or a
// name that resolves here); max_hops, MaxCallTree and the process's bound on calls in flight
// bound those.
func selfCall(addr string, u *url.URL) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return false
	}
	callPort := u.Port()
	if callPort == "" {
		callPort = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if callPort != port {
		return false
	}
	callHost := u.Hostname()
	if strings.EqualFold(callHost, host) {
		return true
	}
	switch ip := net.ParseIP(host); {
	case host == "" || strings.EqualFold(host, "localhost") || (ip != nil && ip.IsUnspecified()):
		return local(callHost)
	case ip != nil && ip.IsLoopback():
		return strings.EqualFold(callHost, "localhost")
	}
	return false
}

// loopFinder answers, for calls to the service's own address, whether they can reach a route that
// makes calls. It compiles the patterns once and remembers each answer by method and path, so that
// a config of a thousand routes of sixteen such calls each is checked in well under a second
// instead of minutes (every candidate path was matched against every route, for every call).
type loopFinder struct {
	routes  []Route
	matches []*service.Match // nil for a pattern that does not compile (reported elsewhere)
	samples []string         // a path each route with calls matches; "" for the others
	first   map[string]int   // method, NUL, path: the index of the first route matching, -1 for none
	byCall  map[string]int   // method, NUL, the call's path with {path}: loopsBack's answer, -1 for none
}

func newLoopFinder(routes []Route) *loopFinder {
	f := &loopFinder{routes: routes, matches: make([]*service.Match, len(routes)), samples: make([]string, len(routes)),
		first: map[string]int{}, byCall: map[string]int{}}
	for i, r := range routes {
		if m, err := service.ParseMatch(r.Match); err == nil {
			f.matches[i] = &m
			if len(r.Calls) > 0 {
				f.samples[i] = samplePath(r.Match)
			}
		}
	}
	return f
}

// loopsBack reports whether a call to the service's own address can reach a route that makes
// calls (and its name): a loop inside one process, which nothing but max_hops ends. A call to a
// route without calls is how one process models a system, and passes. The call's path is tried as
// written; with {path} in it, as the paths {path} could make of it that a route with calls matches
// (each such route's pattern with its parameters and wildcard filled in, and a few others), under
// the first-match rule the service applies.
func (f *loopFinder) loopsBack(call Call) (string, bool) {
	const marker = "anyroutepathmarker"
	u, err := url.Parse(strings.ReplaceAll(call.URL, "{path}", marker))
	if err != nil {
		return "", false
	}
	method := cmp.Or(call.Method, DefaultCallMethod)
	path := cmp.Or(u.Path, "/")
	key := method + "\x00" + path
	if i, seen := f.byCall[key]; seen {
		return f.name(i)
	}
	i := f.reach(method, path, marker)
	f.byCall[key] = i
	return f.name(i)
}

func (f *loopFinder) name(i int) (string, bool) {
	if i < 0 {
		return "", false
	}
	return f.routes[i].Name, true
}

// reach is the index of a route with calls that a call of method to path reaches, -1 for none.
func (f *loopFinder) reach(method, path, marker string) int {
	paths := []string{path}
	if before, after, ok := strings.Cut(path, marker); ok {
		paths = []string{before + after, before + "x" + after, before + "x/y" + after}
		for _, p := range f.samples {
			if p != "" && len(p) >= len(before)+len(after) && strings.HasPrefix(p, before) && strings.HasSuffix(p, after) {
				paths = append(paths, p)
			}
		}
	}
	for _, p := range paths {
		if i := f.firstMatch(method, p); i >= 0 && len(f.routes[i].Calls) > 0 {
			return i
		}
	}
	return -1
}

// samplePath is a path the pattern matches: its parameters and wildcard filled in with x.
func samplePath(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if s == "*" || (strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}")) {
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}

// firstMatch is the index of the route the service answers a request of method and path with, -1
// for the catch-all (which makes no calls).
func (f *loopFinder) firstMatch(method, path string) int {
	key := method + "\x00" + path
	if i, seen := f.first[key]; seen {
		return i
	}
	found := -1
	for i, r := range f.routes {
		if m := f.matches[i]; m != nil && (len(r.Methods) == 0 || slices.Contains(r.Methods, method)) && m.Matches(path) {
			found = i
			break
		}
	}
	f.first[key] = found
	return found
}

// local reports whether host is this machine's by its form alone: localhost, a loopback or an
// unspecified address (which connects to this machine).
func local(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// MaxCallTree bounds the calls one request can set off, should the services it reaches call back
// into each other: with routes of up to w calls and max_hops h, that is w + w^2 + ... + w^h. A
// config past it cannot be meant (with 16 calls and max_hops 10, a trillion calls), so it is
// refused. Routes of 3 calls pass with the default max_hops of 10, of 16 calls with max_hops 4.
const MaxCallTree = 100_000

// callTree is w + w^2 + ... + w^h, or MaxCallTree+1 as soon as it passes MaxCallTree.
func callTree(w, h int) int {
	total, level := 0, 1
	for range h {
		level *= w
		total += level
		if level > MaxCallTree || total > MaxCallTree {
			return MaxCallTree + 1
		}
	}
	return total
}

// checkCallTree refuses routes whose widest fan-out, max_hops deep, passes MaxCallTree.
func (c Config) checkCallTree(add func(ptr, format string, args ...any)) {
	widest, width := -1, 0
	for i, r := range c.Routes {
		if len(r.Calls) > width {
			widest, width = i, len(r.Calls)
		}
	}
	if widest < 0 || callTree(width, c.MaxHops) <= MaxCallTree {
		return
	}
	hops := 0
	for callTree(width, hops+1) <= MaxCallTree {
		hops++
	}
	add("/routes/"+strconv.Itoa(widest)+"/calls", "%d calls with max_hops %d let one request set off more than %d calls, should the services call back into each other (%d + %d^2 + ... + %d^%d): lower max_hops to %d or less, or the calls",
		width, c.MaxHops, MaxCallTree, width, width, width, c.MaxHops, hops)
}

// GRPCCodes are the gRPC status codes by the names grpc_code takes (google.rpc.Code's, as
// grpc-go's codes package prints them upper-cased), OK left out: it is 200's code, and 0 stands
// for "map the HTTP status" in service.Rule.GRPCCode. The schema's enum lists the same names.
var GRPCCodes = map[string]uint8{
	"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
