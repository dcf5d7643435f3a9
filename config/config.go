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
	GRPC     GRPC     `json:"grpc"`
	Admin    Admin    `json:"admin"`
	Metrics  Metrics  `json:"metrics"`
	Tracing  Tracing  `json:"tracing"`
	Log      Log      `json:"log"`
	Routes   []Route  `json:"routes"`
	Shutdown Shutdown `json:"shutdown"`
	// Seed, when set, makes every random draw (latencies, status mixes) follow from it, so a run
	// can be repeated.
	Seed *uint64 `json:"seed,omitempty"`
	// MaxHops cuts loops in a call graph: a request that has come through this many anyroute
	// services is answered 508 by a route that makes calls (a route without calls ends the chain).
	MaxHops int `json:"max_hops"`
	// MaxCallsInFlight bounds the upstream calls the process makes at once; a call past it is not
	// made (service.LimitCalls).
	MaxCallsInFlight int `json:"max_calls_in_flight"`
	// Resident is a steady allocation the process holds, in bytes, written so that it is
	// resident: a memory floor for memory alerts and memory autoscaling demos.
	Resident int64 `json:"resident"`
	// Leak keeps bytes per request, up to a cap, until POST /-/leak/release or a reload that
	// changes it.
	Leak Leak `json:"leak"`
	// Scenario changes the routes on a timeline of phases; nil: they change only when asked.
	Scenario *Scenario `json:"scenario,omitempty"`
}

// Leak is a bounded per-request leak.
type Leak struct {
	PerRequest int64 `json:"per_request"`
	Max        int64 `json:"max"`
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
	HTTP2             HTTP2    `json:"http2"`
	// TLS, when set, makes the API listener speak TLS only (HTTP/2 through ALPN); nil: clear text.
	TLS *TLS `json:"tls,omitempty"`
}

// HTTP2 configures HTTP/2 on the API listener: h2c on a clear-text one (prior knowledge, and the
// HTTP/1.1 Upgrade when Upgrade is on), h2 through ALPN on a TLS one. A connection's header list
// is bounded by HTTP.MaxHeaderBytes, as an HTTP/1.1 head is; the rapid-reset defence (at most
// MaxConcurrentStreams handlers at once per connection, a connection that queues four times more
// closed) is the HTTP/2 server's own (golang.org/x/net/http2's, which net/http bundles) and has
// nothing to set.
type HTTP2 struct {
	Enabled                   bool `json:"enabled"`
	Upgrade                   bool `json:"upgrade"`
	MaxConcurrentStreams      int  `json:"max_concurrent_streams"`
	MaxDecoderHeaderTableSize int  `json:"max_decoder_header_table_size"`
	MaxReadFrameSize          int  `json:"max_read_frame_size"`
}

// TLS configures the API listener's certificate and, with ClientAuth optional or required, the
// client certificates it asks for (mTLS). The files are read at start and again whenever they
// change; ClientAuth and MinVersion are read at start only.
type TLS struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file,omitempty"`
	ClientAuth   string `json:"client_auth,omitempty"` // none (default), optional or required
	MinVersion   string `json:"min_version,omitempty"` // 1.2 (default) or 1.3
}

// GRPC configures the gRPC listener, which answers every service and method by the same route
// rules as the API listener; off while Addr is empty (the default), so that a deployment opens no
// port it did not ask for.
type GRPC struct {
	Addr string `json:"addr"`
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
	ErrorRate   float64      `json:"error_rate,omitempty"`
	ErrorStatus int          `json:"error_status,omitempty"`
	Errors      []ErrorShare `json:"errors,omitempty"`
	// GRPCCode is the gRPC code (by its name, such as DATA_LOSS) a gRPC call gets when the route
	// answers its own status, instead of the code that status maps to; "": the mapped one.
	GRPCCode       string   `json:"grpc_code,omitempty"`
	BodyBytes      int      `json:"body_bytes,omitempty"`
	Calls          []Call   `json:"calls,omitempty"`
	CallMode       string   `json:"call_mode,omitempty"`     // sequential (default) or parallel
	OnCallError    string   `json:"on_call_error,omitempty"` // fail (default) or ignore
	AllowOverrides bool     `json:"allow_overrides,omitempty"`
	MaxDelay       Duration `json:"max_delay,omitempty"`
	// CPU is the CPU time a request burns; Memory the bytes it holds while it is answered.
	CPU       *CPU       `json:"cpu,omitempty"`
	Memory    int64      `json:"memory,omitempty"`
	Faults    []Fault    `json:"faults,omitempty"`
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
}

// CPU is a route's CPU cost per request: a duration string ("5ms", burned by every request) or a
// latency object, whose draws are capped (a distribution without a bound needs max).
type CPU struct {
	Latency
}

// UnmarshalJSON reads a duration string as a fixed cost, and an object as a distribution.
func (c *CPU) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var d Duration
		if err := d.UnmarshalJSON(b); err != nil {
			return err
		}
		c.Latency = Latency{Distribution: "fixed", Delay: d}
		return nil
	}
	return json.Unmarshal(b, &c.Latency)
}

// MarshalJSON writes a fixed cost back as its duration string, so GET /-/config and route patches
// show the cost as it was written.
func (c CPU) MarshalJSON() ([]byte, error) {
	if l := c.Latency; l.Distribution == "fixed" && l.Jitter == 0 && l.Max == 0 {
		return l.Delay.MarshalJSON()
	}
	return json.Marshal(c.Latency)
}

// Fault is one connection-level failure of a route, injected into Rate of its requests.
type Fault struct {
	Kind           string  `json:"kind"` // see service.FaultKind
	Rate           float64 `json:"rate"`
	BytesPerSecond int     `json:"bytes_per_second,omitempty"` // slow_body only
}

// RateLimit is a route's quota; Burst defaults to DefaultBurst.
type RateLimit struct {
	RPS   float64 `json:"rps"`
	Burst int     `json:"burst,omitempty"`
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
	// GRPCCode is the gRPC code of this share's gRPC answers; "": the one Status maps to.
	GRPCCode string `json:"grpc_code,omitempty"`
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
			HTTP2: HTTP2{
				Enabled:                   true,
				Upgrade:                   true,
				MaxConcurrentStreams:      100,
				MaxDecoderHeaderTableSize: 4096,
				MaxReadFrameSize:          1 << 20,
			},
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
		// as service.DefaultMaxCallsInFlight
		MaxCallsInFlight: 1024,
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
