package predict

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anyroute/anyroute/config"
)

// Exit codes, as the other subcommands': 2 is bad usage or bad input.
const (
	exitOK       = 0
	exitFailure  = 1
	exitBadUsage = 2
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(s string) error { *f = append(*f, s); return nil }

// Inputs are what a prediction is made from, as flags: `anyroute predict` registers them, and so
// does `anyroute doctor -predict-load`, which compares a running release with the same prediction.
type Inputs struct {
	chart, loadFile, configFile, adapter string
	values                               fileList
	relist                               time.Duration
	idleCPU                              string
	delays                               Delays
	alerts                               alertOptions
}

// Register adds the inputs' flags to fs, the load's under the name loadFlag.
func (in *Inputs) Register(fs *flag.FlagSet, loadFlag string) {
	fs.StringVar(&in.chart, "chart", "deployments/helm/anyroute", "the chart, whose values.yaml comes first")
	fs.Var(&in.values, "f", "a values file laid over the chart's, as helm -f (repeatable)")
	fs.StringVar(&in.loadFile, loadFlag, "", `the load: {"stages": [{"duration": "30s", "target_rate": 500}, ...], "routes": {"ROUTE": weight}}`)
	fs.StringVar(&in.configFile, "config", "", "anyroute config whose routes the load runs (and whose scenario plays); default the values' config")
	fs.StringVar(&in.adapter, "adapter", "deployments/helm/prometheus-adapter-values.yaml", "prometheus-adapter values or rules file: its rule's rate window and re-list interval")
	in.delays = DefaultDelays()
	d := &in.delays
	fs.DurationVar(&d.Scrape, "scrape-interval", d.Scrape, "Prometheus' scrape interval of the pods")
	fs.DurationVar(&d.ScrapeOffset, "scrape-offset", d.ScrapeOffset, "where in the interval the pods' scrape falls")
	fs.DurationVar(&in.relist, "relist", 0, "prometheus-adapter's re-list interval; default the adapter file's metricsRelistInterval, else 30s")
	fs.DurationVar(&d.Sync, "sync", d.Sync, "the HPA controller's sync period (--horizontal-pod-autoscaler-sync-period)")
	fs.DurationVar(&d.SyncOffset, "sync-offset", d.SyncOffset, "when the controller's first sync falls")
	fs.DurationVar(&d.PodStartup, "pod-startup", d.PodStartup, "from the scale decision to the new pod Ready and serving")
	fs.DurationVar(&d.MetricsResolution, "metrics-resolution", d.MetricsResolution, "metrics-server's --metric-resolution (cpu metric)")
	fs.DurationVar(&d.After, "after", d.After, "how long to predict after the load's last stage")
	fs.StringVar(&in.idleCPU, "cpu-idle", "0", "CPU a pod burns serving nothing, a quantity (\"2m\": 2 millicores), for a cpu metric")
	fs.DurationVar(&in.alerts.eval, "eval-interval", time.Minute, "Prometheus' rule evaluation interval")
	fs.DurationVar(&in.alerts.scenarioStart, "scenario-start", 0, "when the config's scenario starts, from the start of the load")
}

// LoadFile is the load's file, "" when none was given.
func (in *Inputs) LoadFile() string { return in.loadFile }

// Predict reads the inputs the flags name and runs the simulation.
func (in *Inputs) Predict() (Prediction, error) {
	idle, err := quantity(in.idleCPU)
	if err != nil || idle.Sign() < 0 {
		return Prediction{}, fmt.Errorf("-cpu-idle %q: want a quantity of CPU such as 2m", in.idleCPU)
	}
	return predict(in.chart, in.values, in.loadFile, in.configFile, in.adapter, in.relist, in.delays, in.alerts, idle.AsApproximateFloat64())
}

// settings are what the command line asks for: the inputs, and the outputs.
type settings struct {
	Inputs
	output, svg string
}

// parseArgs reads the command line.
func parseArgs(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("anyroute predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	s.Register(fs, "load")
	// predict's own default (readLoad); the doctor compares only when asked, with -predict.
	fs.Lookup("load").Usage += "; without it, the values' load.stages when they run the chart's anyroute load"
	fs.StringVar(&s.output, "o", "table", "output: table (every sync where something moved), summary (the replica changes and the alerts) or json")
	fs.StringVar(&s.svg, "svg", "", "also draw the timeline (load, metric, replicas, alerts) as an SVG into this file")
	fs.StringVar(&s.alerts.out, "alerts", "", "write the predicted alerts, as promtool test rules cases, to `FILE`")
	fs.StringVar(&s.alerts.rules, "rules", "deployments/compose/prometheus-alerts.yml", "the alert rules (the chart's default rendering): their labels and annotations, and the file the cases test")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("arguments %q: predict takes flags only", fs.Args()))
	}
	if s.output != "table" && s.output != "summary" && s.output != "json" {
		errs = append(errs, fmt.Errorf("-o: %q is none of table, summary, json", s.output))
	}
	if err := errors.Join(errs...); err != nil {
		for _, e := range errs {
			fmt.Fprintf(stderr, "anyroute predict: %v\n", e)
		}
		fmt.Fprintln(stderr, "usage: anyroute predict [-load FILE] [-chart DIR] [-f VALUES]... [-config FILE] [-o table|summary|json] [-svg FILE] [-alerts FILE] [delays]")
		return s, err
	}
	return s, nil
}

