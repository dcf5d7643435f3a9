package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Getter fetches a path (with its query string) relative to some base: a Prometheus server, or
// the Kubernetes API server. It returns the body of a 2xx answer, and an error naming the status
// and the start of the body otherwise.
type Getter func(ctx context.Context, pathAndQuery string) ([]byte, error)

// HTTPGetter gets from a base URL directly; its errors name the whole URL.
func HTTPGetter(base string, client *http.Client) Getter {
	return httpGetter(base, client, true)
}

// httpGetter is a Getter on base through client. A body is read up to 16 MiB; an answer other than
// 2xx is an error "GET path: status: why", why being the API Status' message or the body's first
// line; fullURL names base+path instead of the path (the API server's base is the same for every
// link, a Prometheus URL is worth showing).
func httpGetter(base string, client *http.Client, fullURL bool) Getter {
	base = strings.TrimRight(base, "/")
	return func(ctx context.Context, p string) ([]byte, error) {
		what := p
		if fullURL {
			what = base + p
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err // a *url.Error: it names the method and the URL
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", what, err)
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("GET %s: %s%s", what, resp.Status, statusNote(body))
		}
		return body, nil
	}
}

// statusNote is what an error answer says: the message of the API server's Status object, or the
// start of a body that is not one (a proxied pod's or service's own answer).
func statusNote(body []byte) string {
	var status struct {
		Kind, Message string
	}
	if json.Unmarshal(body, &status) == nil && status.Kind == "Status" && status.Message != "" {
		return ": " + status.Message
	}
	if s := firstLine(string(body)); s != "" {
		return ": " + s
	}
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// promClient asks Prometheus' HTTP API.
type promClient struct {
	get Getter
}

// query evaluates an instant PromQL query; only vector answers are expected.
func (p promClient) query(ctx context.Context, q string) ([]Sample, error) {
	body, err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decoding Prometheus' answer to %s: %w", q, err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("prometheus refused %s: %s", q, resp.Error)
	}
	if resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("%s gives a %s, not an instant vector", q, resp.Data.ResultType)
	}
	out := make([]Sample, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %v: %w", q, r.Value[1], err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// scrapeIntervals reads Prometheus' loaded configuration: the global scrape interval and each
// job's own.
func (p promClient) scrapeIntervals(ctx context.Context) (global time.Duration, jobs map[string]time.Duration, err error) {
	body, err := p.get(ctx, "/api/v1/status/config")
	if err != nil {
		return 0, nil, err
	}
	var resp struct {
		Data struct {
			YAML string `json:"yaml"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, nil, err
	}
	var cfg struct {
		Global struct {
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"global"`
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(resp.Data.YAML), &cfg); err != nil {
		return 0, nil, fmt.Errorf("prometheus config: %w", err)
	}
	global = time.Minute // Prometheus' default
	if cfg.Global.ScrapeInterval != "" {
		if global, err = parsePromDuration(cfg.Global.ScrapeInterval); err != nil {
			return 0, nil, err
		}
	}
	jobs = map[string]time.Duration{}
	for _, sc := range cfg.ScrapeConfigs {
		d := global
		if sc.ScrapeInterval != "" {
			if d, err = parsePromDuration(sc.ScrapeInterval); err != nil {
				return 0, nil, err
			}
		}
		jobs[sc.JobName] = d
	}
	return global, jobs, nil
}

var promDuration = regexp.MustCompile(`^(\d+)(ms|s|m|h|d|w|y)$`)

// parsePromDuration reads the durations Prometheus writes ("15s", "1m", "1d"; single unit).
func parsePromDuration(s string) (time.Duration, error) {
	m := promDuration.FindStringSubmatch(s)
	if m == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		return d, nil
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour,
		"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

// labelNames describes samples by metric name and label names: "app_requests_total{code,job,…}".
func labelNames(samples []Sample) string {
	seen := map[string]bool{}
	var out []string
	for _, s := range samples {
		var names []string
		for k := range s.Labels {
			if k != "__name__" {
				names = append(names, k)
			}
		}
		sortStrings(names)
		d := s.Labels["__name__"] + "{" + strings.Join(names, ",") + "}"
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return strings.Join(out, " ")
}
