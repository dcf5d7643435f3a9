package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"text/template"

	"github.com/anyroute/anyroute/instrumenting"
)

// The Grafana dashboard: one file, inside the chart so that the chart's ConfigMap can read it
// (.Files.Get sees only the chart's own files); the compose stack's Grafana mounts the same file.
const (
	dashboardFile  = chartDir + "/dashboards/anyroute.json"
	grafanaDirName = "/var/lib/grafana/dashboards"
)

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
	Links []struct {
		Title string `json:"title"`
		URL   string `json:"url"`
	} `json:"links"`
	Panels []dashPanel `json:"panels"`
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *dashDatasource `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

type dashPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *dashDatasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []dashTarget `json:"targets"`
	Panels  []dashPanel  `json:"panels"` // a collapsed row's
}

type dashTarget struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Datasource *dashDatasource `json:"datasource"`
	Exemplar   bool            `json:"exemplar"`
	Format     string          `json:"format"`
}

// variableQuery is the PromQL text of a query variable.
func (v dashVar) variableQuery() string {
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err == nil && q.Query != "" {
		return q.Query
	}
	return v.Definition
}

// currentValue is the variable's current value, the first of a multi-value one.
func (v dashVar) currentValue() string {
	switch c := v.Current.Value.(type) {
	case string:
		return c
	case []any:
		if len(c) > 0 {
			s, _ := c[0].(string)
			return s
		}
	}
	return ""
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels lists every panel, those inside collapsed rows too.
func (d dashboard) allPanels() []dashPanel {
	var out []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// queryPanels are the panels that draw data (not rows), with their targets.
func (d dashboard) queryPanels() []dashPanel {
	var out []dashPanel
	for _, p := range d.allPanels() {
		if p.Type != "row" {
			out = append(out, p)
		}
	}
	return out
}

func (d dashboard) variable(name string) (dashVar, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return dashVar{}, false
}

// Grafana's own variables the dashboard may use; the PromQL test fills in $__rate_interval.
var grafanaBuiltins = map[string]bool{"__rate_interval": true, "__interval": true, "__range": true, "__all": true}

// variableRef finds $name, ${name} and ${name:format} references ([[name]] is deprecated).
var variableRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]`)

func variableRefs(s string) []string {
	var out []string
	for _, m := range variableRef.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1]+m[2]+m[3])
	}
	return out
}

