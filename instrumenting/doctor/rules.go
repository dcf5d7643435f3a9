package doctor

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// AdapterConfig is the part of prometheus-adapter's --config file the doctor compares with what
// Prometheus holds and what the HPA asks for.
type AdapterConfig struct {
	Rules []AdapterRule `json:"rules"`
}

// AdapterRule is one of prometheus-adapter's discovery rules (the fields the doctor reads).
type AdapterRule struct {
	SeriesQuery string `json:"seriesQuery"`
	Resources   struct {
		Template  string `json:"template"`
		Overrides map[string]struct {
			Group    string `json:"group"`
			Resource string `json:"resource"`
		} `json:"overrides"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

// ParseAdapterConfig reads a prometheus-adapter config file's rules.
func ParseAdapterConfig(raw []byte) (*AdapterConfig, error) {
	var c AdapterConfig
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// SeriesName is the metric name a rule's seriesQuery selects ("app_requests_total" of
// `app_requests_total{namespace!="",pod!=""}`, or of `{__name__="app_requests_total"}`); "" when it
// names none plainly.
func (r AdapterRule) SeriesName() string {
	q := strings.TrimSpace(r.SeriesQuery)
	if m := leadingName.FindString(q); m != "" {
		return m
	}
	if m := nameMatcher.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return ""
}

var (
	leadingName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	nameMatcher = regexp.MustCompile(`__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
)

// MetricName is the name the rule serves a series under: name.as with the capture groups of
// name.matches filled in (the adapter's default "$1" when as is empty, or the series' own name).
func (r AdapterRule) MetricName(series string) (string, error) {
	if r.Name.Matches == "" {
		if r.Name.As != "" {
			return r.Name.As, nil
		}
		return series, nil
	}
	re, err := regexp.Compile(r.Name.Matches)
	if err != nil {
		return "", fmt.Errorf("name.matches %q: %w", r.Name.Matches, err)
	}
	m := re.FindStringSubmatchIndex(series)
	if m == nil {
		return "", fmt.Errorf("name.matches %q does not match the series name %q", r.Name.Matches, series)
	}
	as := r.Name.As
	if as == "" {
		as = "$1"
		if re.NumSubexp() == 0 {
			as = "$0"
		}
	}
	return string(re.ExpandString(nil, as, series, m)), nil
}

// Labels are the series labels the rule maps to Kubernetes resources, sorted. A template rule
// (resources.template, e.g. "kube_<<.Resource>>") is shown by its template.
func (r AdapterRule) Labels() []string {
	var names []string
	for label := range r.Resources.Overrides {
		names = append(names, label)
	}
	slices.Sort(names)
	return names
}

// ResourceLabel is the series label the rule maps to a resource ("namespace", "pod"): from the
// overrides, else from the template; "" when the rule maps none.
func (r AdapterRule) ResourceLabel(resource string) string {
	for label, o := range r.Resources.Overrides {
		if o.Resource == resource || strings.TrimSuffix(o.Resource, "s") == resource {
			return label
		}
	}
	if t := r.Resources.Template; t != "" {
		return strings.ReplaceAll(strings.ReplaceAll(t, "<<.Resource>>", resource), "<<.Group>>", "")
	}
	return ""
}

// adapterArgs is what the doctor reads from the adapter's Deployment: the container arguments it
// runs with.
type adapterArgs struct {
	configPath    string
	relist        time.Duration
	relistSet     bool
	prometheusURL string
}

// defaultRelist is prometheus-adapter's --metrics-relist-interval default (v0.12.0).
const defaultRelist = 10 * time.Minute

// parseAdapterArgs reads prometheus-adapter's flags from a container's command and args.
func parseAdapterArgs(args []string) (adapterArgs, error) {
	a := adapterArgs{relist: defaultRelist}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			continue
		}
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			switch name {
			case "config", "cert-dir", "metrics-relist-interval", "prometheus-url":
				value = args[i+1]
				i++
			}
		}
		switch name {
		case "config":
			a.configPath = value
		case "prometheus-url":
			a.prometheusURL = value
		case "metrics-relist-interval":
			d, err := time.ParseDuration(value)
			if err != nil {
				return a, fmt.Errorf("--metrics-relist-interval=%s: %w", value, err)
			}
			a.relist, a.relistSet = d, true
		}
	}
	return a, nil
}
