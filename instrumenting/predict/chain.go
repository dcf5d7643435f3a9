package predict

import (
	"fmt"
	"math"
	"time"
)

// Step is the simulation's tick: every delay of the chain is a multiple of it.
const Step = 100 * time.Millisecond

// Delays are the timings of the chain from a request to a replica count.
type Delays struct {
	Flush        time.Duration // anyroute's metrics.flush_interval: a request reaches /metrics
	Scrape       time.Duration // Prometheus' scrape interval of the pods
	ScrapeOffset time.Duration // where in its interval the scrape falls
	RateWindow   time.Duration // the rate() window of the adapter rule or of KEDA's query
	Relist       time.Duration // prometheus-adapter's metricsRelistInterval (not KEDA's)
	Sync         time.Duration // the HPA controller's sync period
	SyncOffset   time.Duration // when its first sync falls
	PodStartup   time.Duration // from the scale decision to the new pod Ready and in the Service
	// MetricsResolution is metrics-server's --metric-resolution (CPU); CPUInitialization the
	// controller's --horizontal-pod-autoscaler-cpu-initialization-period, within which a pod's CPU
	// sample taken before it was Ready for one resolution is not counted.
	MetricsResolution time.Duration
	CPUInitialization time.Duration
	After             time.Duration // how long to go on after the load's last stage
}

// DefaultDelays are a cluster as docs/autoscaling.md installs it: Prometheus scraping every 15 s,
// the adapter re-listing every 30 s, the controller's defaults.
func DefaultDelays() Delays {
	return Delays{Flush: time.Second, Scrape: 15 * time.Second, RateWindow: 2 * time.Minute, Relist: 30 * time.Second,
		Sync: 15 * time.Second, PodStartup: 5 * time.Second, MetricsResolution: 15 * time.Second,
		CPUInitialization: 5 * time.Minute, After: 5 * time.Minute}
}

// Check names a delay that the simulation cannot step.
func (d Delays) Check() error {
	for _, x := range []struct {
		name     string
		v        time.Duration
		positive bool
	}{
		{"flush", d.Flush, true}, {"scrape interval", d.Scrape, true}, {"scrape offset", d.ScrapeOffset, false},
		{"rate window", d.RateWindow, true}, {"relist interval", d.Relist, true}, {"sync period", d.Sync, true},
		{"sync offset", d.SyncOffset, false}, {"pod startup", d.PodStartup, false},
		{"metrics resolution", d.MetricsResolution, true}, {"after", d.After, false},
	} {
		if x.v < 0 || (x.positive && x.v == 0) || x.v%Step != 0 {
			return fmt.Errorf("%s %s: want a multiple of %s%s", x.name, x.v, Step, map[bool]string{true: " above 0", false: ""}[x.positive])
		}
	}
	if d.After > MaxLoadDuration {
		return fmt.Errorf("after %s: at most %s", d.After, MaxLoadDuration)
	}
	if d.ScrapeOffset >= d.Scrape {
		return fmt.Errorf("scrape offset %s: want less than the scrape interval, %s", d.ScrapeOffset, d.Scrape)
	}
	if d.SyncOffset >= d.Sync {
		return fmt.Errorf("sync offset %s: want less than the sync period, %s", d.SyncOffset, d.Sync)
	}
	return nil
}

// Costs are what one request costs a pod, averaged over the load's routes.
type Costs struct {
	// CPU is the CPU time a request costs at t (a scenario changes it); nil is none.
	CPU func(t time.Duration) float64
	// IdleCPU is what a pod burns serving nothing (the runtime, the flusher, probes, scrapes), in
	// cores.
	IdleCPU float64
}

// Row is one HPA sync of the predicted timeline.
type Row struct {
	T        time.Duration
	Rate     float64 // offered requests per second
	Metric   float64 // the value the HPA compared with its target (see Timeline.MetricName)
	HasValue bool    // false: the HPA had no value (the metric is not served yet)
	CPU      float64 // utilisation, percent of the request, when a cpu metric is in the spec
	HasCPU   bool
	// Served is sum(rate(app_requests_total[window])) over every pod's series: the requests a
	// second Prometheus sees the Deployment serve.
	Served   float64
	Proposal int // the metrics' proposal, before stabilization and policies (0: none)
	Replicas int // the Deployment's replicas after the sync
	Ready    int // pods Ready and serving at the sync
	Reason   string
}

