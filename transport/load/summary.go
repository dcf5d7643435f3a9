package load

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/instrumenting/metrics"
)

// Summary is what a run did, printed as JSON on stdout at its end. Every request scheduled is in
// exactly one of sent and dropped, and every one sent is in exactly one code of codes (and of its
// target's): sent = sum(codes) = ended.
type Summary struct {
	Model          string           `json:"model"`      // open or closed
	StoppedBy      string           `json:"stopped_by"` // end: the schedule ran out; signal: SIGINT or SIGTERM
	Seed           uint64           `json:"seed"`
	PlannedSeconds float64          `json:"planned_seconds"` // the whole schedule
	ElapsedSeconds float64          `json:"elapsed_seconds"` // the part of it that ran
	Planned        int64            `json:"planned"`         // requests in the whole schedule (open model)
	Scheduled      int64            `json:"scheduled"`       // requests due in the part that ran
	Sent           int64            `json:"sent"`
	Dropped        int64            `json:"dropped"` // due but not sent: max_in_flight were out
	Late           int64            `json:"late"`    // sent more than 10ms after their due time
	Ended          int64            `json:"ended"`
	ScheduledRate  float64          `json:"scheduled_rate"` // scheduled / elapsed_seconds
	AchievedRate   float64          `json:"achieved_rate"`  // sent / (elapsed_seconds + the last send's lag)
	Codes          map[string]int64 `json:"codes"`
	Targets        []TargetSummary  `json:"targets"`
	Latency        Quantiles        `json:"latency_seconds"`  // from the due time (open model)
	SendLag        Quantiles        `json:"send_lag_seconds"` // sent time - due time
	Seconds        []SecondSummary  `json:"seconds"`          // scheduled by due time, sent by send time
}

// TargetSummary is one target's part of the summary.
type TargetSummary struct {
	Name   string           `json:"name"`
	URL    string           `json:"url"`
	Method string           `json:"method"`
	Weight float64          `json:"weight"`
	Sent   int64            `json:"sent"`
	Codes  map[string]int64 `json:"codes"`
}

// SecondSummary is one second of the run, from its start.
type SecondSummary struct {
	Second    int   `json:"second"`
	Scheduled int64 `json:"scheduled"`
	Sent      int64 `json:"sent"`
	Late      int64 `json:"late"` // of sent: those that left more than 10ms past their due time
	Dropped   int64 `json:"dropped"`
}

// Summary reads the run's counts; call it after Run returned for the final one.
func (r *Runner) Summary() Summary {
	s := Summary{
		Model: "open", StoppedBy: r.stopReason.Load().(string), Seed: r.spec.Seed,
		Scheduled: r.scheduled.Load(), Sent: r.sent.Load(), Dropped: r.dropped.Load(),
		Late: r.late.Load(), Ended: r.ended.Load(), Codes: map[string]int64{},
		Latency: r.latency.quantiles(), SendLag: r.lag.quantiles(),
	}
	planned := r.plan.Duration()
	if r.spec.Closed() {
		s.Model, planned = "closed", time.Duration(r.spec.Duration)
	} else {
		s.Planned = r.plan.Total()
	}
	s.PlannedSeconds = planned.Seconds()
	elapsed := planned
	if at := time.Duration(r.stoppedAt.Load()); at > 0 && at < planned {
		elapsed = at
	}
	s.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		s.ScheduledRate = float64(s.Scheduled) / elapsed.Seconds()
		tail := max(time.Duration(r.lastSend.Load()-r.lastDue.Load()), 0)
		s.AchievedRate = float64(s.Sent) / (elapsed + tail).Seconds()
	}
	byName := map[string]*TargetSummary{}
	for _, t := range r.targets {
		s.Targets = append(s.Targets, TargetSummary{Name: t.Name, URL: t.URL, Method: t.Method, Weight: t.Weight, Codes: map[string]int64{}})
	}
	for i := range s.Targets {
		byName[s.Targets[i].Name] = &s.Targets[i]
	}
	for _, series := range r.agg.Snapshot().Series {
		if series.Count == 0 {
			continue
		}
		code := metrics.CodeLabel(series.Code)
		s.Codes[code] += int64(series.Count)
		if t := byName[series.Route]; t != nil {
			t.Codes[code] += int64(series.Count)
			t.Sent += int64(series.Count)
		}
	}
	last := len(r.seconds)
	for last > 0 && r.seconds[last-1].scheduled.Load() == 0 && r.seconds[last-1].sent.Load() == 0 {
		last--
	}
	for i := range r.seconds[:last] {
		b := &r.seconds[i]
		s.Seconds = append(s.Seconds, SecondSummary{Second: i, Scheduled: b.scheduled.Load(), Sent: b.sent.Load(),
			Late: b.late.Load(), Dropped: b.dropped.Load()})
	}
	return s
}

// Progress is the run so far, for the progress line.
type Progress struct {
	Elapsed, Planned                             time.Duration
	Rate                                         float64 // scheduled now (open model)
	Scheduled, Sent, Dropped, Ended, Late, InFlt int64
	Classes                                      [6]int64 // ended without an answer, 1xx, ..., 5xx
}

// Progress reads the counts now.
func (r *Runner) Progress() Progress {
	p := Progress{Scheduled: r.scheduled.Load(), Sent: r.sent.Load(), Dropped: r.dropped.Load(),
		Ended: r.ended.Load(), Late: r.late.Load(), InFlt: r.agg.InFlight()}
	p.Planned = r.plan.Duration()
	if r.spec.Closed() {
		p.Planned = time.Duration(r.spec.Duration)
	}
	if r.started.Load() {
		p.Elapsed = min(time.Since(r.start), p.Planned)
		if !r.spec.Closed() {
			p.Rate = r.plan.RateAt(p.Elapsed)
		}
	}
	for i := range p.Classes {
		p.Classes[i] = r.classes[i].Load()
	}
	return p
}

// Collectors are the schedule's metrics, beside the request metrics of
// metrics.NewClientCollector: what was due, sent and dropped, the rate due now and the send lag.
// rate(load_sent_requests_total) against load_scheduled_requests_per_second is the achieved
// rate against the schedule.
func (r *Runner) Collectors() []prometheus.Collector {
	counter := func(name, help string, v *int64Reader) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "load", Name: name, Help: help}, v.float)
	}
	return []prometheus.Collector{
		counter("scheduled_requests_total", "Requests due so far by the schedule (closed model: started).", &int64Reader{r.scheduled.Load}),
		counter("sent_requests_total", "Requests sent so far.", &int64Reader{r.sent.Load}),
		counter("dropped_requests_total", "Requests due but not sent because max_in_flight requests were out (open model).", &int64Reader{r.dropped.Load}),
		counter("late_requests_total", "Requests sent more than 10ms after their due time (open model).", &int64Reader{r.late.Load}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "load", Name: "start_time_seconds",
			Help: "When the run started sending, in seconds since the Unix epoch; 0 before: the T+0 of a prediction of its stages (anyroute doctor -predict-load)."},
			r.startTime),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "load", Name: "scheduled_requests_per_second",
			Help: "The rate the schedule asks for now (open model); 0 before the start and after the end."},
			func() float64 { return r.Progress().Rate }),
		r.lagMetric,
	}
}

// startTime is the run's start in Unix seconds, 0 before it starts. r.start is written before
// r.started is set, so a true started orders the read after the write.
func (r *Runner) startTime() float64 {
	if !r.started.Load() {
		return 0
	}
	return float64(r.start.UnixNano()) / 1e9
}

type int64Reader struct{ load func() int64 }

func (r *int64Reader) float() float64 { return float64(r.load()) }
