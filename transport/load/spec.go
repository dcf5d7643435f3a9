// Package load sends shaped, counted HTTP load: `anyroute load`. In the open model requests
// leave on the schedule of a stages.Plan whatever the answers do, and each one's latency runs
// from when it was due, not from when it left (as wrk2 measures, so a stalled server cannot hide
// its queue: coordinated omission); in the closed model a fixed number of workers each send a
// request when the last one answered. Every request scheduled is counted exactly once: sent and
// ended with a code, or dropped because the bound on requests in flight was reached.
package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport/load/stages"
)

// Caps on what a run may ask for, whatever the flags or the file say: a load generator started
// by mistake (a typo in a rate, a forgotten duration) must not flood a service for hours.
const (
	MaxRate        = 20000            // requests per second, at any time of the schedule
	MaxDuration    = time.Hour        // the whole schedule, or a closed-model run
	MaxConcurrency = 1000             // closed-model workers
	MaxInFlight    = 20000            // open-model requests in flight
	MaxTargets     = 100              // targets, each a label value of the metrics
	MaxTimeout     = 5 * time.Minute  // one request
	MaxDrain       = 5 * time.Minute  // waiting for requests in flight after the end or a stop
	defaultTimeout = 10 * time.Second // one request
	defaultDrain   = 10 * time.Second // the requests in flight at the end
	defaultBurst   = 1000             // open-model requests in flight
	maxNameLen     = 64               // a target's name, a label value
	maxBodyBytes   = 1 << 20          // a target's request body
)

// Target is one URL the load is sent to, with its share of the requests.
type Target struct {
	Name    string            `json:"name,omitempty"`   // the target label of the metrics; default t0, t1, ... by position
	URL     string            `json:"url"`              // http or https, with a host
	Method  string            `json:"method,omitempty"` // default GET
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Weight  float64           `json:"weight,omitempty"` // share of the requests, relative to the others; default 1
}

// Spec is a whole run: the JSON of `anyroute load -f FILE`, which flags override.
type Spec struct {
	Targets []Target `json:"targets"`
	// Open model: the schedule. Rate and Duration are the shorthand of a constant rate.
	Stages   stages.List     `json:"stages,omitempty"`
	Rate     float64         `json:"rate,omitempty"`
	Duration stages.Duration `json:"duration,omitempty"`
	// Closed model: this many workers for Duration, each sending when its last answer came.
	Concurrency int `json:"concurrency,omitempty"`
	// Seed picks the target of each request: the same seed, the same sequence of targets.
	Seed        uint64          `json:"seed,omitempty"`
	Timeout     stages.Duration `json:"timeout,omitempty"`       // one request; default 10s
	Drain       stages.Duration `json:"drain,omitempty"`         // wait for requests in flight at the end; default 10s
	MaxInFlight int             `json:"max_in_flight,omitempty"` // open model; default 1000
	// NewConnections opens a connection for every request (no keep-alive). Behind a Kubernetes
	// Service, kube-proxy balances connections, not requests: kept-alive connections hold a load
	// generator's requests on the pods that were there when it connected, and pods an autoscaler
	// adds get none of them.
	NewConnections bool `json:"new_connections,omitempty"`
	// Tracing is the service's tracing section: with a backend, each request starts its trace.
	Tracing *config.Tracing `json:"tracing,omitempty"`
}

// ParseSpec reads a spec from JSON, rejecting unknown fields; Check validates it.
// A tracing section is laid over the service's default tracing config, named anyroute-load.
func ParseSpec(doc []byte) (Spec, error) {
	s := Spec{Tracing: DefaultTracing()}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Spec{}, err
	}
	if dec.More() {
		return Spec{}, errors.New("more than one JSON value")
	}
	return s, nil
}

// DefaultTracing is the tracing config of a run that says nothing of tracing: the service's
// defaults (backend none), as service anyroute-load.
func DefaultTracing() *config.Tracing {
	t := config.Default().Tracing
	t.ServiceName = "anyroute-load"
	return &t
}

// Closed reports whether the spec runs the closed model.
func (s Spec) Closed() bool { return s.Concurrency > 0 }

// Plan is the open model's schedule: Stages, or Rate for Duration.
func (s Spec) Plan() stages.Plan {
	if len(s.Stages) > 0 {
		return stages.Plan{Stages: s.Stages}
	}
	return stages.Constant(s.Rate, time.Duration(s.Duration))
}