// Timeline is a prediction of the replica count.
type Timeline struct {
	Path       Path
	MetricName string  // what Row.Metric is
	Target     float64 // its target
	CPUTarget  float64 // percent, 0: none
	Rows       []Row
	End        time.Duration
	MaxReady   int
}

type pod struct {
	created, ready, deleted time.Duration // deleted < 0: alive
	count, published        float64
	samples                 []Sample
	cpu                     float64
	cpuSamples              []Sample
}

func (p *pod) alive() bool                         { return p.deleted < 0 }
func (p *pod) serving(t time.Duration) bool        { return p.alive() && t >= p.ready }
func every(t, interval, offset time.Duration) bool { return t >= offset && (t-offset)%interval == 0 }

// Simulate runs the chain over the load: requests spread evenly over the Ready pods, counted,
// flushed, scraped, rated, read by the HPA at each sync, which scales the Deployment; new pods
// serve PodStartup after the decision, removed ones stop at once. It is deterministic.
func Simulate(a Autoscaler, load Load, costs Costs, d Delays) (Timeline, error) {
	if err := d.Check(); err != nil {
		return Timeline{}, err
	}
	tl := Timeline{Path: a.Path, Target: float64(a.Target) / 1000}
	switch a.Path {
	case PathAdapter:
		tl.MetricName = a.Metric
	case PathKEDA:
		tl.MetricName = "s0-prometheus per replica"
	case PathCPU:
		// The cpu metric is the HPA's only one: it is the metric, in percent of the request.
		tl.MetricName, tl.Target = "cpu utilization (% of the request)", float64(a.CPUTarget)
	}
	if a.CPUTarget > 0 {
		tl.CPUTarget = float64(a.CPUTarget)
	}
	ctl := &Controller{Min: a.Min, Max: a.Max, Behavior: a.Behavior}
	tol := ctl.Tolerances()
	var pods []*pod
	for range a.Min {
		// The first pods ran idle before the load: metrics-server has their idle CPU from its
		// sample before t=0 and the one at t=0, as a cluster has when a load starts.
		pods = append(pods, &pod{created: -time.Hour, ready: -time.Hour, deleted: -1,
			cpuSamples: []Sample{{-d.MetricsResolution, -costs.IdleCPU * d.MetricsResolution.Seconds()}}})
	}
	spec := a.Min
	listed := false // the adapter has listed the series
	end := load.Duration() + d.After
	tl.End = end
	for t := time.Duration(0); t <= end; t += Step {
		// The requests of the step before t, over the pods that served then.
		if t > 0 {
			mid := t - Step/2
			var serving []*pod
			for _, p := range pods {
				if p.serving(t - Step) {
					serving = append(serving, p)
				}
			}
			if n := len(serving); n > 0 {
				per := load.RateAt(mid) * Step.Seconds() / float64(n)
				cpu := 0.0
				if costs.CPU != nil {
					cpu = costs.CPU(mid)
				}
				for _, p := range serving {
					p.count += per
					p.cpu += per * cpu
				}
			}
			for _, p := range serving {
				p.cpu += costs.IdleCPU * Step.Seconds()
			}
		}
		if every(t, d.Flush, 0) {
			for _, p := range pods {
				if p.alive() {
					p.published = math.Floor(p.count + 1e-9)
				}
			}
		}
		if every(t, d.Scrape, d.ScrapeOffset) {
			for _, p := range pods {
				if p.alive() && p.published > 0 { // the series appears with the first request
					p.samples = append(p.samples, Sample{t, p.published})
				}
			}
		}
		if every(t, d.MetricsResolution, 0) {
			for _, p := range pods {
				if p.alive() && t >= p.ready {
					p.cpuSamples = append(p.cpuSamples, Sample{t, p.cpu})
				}
			}
		}
		if a.Path == PathAdapter && every(t, d.Relist, 0) && !listed {
			for _, p := range pods {
				if len(p.samples) > 0 {
					listed = true
				}
			}
		}
		if !every(t, d.Sync, d.SyncOffset) {
			continue
		}
		row := Row{T: t, Rate: load.RateAt(t), Replicas: spec}
		for _, p := range pods {
			if p.serving(t) {
				row.Ready++
			}
			if r, ok := Rate(p.samples, t, d.RateWindow); ok {
				row.Served += r
			}
		}
		proposal, valid, invalid := 0, 0, 0
		consider := func(n int) {
			valid++
			proposal = max(proposal, n)
		}
		switch a.Path {
		case PathAdapter:
			if n, avg, ok := adapterProposal(pods, t, spec, listed, a.Target, d.RateWindow, tol); ok {
				row.Metric, row.HasValue = avg, true
				consider(n)
			} else {
				invalid++
			}
		case PathKEDA:
			n, per := kedaProposal(pods, t, a.Target, d.RateWindow, tol)
			row.Metric, row.HasValue = per, true
			consider(n)
		}
		if a.CPUTarget > 0 {
			if n, util, ok := cpuProposal(pods, t, spec, a, d, tol); ok {
				row.CPU, row.HasCPU = util, true
				if a.Path == PathCPU {
					row.Metric, row.HasValue = util, true
				}
				consider(n)
			} else {
				invalid++
			}
		}
		if valid == 0 || (invalid > 0 && proposal < spec) {
			row.Reason = "no metric: replicas kept"
			if valid > 0 {
				row.Reason = "a metric missing: no scale-down"
			}
			tl.Rows = append(tl.Rows, row)
			continue
		}
		row.Proposal = proposal
		n, why := ctl.Decide(t, spec, proposal)
		row.Reason = why
		if n > spec {
			for range n - spec {
				pods = append(pods, &pod{created: t, ready: t + d.PodStartup, deleted: -1})
			}
		} else if n < spec {
			removeNewest(pods, spec-n, t)
		}
		spec = n
		row.Replicas = spec
		tl.Rows = append(tl.Rows, row)
		tl.MaxReady = max(tl.MaxReady, row.Ready)
	}
	return tl, nil
}

