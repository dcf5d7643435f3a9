package predict

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Prediction is what `anyroute predict` prints.
type Prediction struct {
	Timeline   Timeline
	Delays     Delays
	Costs      Costs
	Load       Load
	Objectives Objectives
	Alerts     []AlertPrediction
	Phases     []PhaseSpan
	Cases      []byte // the promtool cases of the alerts, when asked for
	// KEDAPolling is the ScaledObject's pollingInterval, shown: it does not delay the HPA's reads.
	KEDAPolling time.Duration
}

// WriteTable prints the timeline, one line per HPA sync where something moved (the rate, the
// metric by a hundredth, the proposal, the replicas or the Ready pods), and the last one.
func (p Prediction) WriteTable(w io.Writer) error {
	tl := p.Timeline
	var b strings.Builder
	p.header(&b)
	fmt.Fprintf(&b, "%8s  %8s  %10s  %8s  %8s  %5s  %s\n", "time", "rate/s", "metric", "cpu%", "replicas", "ready", "reason")
	var last Row
	for i, r := range tl.Rows {
		if i > 0 && i < len(tl.Rows)-1 && quiet(last, r) {
			continue
		}
		metric, cpu := "-", "-"
		if r.HasValue {
			metric = fmt.Sprintf("%.2f", r.Metric)
		}
		if r.HasCPU {
			cpu = fmt.Sprintf("%.0f", r.CPU)
		}
		fmt.Fprintf(&b, "%8s  %8.1f  %10s  %8s  %8d  %5d  %s\n", clock(r.T), r.Rate, metric, cpu, r.Replicas, r.Ready, r.Reason)
		last = r
	}
	p.alertTable(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// header writes what was predicted and with which delays.
func (p Prediction) header(b *strings.Builder) {
	tl := p.Timeline
	fmt.Fprintf(b, "anyroute predict: %s path, %s against target %s", tl.Path, tl.MetricName, num(tl.Target))
	d := p.Delays
	if tl.Path == PathCPU {
		fmt.Fprintf(b, "\ndelays: metrics-server resolution %s, HPA sync %s, pod startup %s, cpu initialization %s\n",
			d.MetricsResolution, d.Sync, d.PodStartup, d.CPUInitialization)
		return
	}
	if tl.CPUTarget > 0 {
		fmt.Fprintf(b, ", cpu against %s%% of the request", num(tl.CPUTarget))
	}
	relist := "relist " + d.Relist.String()
	if tl.Path == PathKEDA {
		relist = fmt.Sprintf("no relist (KEDA asks Prometheus at each HPA sync; its %s polling only times Active)", p.KEDAPolling)
	}
	fmt.Fprintf(b, "\ndelays: flush %s, scrape %s, rate window %s, %s, HPA sync %s, pod startup %s\n",
		d.Flush, d.Scrape, d.RateWindow, relist, d.Sync, d.PodStartup)
}

// WriteSummary prints the header, the syncs where the replica count changed, and the alerts.
func (p Prediction) WriteSummary(w io.Writer) error {
	var b strings.Builder
	p.header(&b)
	fmt.Fprintf(&b, "%8s  %8s  %10s  %8s  %s\n", "time", "rate/s", "metric", "replicas", "reason")
	prev := -1
	for _, r := range p.Timeline.Rows {
		if r.Replicas == prev {
			continue
		}
		metric := "-"
		if r.HasValue {
			metric = fmt.Sprintf("%.2f", r.Metric)
		}
		fmt.Fprintf(&b, "%8s  %8.1f  %10s  %8d  %s\n", clock(r.T), r.Rate, metric, r.Replicas, r.Reason)
		prev = r.Replicas
	}
	p.alertTable(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// alertTable writes each alert's predicted episodes.
func (p Prediction) alertTable(b *strings.Builder) {
	if len(p.Alerts) > 0 {
		fmt.Fprintf(b, "alerts (availability %s, latency %s within %s):\n", num(p.Objectives.Availability), num(p.Objectives.Latency), p.Objectives.Bound)
		fmt.Fprintf(b, "%-30s  %8s  %8s  %8s\n", "alert", "pending", "firing", "resolved")
		for _, a := range p.Alerts {
			if len(a.Episodes) == 0 {
				fmt.Fprintf(b, "%-30s  %8s  %8s  %8s\n", a.Rule.Name, "-", "-", "-")
			}
			for _, e := range a.Episodes {
				fmt.Fprintf(b, "%-30s  %8s  %8s  %8s\n", a.Rule.Name, clock(e.Pending), clockOr(e.Firing), clockOr(e.Resolved))
			}
		}
	}
}

// quiet: nothing a reader would look for changed between two rows.
func quiet(a, b Row) bool {
	return a.Rate == b.Rate && math.Abs(a.Metric-b.Metric) < 0.005 && a.HasValue == b.HasValue &&
		math.Abs(a.CPU-b.CPU) < 0.5 && a.Replicas == b.Replicas && a.Ready == b.Ready && a.Reason == b.Reason
}

// clock writes a time from the start as m:ss.s.
func clock(t time.Duration) string {
	s := t.Seconds()
	m := math.Floor(s / 60)
	return fmt.Sprintf("%d:%04.1f", int(m), s-60*m)
}

func clockOr(t time.Duration) string {
	if t < 0 {
		return "-"
	}
	return clock(t)
}

func num(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

// jsonRow is a Row as -o json writes it: seconds, and null for a value the HPA did not have.
type jsonRow struct {
	T        float64  `json:"t_seconds"`
	Rate     float64  `json:"rate"`
	Metric   *float64 `json:"metric"`
	CPU      *float64 `json:"cpu_percent,omitempty"`
	Proposal int      `json:"proposal,omitempty"`
	Replicas int      `json:"replicas"`
	Ready    int      `json:"ready"`
	Reason   string   `json:"reason"`
}

// WriteJSON writes the prediction with every sync's row.
func (p Prediction) WriteJSON(w io.Writer) error {
	tl := p.Timeline
	d := p.Delays
	out := struct {
		Path      Path               `json:"path"`
		Metric    string             `json:"metric"`
		Target    float64            `json:"target"`
		CPUTarget float64            `json:"cpu_target_percent,omitempty"`
		Delays    map[string]float64 `json:"delays_seconds"`
		Timeline  []jsonRow          `json:"timeline"`
		Alerts    []jsonAlert        `json:"alerts"`
	}{Path: tl.Path, Metric: tl.MetricName, Target: tl.Target, CPUTarget: tl.CPUTarget,
		Delays: map[string]float64{"flush": d.Flush.Seconds(), "scrape": d.Scrape.Seconds(), "scrape_offset": d.ScrapeOffset.Seconds(),
			"rate_window": d.RateWindow.Seconds(), "relist": d.Relist.Seconds(), "sync": d.Sync.Seconds(),
			"sync_offset": d.SyncOffset.Seconds(), "pod_startup": d.PodStartup.Seconds(), "metrics_resolution": d.MetricsResolution.Seconds()}}
	for _, r := range tl.Rows {
		jr := jsonRow{T: r.T.Seconds(), Rate: round3(r.Rate), Proposal: r.Proposal, Replicas: r.Replicas, Ready: r.Ready, Reason: r.Reason}
		if r.HasValue {
			v := round3(r.Metric)
			jr.Metric = &v
		}
		if r.HasCPU {
			v := round3(r.CPU)
			jr.CPU = &v
		}
		out.Timeline = append(out.Timeline, jr)
	}
	for _, a := range p.Alerts {
		ja := jsonAlert{Name: a.Rule.Name, Threshold: a.Rule.Threshold(p.Objectives), For: a.Rule.For.Seconds(), Episodes: []jsonEpisode{}}
		for _, e := range a.Episodes {
			ja.Episodes = append(ja.Episodes, jsonEpisode{Pending: e.Pending.Seconds(), Firing: secondsOrNil(e.Firing), Resolved: secondsOrNil(e.Resolved)})
		}
		out.Alerts = append(out.Alerts, ja)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

type jsonAlert struct {
	Name      string        `json:"name"`
	Threshold float64       `json:"threshold"`
	For       float64       `json:"for_seconds"`
	Episodes  []jsonEpisode `json:"episodes"`
}

type jsonEpisode struct {
	Pending  float64  `json:"pending_seconds"`
	Firing   *float64 `json:"firing_seconds"`
	Resolved *float64 `json:"resolved_seconds"`
}

func secondsOrNil(d time.Duration) *float64 {
	if d < 0 {
		return nil
	}
	s := d.Seconds()
	return &s
}