// WithDefaults fills what the spec leaves out.
func (s Spec) WithDefaults() Spec {
	if s.Timeout == 0 {
		s.Timeout = stages.Duration(defaultTimeout)
	}
	if s.Drain == 0 {
		s.Drain = stages.Duration(defaultDrain)
	}
	if s.MaxInFlight == 0 {
		s.MaxInFlight = defaultBurst
	}
	targets := make([]Target, len(s.Targets))
	for i, t := range s.Targets {
		if t.Name == "" {
			t.Name = fmt.Sprintf("t%d", i)
		}
		if t.Method == "" {
			t.Method = http.MethodGet
		}
		if t.Weight == 0 {
			t.Weight = 1
		}
		targets[i] = t
	}
	s.Targets = targets
	return s
}

// Check says everything that is wrong with a spec (after WithDefaults), each problem naming the
// field: nil when it can run.
func (s Spec) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.Targets) == 0 {
		bad("targets: none given; name at least one URL (anyroute load sends nowhere by default)")
	}
	if len(s.Targets) > MaxTargets {
		bad("targets: %d, above the cap of %d", len(s.Targets), MaxTargets)
	}
	names := map[string]int{}
	for i, t := range s.Targets {
		errs = append(errs, checkTarget(i, t)...)
		if j, ok := names[t.Name]; ok {
			bad("targets[%d].name: %q is also targets[%d]'s; names label the metrics and must differ", i, t.Name, j)
		}
		names[t.Name] = i
	}
	errs = append(errs, s.checkModel()...)
	if t := time.Duration(s.Timeout); t <= 0 || t > MaxTimeout {
		bad("timeout: %s is outside (0, %s]", t, MaxTimeout)
	}
	if d := time.Duration(s.Drain); d < 0 || d > MaxDrain {
		bad("drain: %s is outside [0, %s]", d, MaxDrain)
	}
	if s.MaxInFlight < 1 || s.MaxInFlight > MaxInFlight {
		bad("max_in_flight: %d is outside [1, %d]", s.MaxInFlight, MaxInFlight)
	}
	return errors.Join(errs...)
}

func (s Spec) checkModel() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	lim := stages.Limits{MaxRate: MaxRate, MaxDuration: MaxDuration}
	switch {
	case s.Concurrency < 0 || s.Concurrency > MaxConcurrency:
		bad("concurrency: %d is outside [1, %d]", s.Concurrency, MaxConcurrency)
	case s.Closed() && (len(s.Stages) > 0 || s.Rate != 0):
		bad("concurrency: the closed model sends as answers come; it takes a duration, not a rate or stages")
	case s.Closed():
		if d := time.Duration(s.Duration); d <= 0 || d > MaxDuration {
			bad("duration: %s is outside (0, %s]", d, MaxDuration)
		}
	case len(s.Stages) > 0 && (s.Rate != 0 || s.Duration != 0):
		bad("stages: give stages, or a rate and a duration, not both")
	case len(s.Stages) > 0:
		if err := s.Plan().Validate(lim); err != nil {
			errs = append(errs, err)
		}
	case s.Rate == 0 && s.Duration == 0:
		bad("rate: none given; give a rate and a duration, stages, or a concurrency")
	case math.IsNaN(s.Rate) || s.Rate <= 0 || s.Rate > MaxRate:
		bad("rate: %v is outside (0, %d] requests per second", s.Rate, MaxRate)
	case s.Duration <= 0 || time.Duration(s.Duration) > MaxDuration:
		bad("duration: %s is outside (0, %s]", time.Duration(s.Duration), MaxDuration)
	}
	return errs
}

func checkTarget(i int, t Target) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("targets[%d]."+format, append([]any{i}, args...)...))
	}
	u, err := url.Parse(t.URL)
	switch {
	case t.URL == "":
		bad("url: empty")
	case err != nil:
		bad("url: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		bad("url: %q: the scheme must be http or https", t.URL)
	case u.Host == "":
		bad("url: %q has no host", t.URL)
	}
	if t.Name == "" || len(t.Name) > maxNameLen || strings.ContainsFunc(t.Name, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		bad("name: %q must be 1 to %d printable ASCII characters", t.Name, maxNameLen)
	}
	if !validToken(t.Method) {
		bad("method: %q is not an HTTP method token", t.Method)
	}
	for k, v := range t.Headers {
		if !validToken(k) {
			bad("headers: %q is not a header name", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			bad("headers[%q]: the value holds a line break or NUL", k)
		}
		if textproto.CanonicalMIMEHeaderKey(k) == "Host" {
			bad("headers: Host is taken from the URL")
		}
	}
	if len(t.Body) > maxBodyBytes {
		bad("body: %d bytes, above the cap of %d", len(t.Body), maxBodyBytes)
	}
	if math.IsNaN(t.Weight) || math.IsInf(t.Weight, 0) || t.Weight <= 0 {
		bad("weight: %v must be a number above 0", t.Weight)
	}
	return errs
}

// validToken: RFC 9110's token, which methods and header names are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= 0x20 || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) {
			return false
		}
	}
	return true
}