// removeNewest deletes k pods as a ReplicaSet picks them: those not yet Ready first, then the
// most recently Ready.
func removeNewest(pods []*pod, k int, t time.Duration) {
	for ; k > 0; k-- {
		var pick *pod
		for _, p := range pods {
			if !p.alive() {
				continue
			}
			if pick == nil || p.ready > pick.ready {
				pick = p
			}
		}
		pick.deleted = t
	}
}

// adapterProposal is the Pods metric through prometheus-adapter: each live pod's
// rate(app_requests_total[window]) when Prometheus has two samples of it in the window, once the
// adapter has listed the metric.
func adapterProposal(pods []*pod, t time.Duration, spec int, listed bool, target int64, window time.Duration, tol tolerances) (int, float64, bool) {
	if !listed {
		return 0, 0, false
	}
	var states []PodState
	for _, p := range pods {
		if !p.alive() {
			continue
		}
		s := PodState{Pending: t < p.ready, Ready: t >= p.ready}
		if r, ok := Rate(p.samples, t, window); ok {
			// The adapter makes a milli-quantity of the value, truncated.
			s.HasMetric, s.Value = true, int64(r*1000)
		}
		states = append(states, s)
	}
	n, avg, err := PodsMetricReplicas(spec, states, target, tol)
	if err != nil {
		return 0, 0, false
	}
	return n, avg / 1000, true
}

// kedaProposal is KEDA's External metric: sum(rate(...[window])) over every series Prometheus
// holds, removed pods' too while their samples are in the window (an empty answer is 0), divided
// by the Deployment's replicas.
func kedaProposal(pods []*pod, t time.Duration, target int64, window time.Duration, tol tolerances) (int, float64) {
	total := 0.0
	status := 0
	for _, p := range pods {
		if r, ok := Rate(p.samples, t, window); ok {
			total += r
		}
		if p.alive() {
			status++
		}
	}
	n, per := ExternalPerPodReplicas(status, int64(math.Round(total*1000)), target, tol)
	return n, per / 1000
}

// cpuProposal is the Resource cpu metric through metrics-server: each pod's CPU rate between its
// last two samples, against its request.
func cpuProposal(pods []*pod, t time.Duration, spec int, a Autoscaler, d Delays, tol tolerances) (int, float64, bool) {
	var states []PodState
	for _, p := range pods {
		if !p.alive() {
			continue
		}
		s := PodState{Pending: t < p.ready, Ready: t >= p.ready, Request: a.CPURequest}
		if n := len(p.cpuSamples); n >= 2 {
			last, prev := p.cpuSamples[n-1], p.cpuSamples[n-2]
			s.HasMetric = true
			s.Value = int64(math.Round((last.V - prev.V) / (last.T - prev.T).Seconds() * 1000))
			if t < p.created+d.CPUInitialization {
				s.CPUUnready = !s.Ready || last.T < p.ready+d.MetricsResolution
			}
		}
		states = append(states, s)
	}
	n, util, err := CPUUtilizationReplicas(spec, states, a.CPUTarget, tol)
	if err != nil {
		return 0, 0, false
	}
	return n, util, true
}
