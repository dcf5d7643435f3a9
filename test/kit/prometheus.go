package kit

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Prom is a client of one Prometheus server's HTTP API.
type Prom struct {
	URL string
	API promv1.API
}

// NewProm returns a client of the Prometheus server at url.
func NewProm(url string) (*Prom, error) {
	c, err := api.NewClient(api.Config{Address: url, Client: NewClient(10 * time.Second)})
	if err != nil {
		return nil, err
	}
	return &Prom{URL: url, API: promv1.NewAPI(c)}, nil
}

// NewPromT is NewProm, failing the test on an error.
func NewPromT(t testing.TB, url string) *Prom {
	t.Helper()
	p, err := NewProm(url)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Query evaluates an instant query at ts (the server's now when ts is zero) and returns its
// samples; a scalar is one sample without labels.
func (p *Prom) Query(ctx context.Context, q string, ts time.Time) ([]Sample, error) {
	v, _, _, err := p.API.Query(ctx, q, ts)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	switch v := v.(type) {
	case model.Vector:
		out := make([]Sample, 0, len(v))
		for _, s := range v {
			out = append(out, Sample{Labels: labelMap(model.LabelSet(s.Metric)), Value: float64(s.Value), Histogram: s.Histogram})
		}
		return out, nil
	case *model.Scalar:
		return []Sample{{Labels: map[string]string{}, Value: float64(v.Value)}}, nil
	default:
		return nil, fmt.Errorf("query %s: a %s, not an instant vector", q, v.Type())
	}
}

// Value returns the value of the query's single sample; ok is false when the result is empty,
// and more than one sample is an error.
func (p *Prom) Value(ctx context.Context, q string, ts time.Time) (value float64, ok bool, err error) {
	samples, err := p.Query(ctx, q, ts)
	switch {
	case err != nil:
		return 0, false, err
	case len(samples) == 0:
		return 0, false, nil
	case len(samples) > 1:
		return 0, false, fmt.Errorf("query %s: %d samples, want one: %v", q, len(samples), samples)
	}
	return samples[0].Value, true, nil
}

// ByLabel evaluates an instant query now and returns its values by the value of one label.
func (p *Prom) ByLabel(ctx context.Context, q, label string) (map[string]float64, error) {
	samples, err := p.Query(ctx, q, time.Time{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(samples))
	for _, s := range samples {
		out[s.Labels[label]] = s.Value
	}
	return out, nil
}

func labelMap(s model.LabelSet) map[string]string {
	m := make(map[string]string, len(s))
	for k, v := range s {
		m[string(k)] = string(v)
	}
	return m
}

// WaitValue polls the query's single value until cond holds for it, and returns it. It fails
// the test at the deadline, or at once when stop (if not nil) holds: a counter that passed its
// goal will not come back.
func (p *Prom) WaitValue(t testing.TB, q string, timeout time.Duration, what string, cond, stop func(float64) bool) float64 {
	t.Helper()
	var got float64
	WaitUntil(t, timeout, fmt.Sprintf("Prometheus: %s to be %s", q, what), func() (bool, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, ok, err := p.Value(ctx, q, time.Time{})
		switch {
		case err != nil:
			return false, err.Error(), nil
		case !ok:
			return false, "no sample", nil
		case cond(v):
			got = v
			return true, "", nil
		case stop != nil && stop(v):
			return false, "", fmt.Errorf("%s is %g, want %s", q, v, what)
		}
		return false, strconv.FormatFloat(v, 'g', -1, 64), nil
	})
	return got
}

// WaitEquals waits until the query's value is exactly want, failing at once when it is above.
func (p *Prom) WaitEquals(t testing.TB, q string, want float64, timeout time.Duration) {
	t.Helper()
	p.WaitValue(t, q, timeout, fmt.Sprintf("exactly %g", want),
		func(v float64) bool { return v == want }, func(v float64) bool { return v > want })
}

// Exemplar is one exemplar Prometheus stored, with the series it is on.
type Exemplar struct {
	Series  map[string]string
	TraceID string
	Value   float64
	At      time.Time
}

// Exemplars returns the exemplars Prometheus stored for the query's series between start and end.
func (p *Prom) Exemplars(ctx context.Context, q string, start, end time.Time) ([]Exemplar, error) {
	res, err := p.API.QueryExemplars(ctx, q, start, end)
	if err != nil {
		return nil, fmt.Errorf("query_exemplars %s: %w", q, err)
	}
	var out []Exemplar
	for _, r := range res {
		for _, e := range r.Exemplars {
			out = append(out, Exemplar{Series: labelMap(r.SeriesLabels), TraceID: string(e.Labels["trace_id"]),
				Value: float64(e.Value), At: e.Timestamp.Time()})
		}
	}
	return out, nil
}

// Prometheus is a real Prometheus server (Debian's prometheus) that a test runs.
type Prometheus struct {
	*Prom
	Addr string // host:port of its HTTP API
	Proc *Proc
}

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	Config string      // prometheus.yml; when empty, ScrapeConfig(RuleFiles, Jobs...)
	Jobs   []ScrapeJob // what to scrape, when Config is empty
	// RuleFiles are rule files to load and evaluate every second, when Config is empty.
	RuleFiles []string
	Dir       string   // for the config file and the data; a temporary directory when empty
	LogFile   string   // its output; kept in memory when empty
	Features  []string // --enable-feature, e.g. exemplar-storage, native-histograms
	// Bin is the prometheus binary; Debian's (on PATH) when empty. The e2e runs the one
	// scripts/tools.sh builds, whose Kubernetes discovery Debian's package leaves out.
	Bin string
}

// ScrapeJob is one scrape job of a test's Prometheus.
type ScrapeJob struct {
	Name    string
	Targets []ScrapeTarget
	// HonorLabels keeps the labels the target exposes over the target's own: kube-state-metrics'
	// namespace label names the object's namespace, and the prometheus-community chart and
	// kube-prometheus-stack scrape it so.
	HonorLabels bool
}

// ScrapeTarget is a host:port a job scrapes, with the labels service discovery would give it
// (namespace and pod, as the prometheus-community chart's pod job does).
type ScrapeTarget struct {
	Addr   string
	Labels map[string]string
}

// ScrapeConfig is the prometheus.yml the tests share: every job scraped, and every rule
// evaluated, each second, so that a few seconds of traffic give a rate several samples.
func ScrapeConfig(ruleFiles []string, jobs ...ScrapeJob) string {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
	if len(ruleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range ruleFiles {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(f))
		}
	}
	b.WriteString("scrape_configs:\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "  - job_name: %s\n", strconv.Quote(j.Name))
		if j.HonorLabels {
			b.WriteString("    honor_labels: true\n")
		}
		b.WriteString("    static_configs:\n")
		for _, tg := range j.Targets {
			fmt.Fprintf(&b, "      - targets: [%s]\n", strconv.Quote(tg.Addr))
			if len(tg.Labels) == 0 {
				continue
			}
			pairs := make([]string, 0, len(tg.Labels))
			for _, k := range slices.Sorted(maps.Keys(tg.Labels)) {
				pairs = append(pairs, k+": "+strconv.Quote(tg.Labels[k]))
			}
			fmt.Fprintf(&b, "        labels: {%s}\n", strings.Join(pairs, ", "))
		}
	}
	return b.String()
}

// StartPrometheus runs Debian's prometheus with the given configuration on a free loopback port
// and waits until it is ready. It is stopped at the test's cleanup.
func StartPrometheus(t testing.TB, o PrometheusOptions) *Prometheus {
	t.Helper()
	bin := o.Bin
	if bin == "" {
		bin = SystemTool(t, "prometheus")
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Config == "" {
		o.Config = ScrapeConfig(o.RuleFiles, o.Jobs...)
	}
	cfg := filepath.Join(o.Dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(o.Config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	args := []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(o.Dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	if len(o.Features) > 0 {
		args = append(args, "--enable-feature="+strings.Join(o.Features, ","))
	}
	proc := StartT(t, Cmd{Name: "prometheus", Path: bin, LogFile: o.LogFile, Args: args})
	WaitHTTP(t, proc, "http://"+addr+"/-/ready", nil, 20*time.Second)
	return &Prometheus{Prom: NewPromT(t, "http://"+addr), Addr: addr, Proc: proc}
}