// TestDashboardStructure checks the dashboard JSON as Grafana and the chart's sidecar need it,
// and that it shows what issue 16 asks for.
func TestDashboardStructure(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed (the sidecar and provisioning key dashboards by uid)", d.UID, d.Title)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want 39 or later (Grafana 10.4+)", d.SchemaVersion)
	}

	// Variables: the data source is one, so the same JSON works in any Grafana (no __inputs,
	// which the sidecar and file provisioning do not fill in).
	ds, ok := d.variable("datasource")
	if !ok || ds.Type != "datasource" || strings.Trim(string(ds.Query), `"`) != "prometheus" {
		t.Fatalf("want a variable datasource of type datasource, query prometheus; got %+v", ds)
	}
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		if defined[v.Name] {
			t.Errorf("variable %s defined twice", v.Name)
		}
		defined[v.Name] = true
		if v.Type == "query" {
			if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("variable %s: datasource %+v, want uid ${datasource}", v.Name, v.Datasource)
			}
			if !strings.HasPrefix(v.variableQuery(), "label_values(") {
				t.Errorf("variable %s: query %q, want label_values(...)", v.Name, v.variableQuery())
			}
			if !v.IncludeAll || v.AllValue != ".*" {
				t.Errorf("variable %s: want includeAll with allValue .* (matches series without the label, as in compose)", v.Name)
			}
		}
	}
	for _, name := range []string{"namespace", "job", "route", "jaeger_url"} {
		if !defined[name] {
			t.Errorf("variable %s missing", name)
		}
	}
	checkRefs := func(where, s string) {
		for _, name := range variableRefs(s) {
			if !defined[name] && !grafanaBuiltins[name] {
				t.Errorf("%s uses $%s, which is no variable of the dashboard", where, name)
			}
		}
	}
	for _, v := range d.Templating.List {
		checkRefs("variable "+v.Name, v.variableQuery())
	}
	for _, l := range d.Links {
		checkRefs("link "+l.Title, l.URL)
	}

	// Panels: unique ids, on the grid without overlapping, every target a PromQL expression
	// on the datasource variable.
	ids := map[int]string{}
	for _, p := range d.allPanels() {
		if p.ID <= 0 {
			t.Errorf("panel %q: id %d", p.Title, p.ID)
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.X < 0 || g.X+g.W > 24 || g.H < 1 || g.Y < 0 {
			t.Errorf("panel %q: gridPos %+v off the 24-column grid", p.Title, g)
		}
	}
	panels := d.queryPanels()
	for i, a := range d.allPanels() {
		for _, b := range d.allPanels()[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q %+v and %q %+v overlap", a.Title, ga, b.Title, gb)
			}
		}
	}
	var exprs []string
	for _, p := range panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("%s: datasource %+v, want the variable ${datasource}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		checkRefs(where, p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: target %s has no expr", where, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: target %s on datasource %+v", where, tg.RefID, tg.Datasource)
			}
			checkRefs(where, tg.Expr)
			exprs = append(exprs, tg.Expr)
		}
	}

	// What the dashboard must show.
	has := func(what string, ok func(p dashPanel, tg dashTarget) bool) {
		t.Helper()
		for _, p := range panels {
			for _, tg := range p.Targets {
				if ok(p, tg) {
					return
				}
			}
		}
		t.Errorf("no panel shows %s", what)
	}
	contains := func(subs ...string) func(dashPanel, dashTarget) bool {
		return func(_ dashPanel, tg dashTarget) bool {
			for _, s := range subs {
				if !strings.Contains(tg.Expr, s) {
					return false
				}
			}
			return true
		}
	}
	has("requests/s per route", contains("sum by (route) (rate(app_requests_total{"))
	has("the error ratio per route", contains("sum by (route) (rate(app_requests_total{", `code=~"`+instrumenting.ErrorCodes+`"`))
	for _, q := range []string{"0.5", "0.9", "0.99"} {
		has("p"+q+" per route", contains("histogram_quantile("+q+", sum by (le, route) (rate(app_request_duration_seconds_bucket{"))
	}
	has("a latency heatmap", func(p dashPanel, tg dashTarget) bool {
		return p.Type == "heatmap" && tg.Format == "heatmap" && strings.Contains(tg.Expr, "app_request_duration_seconds_bucket")
	})
	has("upstream calls per edge", contains("sum by (route, call) (rate(app_upstream_requests_total{"))
	has("the upstream error ratio per edge", contains("sum by (route, call) (rate(app_upstream_requests_total{", `code=~"5..|timeout|error|nonstandard|limited"`))
	has("upstream latency per edge", contains("sum by (le, route, call) (rate(app_upstream_request_duration_seconds_bucket{"))
	has("avg_requests per pod as the adapter computes it", contains(adapterQuery(t, `namespace=~"$namespace", job=~"$job"`, "namespace, pod")))
	for _, m := range []string{"spec_target_metric", "status_current_replicas", "status_desired_replicas"} {
		has("the HPA's "+m, contains("kube_horizontalpodautoscaler_"+m+"{"))
	}
	has("the flusher's lag", contains("app_metrics_last_flush_timestamp_seconds"))
	has("the flush duration", contains("app_metrics_flush_duration_seconds"))
	has("tracing drops", contains("app_tracing_spans_dropped_total"))
	sideBySide := false // one panel draws the load generator's rates beside the server's count
	for _, p := range panels {
		var client, server bool
		for _, tg := range p.Targets {
			client = client || strings.Contains(tg.Expr, "rate(load_requests_total{")
			server = server || strings.Contains(tg.Expr, "rate(app_requests_total{")
		}
		sideBySide = sideBySide || client && server
	}
	if !sideBySide {
		t.Error("no panel shows anyroute load's rate beside the server's")
	}
	has("the load generator's schedule", contains("load_scheduled_requests_per_second{"))
	has("the load generator's dropped sends", contains("rate(load_dropped_requests_total{"))

	// Exemplars on every graph of the request latency histogram (a stat panel cannot draw them).
	for _, p := range panels {
		for _, tg := range p.Targets {
			if p.Type == "timeseries" && strings.Contains(tg.Expr, "app_request_duration_seconds_bucket") && strings.Contains(tg.Expr, "histogram_quantile") && !tg.Exemplar {
				t.Errorf("panel %q target %s: exemplars off on a latency panel", p.Title, tg.RefID)
			}
		}
		if p.Type == "heatmap" && !p.Targets[0].Exemplar {
			t.Errorf("heatmap %q: exemplars off", p.Title)
		}
	}
	t.Logf("%d panels (%d with queries), %d expressions, %d variables", len(d.allPanels()), len(panels), len(exprs), len(d.Templating.List))
}

