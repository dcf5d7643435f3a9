// Package config loads anyroute's JSON configuration. A file is checked twice: first against the
// embedded JSON Schema, so a user sees every violation at once with its JSON pointer, then by
// semantic checks the schema cannot express (distinct route names, valid match patterns). What a
// file leaves out keeps the value of Default.
package config

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration, passed down as a value once loaded.
type Config struct {
	HTTP     HTTP     `json:"http"`
	Admin    Admin    `json:"admin"`
	Metrics  Metrics  `json:"metrics"`
	Tracing  Tracing  `json:"tracing"`
	Log      Log      `json:"log"`
	Routes   []Route  `json:"routes"`
	Shutdown Shutdown `json:"shutdown"`
	// Seed, when set, makes every random draw (latencies, status mixes) follow from it, so a run
	// can be repeated.
	Seed *uint64 `json:"seed,omitempty"`
	// MaxHops cuts loops in a call graph: a request that has come through more anyroute services
	// is answered 508.
	MaxHops int `json:"max_hops"`
}

// HTTP configures the API listener, which answers every method and path.
type HTTP struct {
	Addr              string   `json:"addr"`
	ReadHeaderTimeout Duration `json:"read_header_timeout"`
	ReadTimeout       Duration `json:"read_timeout"`
	WriteTimeout      Duration `json:"write_timeout"`
	IdleTimeout       Duration `json:"idle_timeout"`
	MaxBodyBytes      int64    `json:"max_body_bytes"`
	MaxHeaderBytes    int      `json:"max_header_bytes"`
}

// Admin configures the operational listener: metrics, health and optional pprof.
type Admin struct {
	Addr  string `json:"addr"`
	PProf bool   `json:"pprof"`
	// Lifecycle turns on the admin port's mutations (reload, the effective config, route patches,
	// probe toggles), as Prometheus' --web.enable-lifecycle does; off, they answer 403.
	Lifecycle bool `json:"lifecycle"`
}

// Metrics configures the request metrics and their flusher.
type Metrics struct {
	Namespace     string    `json:"namespace"`
	FlushInterval Duration  `json:"flush_interval"`
	Buckets       []float64 `json:"buckets"`
	MaxRoutes     int       `json:"max_routes"`
	// NativeHistograms adds native buckets to the latency histogram, beside the classic ones.
	NativeHistograms bool `json:"native_histograms"`
}

// Tracing chooses the tracing backend and its sampler.
type Tracing struct {
	Backend     string  `json:"backend"`
	ServiceName string  `json:"service_name"`
	Sampler     Sampler `json:"sampler"`
	Jaeger      Jaeger  `json:"jaeger"`
	Zipkin      Zipkin  `json:"zipkin"`
	OTLP        OTLP    `json:"otlp"`
}

// Sampler follows Jaeger's sampler vocabulary: const (param 0 or 1), probabilistic (param is the
// probability) and ratelimiting (param is traces per second).
type Sampler struct {
	Type  string  `json:"type"`
	Param float64 `json:"param"`
}

// Jaeger reports spans to a UDP agent, or to an HTTP collector when CollectorURL is set.
type Jaeger struct {
	AgentAddr    string `json:"agent_addr"`
	CollectorURL string `json:"collector_url"`
}

// Zipkin reports v2 spans over HTTP.
type Zipkin struct {
	URL string `json:"url"`
}

// OTLP exports spans over OTLP/HTTP.
type OTLP struct {
	Endpoint string `json:"endpoint"`
	Insecure bool   `json:"insecure"`
}

// Log configures the structured logger.
type Log struct {
	Level        string  `json:"level"`
	Format       string  `json:"format"`
	AccessSample float64 `json:"access_sample"`
}

// Route is one rule of the catch-all: which requests it matches and how it answers them.
type Route struct {
	Name    string   `json:"name"`
	Match   string   `json:"match"`
	Methods []string `json:"methods,omitempty"`
	Status  int      `json:"status,omitempty"`
	// Delay and Jitter are the shorthand of a uniform Latency (fixed without a jitter).
	Delay   Duration `json:"delay,omitempty"`
	Jitter  Duration `json:"jitter,omitempty"`
	Latency *Latency `json:"latency,omitempty"`
	// ErrorRate and ErrorStatus are the shorthand of a one-status Errors mix.
	ErrorRate      float64      `json:"error_rate,omitempty"`
	ErrorStatus    int          `json:"error_status,omitempty"`
	Errors         []ErrorShare `json:"errors,omitempty"`
	BodyBytes      int          `json:"body_bytes,omitempty"`
	Calls          []Call       `json:"calls,omitempty"`
	CallMode       string       `json:"call_mode,omitempty"`     // sequential (default) or parallel
	OnCallError    string       `json:"on_call_error,omitempty"` // fail (default) or ignore
	AllowOverrides bool         `json:"allow_overrides,omitempty"`
	MaxDelay       Duration     `json:"max_delay,omitempty"`
}

