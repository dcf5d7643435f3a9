package predict

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// SVG geometry: a column of panels sharing the time axis.
const (
	svgWidth  = 900.0
	svgLeft   = 215.0 // room for the panels' and the alerts' names
	svgRight  = 20.0
	panelH    = 90.0
	panelGap  = 28.0
	laneH     = 18.0
	svgTop    = 58.0
	axisSpace = 30.0
)

// observedColor draws a live run's readings over the prediction.
const observedColor = "#222"

// WriteSVG draws the prediction: the offered load, the metric the HPA read against its target,
// the replicas and Ready pods, and each alert's pending and firing stretches, on one time axis.
func (p Prediction) WriteSVG(w io.Writer) error { return p.WriteSVGObserved(w, nil) }

// WriteSVGObserved draws the prediction with a live run's readings over it (anyroute doctor
// -svg): the achieved rate, the metric the HPA read, its desired replicas and the Ready pods,
// each where it was read, in black over the predicted colours. Readings past the prediction's end
// are left out.
func (p Prediction) WriteSVGObserved(w io.Writer, obs []Observed) error {
	tl := p.Timeline
	end := tl.End
	plotW := svgWidth - svgLeft - svgRight
	x := func(t time.Duration) float64 { return svgLeft + plotW*float64(t)/float64(end) }
	panels := 3
	height := svgTop + float64(panels)*(panelH+panelGap) + float64(len(p.Alerts))*laneH + axisSpace + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="13" font-weight="bold">anyroute predict: %s path, %s against %s</text>`+"\n",
		svgLeft, tl.Path, escape(tl.MetricName), num(tl.Target))
	var seen []Observed
	for _, o := range obs {
		if o.T >= 0 && o.T <= end {
			seen = append(seen, o)
		}
	}
	if len(seen) > 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="36" fill="%s">dots: the live run, %d readings (Ready hollow)</text>`+"\n", svgLeft, observedColor, len(seen))
	}
	observed := func(value func(Observed) (float64, bool)) []point {
		var pts []point
		for _, o := range seen {
			v, ok := value(o)
			pts = append(pts, point{o.T, v, ok})
		}
		return pts
	}

	top := svgTop
	// Load.
	maxRate := 0.0
	for _, r := range tl.Rows {
		maxRate = max(maxRate, r.Rate)
	}
	for _, o := range seen {
		if o.HasRate {
			maxRate = max(maxRate, o.Rate)
		}
	}
	var rate []point
	for t := time.Duration(0); t <= end; t += end / 600 {
		rate = append(rate, point{t, p.Load.RateAt(t), true})
	}
	for i, ph := range p.Phases {
		if ph.Start >= end {
			break
		}
		stop := min(ph.End, end)
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="#eef3fb"/>`+"\n", x(ph.Start), top, x(stop)-x(ph.Start), panelH)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="9" fill="#555">%s</text>`+"\n", x(ph.Start)+2, top+panelH-4-float64(i%2)*11, escape(ph.Name))
	}
	panel(&b, top, "offered load (req/s); the scenario's phases", niceMax(maxRate))
	polyline(&b, rate, x, top, niceMax(maxRate), "#1f77b4", "")
	dots(&b, observed(func(o Observed) (float64, bool) { return o.Rate, o.HasRate }), x, top, niceMax(maxRate), true)
	top += panelH + panelGap

	// The metric against its target.
	maxM := tl.Target * 1.5
	var metric []point
	for _, r := range tl.Rows {
		metric = append(metric, point{r.T, r.Metric, r.HasValue})
		if r.HasValue {
			maxM = max(maxM, r.Metric)
		}
	}
	for _, o := range seen {
		if o.HasMetric {
			maxM = max(maxM, o.Metric)
		}
	}
	maxM = niceMax(maxM)
	panel(&b, top, escape(tl.MetricName)+" (HPA)", maxM)
	polyline(&b, []point{{0, tl.Target, true}, {end, tl.Target, true}}, x, top, maxM, "#888", `stroke-dasharray="4 3"`)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#888" text-anchor="end">target %s</text>`+"\n", svgWidth-svgRight-2, yOf(tl.Target, top, maxM)-3, num(tl.Target))
	polyline(&b, metric, x, top, maxM, "#ff7f0e", "")
	dots(&b, observed(func(o Observed) (float64, bool) { return o.Metric, o.HasMetric }), x, top, maxM, true)
	top += panelH + panelGap

	// Replicas and Ready pods, as steps.
	maxR := 0
	var replicas, ready []point
	for _, r := range tl.Rows {
		maxR = max(maxR, r.Replicas, r.Ready)
		replicas = append(replicas, point{r.T, float64(r.Replicas), true})
		ready = append(ready, point{r.T, float64(r.Ready), true})
	}
	for _, o := range seen {
		maxR = max(maxR, o.Replicas, o.Ready)
	}
	rmax := float64(maxR + 1)
	panel(&b, top, "replicas (solid), Ready (dotted)", rmax)
	polyline(&b, steps(replicas, end), x, top, rmax, "#2ca02c", "")
	polyline(&b, steps(ready, end), x, top, rmax, "#2ca02c", `stroke-dasharray="2 2" stroke-opacity="0.7"`)
	// A count not read (-1: the doctor reads the HPA now only) has no dot.
	dots(&b, observed(func(o Observed) (float64, bool) { return float64(o.Replicas), o.Replicas >= 0 }), x, top, rmax, true)
	dots(&b, observed(func(o Observed) (float64, bool) { return float64(o.Ready), o.Ready >= 0 }), x, top, rmax, false)
	top += panelH + panelGap

	// Alerts: a lane each.
	for i, a := range p.Alerts {
		y := top + float64(i)*laneH
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-6, y+laneH*0.7, a.Rule.Name)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f4f4f4"/>`+"\n", svgLeft, y+2, plotW, laneH-4)
		for _, e := range a.Episodes {
			stop := e.Resolved
			if stop < 0 {
				stop = end
			}
			fire := e.Firing
			if fire < 0 {
				fire = stop
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f5b642"><title>pending</title></rect>`+"\n", x(e.Pending), y+2, x(fire)-x(e.Pending), laneH-4)
			if e.Firing >= 0 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#d62728"><title>firing</title></rect>`+"\n", x(fire), y+2, x(stop)-x(fire), laneH-4)
			}
		}
	}
	top += float64(len(p.Alerts)) * laneH
	if len(p.Alerts) > 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" fill="#f5b642">■ pending</text><text x="%.0f" y="%.1f" fill="#d62728">■ firing</text>`+"\n",
			svgLeft, svgTop+3*(panelH+panelGap)-8, svgLeft+70, svgTop+3*(panelH+panelGap)-8)
	}
	// The time axis.
	tick := axisTick(end)
	for t := time.Duration(0); t <= end; t += tick {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", x(t), x(t), svgTop, top)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(t), top+14, axisLabel(t))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">time from the start of the load</text>`+"\n", svgLeft+plotW/2, top+28)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type point struct {
	t  time.Duration
	v  float64
	ok bool
}

func yOf(v, top, vmax float64) float64 { return top + panelH - panelH*min(v, vmax)/vmax }

func panel(b *strings.Builder, top float64, title string, vmax float64) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-weight="bold">%s</text>`+"\n", svgLeft, top-6, title)
	fmt.Fprintf(b, `<rect x="%.0f" y="%.1f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`+"\n", svgLeft, top, svgWidth-svgLeft-svgRight, panelH)
	fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-6, top+10, num(vmax))
	fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">0</text>`+"\n", svgLeft-6, top+panelH)
}