// adapterQuery is the prometheus-adapter rule's metricsQuery expanded for these matchers and
// grouping: the avg_requests the HPA reads.
func adapterQuery(t *testing.T, matchers, groupBy string) string {
	t.Helper()
	var rules struct {
		Rules []struct {
			MetricsQuery string `json:"metricsQuery"`
		} `json:"rules"`
	}
	readYAML(t, helmDir+"/prometheus-adapter-rules.yaml", &rules)
	if len(rules.Rules) != 1 {
		t.Fatalf("want one adapter rule, got %d", len(rules.Rules))
	}
	tmpl, err := template.New("q").Delims("<<", ">>").Parse(rules.Rules[0].MetricsQuery)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]string{"Series": "app_requests_total", "LabelMatchers": matchers, "GroupBy": groupBy}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDashboardIsOneFile: the repository holds the dashboard once; the chart's ConfigMap and the
// compose stack's Grafana both read that file, so the paths they name must lead to it.
func TestDashboardIsOneFile(t *testing.T) {
	root := "../"
	var found []string
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "dist" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".json") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(`"schemaVersion"`)) && bytes.Contains(data, []byte(`"panels"`)) {
			found = append(found, filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.ToSlash(filepath.Clean(dashboardFile))}; !slices.Equal(cleanAll(found), want) {
		t.Fatalf("Grafana dashboards in the repository: %v, want only %v", found, want)
	}

	// The chart reads it by this path (relative to the chart).
	tmpl, err := os.ReadFile(chartDir + "/templates/dashboard-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tmpl), `.Files.Get "dashboards/anyroute.json"`) {
		t.Error(`templates/dashboard-configmap.yaml does not read .Files.Get "dashboards/anyroute.json"`)
	}

	// Compose: every file it mounts exists, and Grafana's dashboards folder is the chart's.
	var file struct {
		Services map[string]struct {
			Profiles []string `json:"profiles"`
			Volumes  []string `json:"volumes"`
		} `json:"services"`
	}
	readYAML(t, composeDir+"/docker-compose.yml", &file)
	mounts := map[string]string{} // container path → host path, of grafana's
	for name, svc := range file.Services {
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join(composeDir, parts[0])); err != nil {
				t.Errorf("compose service %s mounts %s, which does not exist: %v", name, parts[0], err)
			}
			if name == "grafana" {
				mounts[parts[1]] = filepath.Clean(filepath.Join(composeDir, parts[0]))
			}
		}
	}
	grafana, ok := file.Services["grafana"]
	if !ok || !slices.Equal(grafana.Profiles, []string{"grafana"}) {
		t.Fatalf("compose service grafana: profiles %v, want only [grafana] (make up and the tests leave it out)", grafana.Profiles)
	}
	if got, want := mounts[grafanaDirName], filepath.Clean(filepath.Dir(dashboardFile)); got != want {
		t.Errorf("compose mounts %q at %s, want the chart's %s", got, grafanaDirName, want)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, composeDir+"/grafana/dashboards.yml", &provider)
	if len(provider.Providers) != 1 || provider.Providers[0].Options.Path != grafanaDirName {
		t.Errorf("grafana/dashboards.yml: providers %+v, want one reading %s", provider.Providers, grafanaDirName)
	}
	for _, target := range []string{"/etc/grafana/provisioning/datasources/anyroute.yml", "/etc/grafana/provisioning/dashboards/anyroute.yml"} {
		if _, ok := mounts[target]; !ok {
			t.Errorf("compose's grafana mounts nothing at %s", target)
		}
	}

	// The provisioned data source links exemplars (label trace_id) to the Jaeger UI.
	var ds struct {
		Datasources []struct {
			Type     string `json:"type"`
			JSONData struct {
				Exemplars []struct {
					Name string `json:"name"`
					URL  string `json:"url"`
				} `json:"exemplarTraceIdDestinations"`
			} `json:"jsonData"`
		} `json:"datasources"`
	}
	readYAML(t, composeDir+"/grafana/datasources.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || len(ds.Datasources[0].JSONData.Exemplars) != 1 {
		t.Fatalf("grafana/datasources.yml: %+v, want one Prometheus data source with one exemplar destination", ds.Datasources)
	}
	if e := ds.Datasources[0].JSONData.Exemplars[0]; e.Name != "trace_id" || !strings.HasSuffix(e.URL, "/trace/$${__value.raw}") {
		t.Errorf("exemplar destination %+v, want name trace_id and a URL ending /trace/$${__value.raw} ($$: a literal $ in provisioning)", e)
	}
}

func cleanAll(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.ToSlash(filepath.Clean(p))
	}
	sort.Strings(out)
	return out
}
