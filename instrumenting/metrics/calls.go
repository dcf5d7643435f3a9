package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CallCounter counts upstream calls by the route that made them and the call's name, with the
// call's code and duration. It is a type of its own, labelled by (route, call) pairs, rather than
// a request Aggregator whose route names encode both: the calls have no method, their own bound,
// and the collector labels them without parsing a name. The cells and their sharding are an
// Aggregator's, kept inside, since counting a call costs what counting a request does.
type CallCounter struct {
	cells *Aggregator // slot 0 counts calls past the bound (or never registered)

	mu     sync.Mutex // serialises Register
	ids    map[CallLabels]int
	labels atomic.Pointer[[]CallLabels] // by id, copy-on-write; 0 is the overflow slot's
}

// CallLabels name an upstream call: the route that makes it and its own name.
type CallLabels struct {
	Route, Call string
}

// CallSeries is one published route × call × code combination; Series' Route and Method are unused.
type CallSeries struct {
	CallLabels
	Series Series
}

// NewCallCounter returns a counter of at most maxCalls (route, call) pairs apart, each timed on the
// histogram bounds in seconds; past them a call is counted under the overflow slot, whose labels
// are empty. Size maxCalls from what a config can hold (routes × calls a route), times the
// reloads' headroom, so that every call of a valid config has a slot of its own.
func NewCallCounter(bucketBounds []float64, maxCalls int) *CallCounter {
	c := &CallCounter{
		cells: NewAggregator("", nil, bucketBounds, MaxRoutes(maxCalls+1)),
		ids:   map[CallLabels]int{},
	}
	c.labels.Store(&[]CallLabels{{}})
	return c
}

// Register returns the id of the route's call, giving it one if it has none; past the bound it
// returns 0, the overflow slot. As for routes, a call a reload removes keeps its id and its
// counts, so no counter goes down. Callers resolve ids once per config, never per call.
func (c *CallCounter) Register(route, call string) int {
	key := CallLabels{Route: route, Call: call}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.ids[key]; ok {
		return id
	}
	labels := *c.labels.Load()
	if len(labels) >= c.cells.maxRoutes {
		return 0
	}
	// The labels first, then the slot: a snapshot that sees the slot finds its labels. Only
	// Register grows the cells, so the slot's id is the labels' length before.
	c.labels.Store(new(append(slices.Clip(labels), key)))
	c.cells.mu.Lock()
	id := c.cells.grow("")
	c.cells.mu.Unlock()
	c.ids[key] = id
	return id
}

func (c *CallCounter) begin() int { return c.cells.Begin() }

// end records a finished call under its id (anything out of range is the overflow slot's).
func (c *CallCounter) end(token, id, code int, d time.Duration) {
	c.cells.End(token, id, "", code, d)
}

// endSampled is end for a call of a sampled request: its trace id becomes the exemplar of the
// call's bucket (Aggregator.EndSampled); at is when it ended, on the clock of monotonic.
func (c *CallCounter) endSampled(token, id, code int, d, at time.Duration, traceID string) {
	c.cells.EndSampled(token, id, "", code, d, at, traceID)
}

// Snapshot reads every call's series.
func (c *CallCounter) Snapshot() []CallSeries {
	snap, ids := c.cells.snapshot(true)
	labels := *c.labels.Load() // after: it holds the labels of every slot the snapshot saw
	out := make([]CallSeries, len(snap.Series))
	for k := range snap.Series {
		out[k].Series = snap.Series[k]
		if id := ids[k]; id < len(labels) {
			out[k].CallLabels = labels[id]
		}
	}
	return out
}