// polyline draws the points, broken where a point has no value.
func polyline(b *strings.Builder, pts []point, x func(time.Duration) float64, top, vmax float64, color, extra string) {
	var run []string
	flush := func() {
		if len(run) > 0 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" %s points="%s"/>`+"\n", color, extra, strings.Join(run, " "))
		}
		run = nil
	}
	for _, p := range pts {
		if !p.ok {
			flush()
			continue
		}
		run = append(run, fmt.Sprintf("%.1f,%.1f", x(p.t), yOf(p.v, top, vmax)))
	}
	flush()
}

// dots draws each reading that has a value as a dot, filled or hollow: readings are samples of
// the live chain, with gaps where a link was not read.
func dots(b *strings.Builder, pts []point, x func(time.Duration) float64, top, vmax float64, filled bool) {
	fill := observedColor
	if !filled {
		fill = "none"
	}
	for _, p := range pts {
		if p.ok {
			fmt.Fprintf(b, `<circle class="observed" cx="%.1f" cy="%.1f" r="1.8" fill="%s" stroke="%s"/>`+"\n", x(p.t), yOf(p.v, top, vmax), fill, observedColor)
		}
	}
}

// steps turns samples into a step line that holds each value until the next.
func steps(pts []point, end time.Duration) []point {
	var out []point
	for i, p := range pts {
		out = append(out, p)
		next := end
		if i+1 < len(pts) {
			next = pts[i+1].t
		}
		out = append(out, point{next, p.v, true})
	}
	return out
}

func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func axisTick(end time.Duration) time.Duration {
	for _, t := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour} {
		if end/t <= 14 {
			return t
		}
	}
	return 2 * time.Hour
}

func axisLabel(t time.Duration) string {
	if t%time.Minute == 0 {
		return fmt.Sprintf("%dm", int(t.Minutes()))
	}
	return fmt.Sprintf("%.1fm", t.Minutes())
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