// Run is `anyroute predict ARGS`.
func Run(args []string, stdout, stderr io.Writer) int {
	s, err := parseArgs(args, stderr)
	if err != nil {
		return exitBadUsage
	}
	p, err := s.Predict()
	if err != nil {
		fmt.Fprintf(stderr, "anyroute predict: %v\n", err)
		return exitBadUsage
	}
	if err := p.write(s, stdout); err != nil {
		fmt.Fprintf(stderr, "anyroute predict: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// write writes the outputs the settings ask for.
func (p Prediction) write(s settings, stdout io.Writer) error {
	if s.alerts.out != "" {
		if err := os.WriteFile(s.alerts.out, p.Cases, 0o644); err != nil {
			return err
		}
	}
	if s.svg != "" {
		var b bytes.Buffer
		if err := p.WriteSVG(&b); err != nil {
			return err
		}
		if err := os.WriteFile(s.svg, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	write := map[string]func(io.Writer) error{"table": p.WriteTable, "summary": p.WriteSummary, "json": p.WriteJSON}[s.output]
	return write(stdout)
}

// predict reads the inputs and runs the simulation.
func predict(chart string, values []string, loadFile, configFile, adapterFile string, relist time.Duration, d Delays, ao alertOptions, idleCPU float64) (Prediction, error) {
	a, err := ReadValues(append([]string{chart + "/values.yaml"}, values...)...)
	if err != nil {
		return Prediction{}, err
	}
	b, source, err := readLoad(a, loadFile)
	if err != nil {
		return Prediction{}, err
	}
	load, err := ParseLoad(b)
	if err != nil {
		return Prediction{}, fmt.Errorf("%s: %w", source, err)
	}
	doc, cfg, err := readConfig(a, configFile)
	if err != nil {
		return Prediction{}, err
	}
	d.Flush = cfg.Metrics.FlushInterval.D()
	switch a.Path {
	case PathAdapter:
		r, err := ReadAdapter(adapterFile)
		if err != nil {
			return Prediction{}, err
		}
		d.RateWindow = r.RateWindow
		if r.Relist > 0 {
			d.Relist = r.Relist
		}
	case PathKEDA:
		d.RateWindow = a.KEDARateWindow
	}
	if relist > 0 {
		d.Relist = relist
	}
	if _, err := shares(cfg, load); err != nil {
		return Prediction{}, fmt.Errorf("%s: %w", source, err)
	}
	course, err := NewCourse(doc, cfg, ao.scenarioStart)
	if err != nil {
		return Prediction{}, err
	}
	tr := &Traffic{Load: load, Course: course, Bound: a.Objectives.Bound}
	costs := Costs{CPU: tr.CPUAt, IdleCPU: idleCPU}
	tl, err := Simulate(a, load, costs, d)
	if err != nil {
		return Prediction{}, err
	}
	p := Prediction{Timeline: tl, Delays: d, Costs: costs, Load: load, KEDAPolling: a.KEDAPolling, Phases: course.Spans(tl.End)}
	if err := p.predictAlerts(a, tr, cfg, ao, source); err != nil {
		return p, err
	}
	return p, nil
}

// readLoad is the load's document and where it came from: the -load file, else the values' own
// load.stages (the schedule the chart's load pod runs).
func readLoad(a Autoscaler, loadFile string) ([]byte, string, error) {
	if loadFile != "" {
		b, err := os.ReadFile(loadFile)
		return b, loadFile, err
	}
	if a.LoadStages == nil {
		return nil, "", errors.New("no load file given, and the values run no anyroute load with stages (load.enabled, load.tool anyroute, load.stages)")
	}
	b, err := json.Marshal(map[string]json.RawMessage{"stages": a.LoadStages})
	return b, "the values' load.stages", err
}

// alertOptions say how to predict the alerts and where to write their cases.
type alertOptions struct {
	out, rules          string
	eval, scenarioStart time.Duration
}

// predictAlerts predicts the alerts over the prediction's span and writes their cases.
func (p *Prediction) predictAlerts(a Autoscaler, tr *Traffic, cfg config.Config, ao alertOptions, source string) error {
	if ao.eval <= 0 || ao.eval%time.Second != 0 {
		return fmt.Errorf("-eval-interval %s: want whole seconds", ao.eval)
	}
	if p.Delays.Scrape%time.Second != 0 {
		return fmt.Errorf("-scrape-interval %s: the alerts' series want whole seconds", p.Delays.Scrape)
	}
	end := p.Timeline.End
	series, err := Synthesize(tr, end, p.Delays.Scrape, p.Delays.Flush)
	if err != nil {
		return err
	}
	p.Objectives = a.Objectives
	p.Alerts = PredictAlerts(series, p.Delays.Scrape, ao.eval, end, a.Objectives)
	if ao.out == "" {
		return nil
	}
	templates, err := readRuleTemplates(ao.rules)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(ao.out), ao.rules)
	if err != nil {
		return err
	}
	name := "predicted alerts"
	if cfg.Scenario != nil {
		name = "predicted alerts of scenario " + cfg.Scenario.Name
	}
	cases := PromtoolCases{RulesFile: rel, Title: name, Source: source, Interval: p.Delays.Scrape, Eval: ao.eval,
		Series: series, Alerts: p.Alerts, End: end.Truncate(ao.eval)}
	var b bytes.Buffer
	if err := cases.Write(&b, templates); err != nil {
		return err
	}
	p.Cases = b.Bytes()
	return nil
}

// readConfig is the anyroute config the pods run, and its document: the file given, else the
// chart values' config.
func readConfig(a Autoscaler, file string) ([]byte, config.Config, error) {
	name, doc := "the values' config", a.Config
	if file != "" {
		var err error
		if doc, err = config.ReadFile(file); err != nil {
			return nil, config.Config{}, err
		}
		name = file
	}
	if len(doc) == 0 || string(doc) == "null" {
		doc = []byte("{}")
	}
	cfg, err := config.Parse(name, doc)
	return doc, cfg, err
}
