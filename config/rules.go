package config

import (
	"cmp"
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
	}
	for _, e := range r.Errors {
		rule.Errors = append(rule.Errors, service.ErrorShare{Status: e.Status, Rate: e.Rate})
	}
	if r.ErrorRate > 0 {
		rule.Errors = append(rule.Errors, service.ErrorShare{Status: cmp.Or(r.ErrorStatus, 500), Rate: r.ErrorRate})
	}
	for _, c := range r.Calls {
		rule.Calls = append(rule.Calls, service.Call{
			Name: c.Name, URL: c.URL, Method: cmp.Or(c.Method, DefaultCallMethod), Timeout: cmp.Or(c.Timeout.D(), DefaultCallTimeout),
		})
	}
	implicit := (h.WriteTimeout.D() - r.callsBound()) * 9 / 10
	if _, bounded := rule.Latency.Bound(); !bounded {
		rule.Latency.Max = implicit
	}
	if rule.AllowOverrides && rule.MaxDelay == 0 {
		rule.MaxDelay = implicit
	}
	return rule
}

// latency is the route's latency, its shorthand included.
func (r Route) latency() service.Latency {
	if l := r.Latency; l != nil {
		return service.Latency{
			Distribution: l.Distribution, Delay: l.Delay.D(), Jitter: l.Jitter.D(), Mean: l.Mean.D(),
			StdDev: l.StdDev.D(), Median: l.Median.D(), P50: l.P50.D(), P90: l.P90.D(), P99: l.P99.D(), Max: l.Max.D(),
		}
	}
	if r.Jitter > 0 {
		return service.Latency{Distribution: "uniform", Delay: r.Delay.D(), Jitter: r.Jitter.D()}
	}
	return service.Latency{Distribution: "fixed", Delay: r.Delay.D()}
}

// callsBound is the longest the route's calls can take: the sum of their timeouts, or the longest
// of them when they are made in parallel.
func (r Route) callsBound() time.Duration {
	var total time.Duration
	for _, c := range r.Calls {
		t := cmp.Or(c.Timeout.D(), DefaultCallTimeout)
		if r.CallMode == "parallel" {
			total = max(total, t)
		} else {
			total += t
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
func (c Config) checkRoute(r Route, ptr string, add func(ptr, format string, args ...any)) {
	wt := c.HTTP.WriteTimeout.D()
	complete := true // every key the distribution needs is there, so the service can check it
	if l := r.Latency; l != nil {
		if r.Delay != 0 || r.Jitter != 0 {
			add(ptr+"/latency", "give either latency or the delay and jitter shorthand, not both")
		}
		set := map[string]bool{"delay": l.Delay != 0, "jitter": l.Jitter != 0, "mean": l.Mean != 0, "stddev": l.StdDev != 0,
			"median": l.Median != 0, "p50": l.P50 != 0, "p90": l.P90 != 0, "p99": l.P99 != 0}
		want := latencyKeys[l.Distribution]
		for _, k := range want {
			if !set[k] && k != "jitter" && k != "stddev" {
				add(ptr+"/latency/"+k, "is required for distribution %s", l.Distribution)
				complete = false
			}
		}
		for _, k := range []string{"delay", "jitter", "mean", "stddev", "median", "p50", "p90", "p99"} {
			if set[k] && !slices.Contains(want, k) {
				add(ptr+"/latency/"+k, "does not apply to distribution %s (it takes %s)", l.Distribution, strings.Join(want, ", "))
			}
		}
	}
	lat := r.latency()
	if err := lat.Check(); err != nil && complete {
		add(ptr+"/latency", "%v", err)
	}
	latBound, bounded := lat.Bound()
	calls := r.callsBound()
	switch {
	case calls >= wt:
		add(ptr+"/calls", "calls of up to %s (their timeouts) reach /http/write_timeout (%s): the answer would be cut off", calls, wt)
	case bounded && (latBound+calls >= wt || latBound+calls < latBound):
		at := ptr + "/delay"
		if r.Latency != nil {
			at = ptr + "/latency"
		}
		add(at, "a latency of up to %s, after calls of up to %s, reaches /http/write_timeout (%s): the answer would be cut off; lower them or raise the timeout",
			latBound, calls, wt)
	}

	sum := r.ErrorRate
	for _, e := range r.Errors {
		sum += e.Rate
	}
	if sum > 1+1e-9 {
		add(ptr+"/errors", "the error rates (error_rate included) add up to %g, more than 1", sum)
	}

	names := map[string]int{}
	for j, call := range r.Calls {
		cp := ptr + "/calls/" + strconv.Itoa(j)
		if k, dup := names[call.Name]; dup {
			add(cp+"/name", "duplicate call name %q (also %s/calls/%d/name)", call.Name, ptr, k)
		}
		names[call.Name] = j
		u, err := url.Parse(strings.ReplaceAll(call.URL, "{path}", "p"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(cp+"/url", "%s is not an http(s) URL with a host", quote(call.URL))
		}
	}
	if r.MaxDelay != 0 {
		if !r.AllowOverrides {
			add(ptr+"/max_delay", "applies only with allow_overrides")
		} else if r.MaxDelay.D()+calls >= wt {
			add(ptr+"/max_delay", "%s, after calls of up to %s, reaches /http/write_timeout (%s)", r.MaxDelay.D(), calls, wt)
		}
	}
}