// Latency is a route's latency distribution; which keys apply depends on Distribution (see
// service.Latency).
type Latency struct {
	Distribution string   `json:"distribution"`
	Delay        Duration `json:"delay,omitempty"`
	Jitter       Duration `json:"jitter,omitempty"`
	Mean         Duration `json:"mean,omitempty"`
	StdDev       Duration `json:"stddev,omitempty"`
	Median       Duration `json:"median,omitempty"`
	P50          Duration `json:"p50,omitempty"`
	P90          Duration `json:"p90,omitempty"`
	P99          Duration `json:"p99,omitempty"`
	Max          Duration `json:"max,omitempty"`
}

// ErrorShare is one status of a route's error mix.
type ErrorShare struct {
	Status int     `json:"status"`
	Rate   float64 `json:"rate"`
}

// Call is one upstream call of a route.
type Call struct {
	Name    string   `json:"name"`
	URL     string   `json:"url"`
	Method  string   `json:"method,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
}

// Shutdown configures the graceful stop on SIGTERM.
type Shutdown struct {
	Grace         Duration `json:"grace"`
	DrainDelay    Duration `json:"drain_delay"`
	MetricsLinger Duration `json:"metrics_linger"`
}

// Default is the configuration used when no file is given, and the base every file is laid over.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:              ":8080",
			ReadHeaderTimeout: Duration(5 * time.Second),
			ReadTimeout:       Duration(30 * time.Second),
			WriteTimeout:      Duration(60 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			MaxBodyBytes:      1 << 20,
			MaxHeaderBytes:    64 << 10,
		},
		Admin: Admin{Addr: ":8081"},
		Metrics: Metrics{
			Namespace:     "app",
			FlushInterval: Duration(time.Second),
			Buckets:       []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
			MaxRoutes:     64,
		},
		Tracing: Tracing{
			Backend:     "none",
			ServiceName: "anyroute",
			Sampler:     Sampler{Type: "const", Param: 1},
			Jaeger:      Jaeger{AgentAddr: "127.0.0.1:6831"},
			Zipkin:      Zipkin{URL: "http://127.0.0.1:9411/api/v2/spans"},
			OTLP:        OTLP{Endpoint: "127.0.0.1:4318", Insecure: true},
		},
		Log:      Log{Level: "info", Format: "logfmt"},
		Routes:   []Route{},
		Shutdown: Shutdown{Grace: Duration(10 * time.Second)},
		MaxHops:  10,
	}
}

// Duration is a time.Duration written as a Go duration string ("250ms") in JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string, so a marshalled Config loads again.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string. The schema has already checked the shape; this is
// where a value such as "99999999999h" that overflows is caught.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"250ms\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// maxEchoed bounds how much of a bad value a problem quotes: a 10 MB string must not become a
// 10 MB error line.
const maxEchoed = 64

// quote quotes s for a problem's reason, cut to maxEchoed bytes.
func quote(s string) string {
	if len(s) <= maxEchoed {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxEchoed]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// parseDuration reads a Go duration string that is not negative and fits time.Duration.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	switch {
	case err != nil && strings.HasPrefix(s, "-"):
		return 0, fmt.Errorf("%s is not a duration: must not be negative", quote(s))
	case err != nil && durationShape.MatchString(s):
		return 0, fmt.Errorf("%s is too long a duration: at most %s", quote(s), time.Duration(math.MaxInt64))
	case err != nil:
		return 0, fmt.Errorf("%s is not a duration; write one such as 250ms, 1.5s or 1m30s", quote(s))
	case v < 0:
		return 0, fmt.Errorf("%s is not a duration: must not be negative", quote(s))
	}
	return v, nil
}

// durationShape is the schema's duration pattern: a string of that shape that does not parse
// overflows.
var durationShape = regexp.MustCompile(durationPattern)

// Problem is one violation found in a configuration file.
type Problem struct {
	Pointer string // JSON pointer (RFC 6901) of the offending value; "" is the whole document
	Reason  string
}

func (p Problem) String() string {
	ptr := p.Pointer
	if ptr == "" {
		ptr = "/"
	}
	return ptr + ": " + p.Reason
}

// Error reports every problem of a configuration file, one per line.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s)", e.File, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}
