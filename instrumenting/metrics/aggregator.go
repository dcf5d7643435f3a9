package metrics

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anyroute/anyroute/instrumenting"
)

// Aggregator counts requests in memory, cheaply enough for the request path: an observation is a
// few atomic adds into a slot resolved without locks or allocation. Slots are sharded, so that
// concurrent requests on different cores rarely write the same cache line. Counters are
// cumulative, so a snapshot never loses or double-counts an observation, however the reads
// interleave with the writes.
type Aggregator struct {
	routes  []string       // route label of each route id; id 0 is the catch-all
	ids     map[string]int // route id by name
	bounds  []int64        // histogram upper bounds in nanoseconds
	buckets []float64      // the same bounds in seconds, for the exposition
	stride  int            // words per shard in a cell: bucket counts, +Inf, sum, padding
	shards  int            // a power of two
	cells   [][len(instrumenting.Methods)]codeTable
	folded  atomic.Uint64
	mu      sync.Mutex // serialises the rare creation of a cell
	// inFlight is sharded like the cells: a request adds and removes 1 on the same shard.
	inFlight []paddedInt64
}

type paddedInt64 struct {
	atomic.Int64
	_ [56]byte
}

// codeTable holds the cells of one route and method, one per status code seen. Requests read it
// with one atomic load; a new code copies the slice under the aggregator's lock.
type codeTable struct {
	cells atomic.Pointer[[]*cell]
}

type cell struct {
	code   int
	counts []atomic.Uint64 // shards × stride
}

// NewAggregator returns an aggregator for the catch-all route other, whose id is 0, and the given
// route names, ids 1 to len(routes); bucketBounds are the histogram's upper bounds in seconds,
// increasing. Id 0 being the catch-all lets a decorator that knows no route (panic recovery) leave
// the id at its zero value.
func NewAggregator(other string, routes []string, bucketBounds []float64) *Aggregator {
	a := &Aggregator{
		routes:  append([]string{other}, routes...),
		ids:     make(map[string]int, len(routes)),
		buckets: append([]float64(nil), bucketBounds...),
		shards:  shardCount(),
	}
	for i, r := range routes {
		a.ids[r] = i + 1
	}
	for _, b := range bucketBounds {
		a.bounds = append(a.bounds, nanos(b))
	}
	// bucket counts, +Inf, sum; then rounded up to whole cache lines plus one spare line, so that
	// no two shards share a line whatever the alignment of the allocation.
	words := len(a.bounds) + 2
	a.stride = (words+7)/8*8 + 8
	a.cells = make([][len(instrumenting.Methods)]codeTable, len(a.routes))
	a.inFlight = make([]paddedInt64, a.shards)
	return a
}

// shardCount gives each core a few shards: a random shard then seldom collides with another core.
func shardCount() int {
	n := 1
	for n < 4*runtime.GOMAXPROCS(0) {
		n <<= 1
	}
	return min(n, 64)
}

// nanos converts a bound in seconds to nanoseconds, saturating: a bound past 292 years would
// otherwise wrap negative and send every observation to +Inf.
func nanos(seconds float64) int64 {
	if seconds >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return int64(seconds * float64(time.Second))
}

// RouteID returns the id to record a request of the named route under: 0, the catch-all, for a
// name the aggregator was not given. Callers resolve it once per route, never per request.
func (a *Aggregator) RouteID(name string) int { return a.ids[name] }

func (a *Aggregator) shard() int { return int(rand.Uint32()) & (a.shards - 1) }

// Begin marks a request in flight and returns the token to pass to End.
func (a *Aggregator) Begin() int {
	s := a.shard()
	a.inFlight[s].Add(1)
	return s
}

// InFlight returns the number of requests between Begin and End.
func (a *Aggregator) InFlight() int64 {
	var n int64
	for i := range a.inFlight {
		n += a.inFlight[i].Load()
	}
	return n
}

// End records a finished request: its route id (from RouteID; anything out of range is folded into
// the catch-all and counted), method, status code and duration.
func (a *Aggregator) End(token, route int, method string, code int, d time.Duration) {
	a.inFlight[token].Add(-1)
	if route < 0 || route >= len(a.routes) {
		route = 0
		a.folded.Add(1)
	}
	c := a.cell(route, instrumenting.MethodIndex(method), code)
	i := 0
	for i < len(a.bounds) && int64(d) > a.bounds[i] {
		i++
	}
	base := token * a.stride
	c.counts[base+i].Add(1)
	c.counts[base+len(a.bounds)+1].Add(uint64(max(d, 0)))
}

func (a *Aggregator) cell(route, method, code int) *cell {
	t := &a.cells[route][method]
	if cs := t.cells.Load(); cs != nil {
		for _, c := range *cs {
			if c.code == code {
				return c
			}
		}
	}
	return a.newCell(t, code)
}

func (a *Aggregator) newCell(t *codeTable, code int) *cell {
	a.mu.Lock()
	defer a.mu.Unlock()
	var cs []*cell
	if p := t.cells.Load(); p != nil {
		cs = *p
	}
	for _, c := range cs {
		if c.code == code {
			return c // another request created it meanwhile
		}
	}
	c := &cell{code: code, counts: make([]atomic.Uint64, a.shards*a.stride)}
	grown := append(append(make([]*cell, 0, len(cs)+1), cs...), c)
	t.cells.Store(&grown)
	return c
}

// Series is one published route × method × code combination.
type Series struct {
	Route, Method string
	Code          int
	Count         uint64   // requests, the +Inf bucket; never less than any of Buckets
	Sum           float64  // seconds
	Buckets       []uint64 // cumulative counts per upper bound, as Prometheus exposes them
}

// Snapshot is what one flush publishes.
type Snapshot struct {
	Series []Series
	Bounds []float64
	Folded uint64
	Taken  time.Time
}

// Snapshot reads every cell. It allocates once for the series and once for all their buckets, so
// its cost grows with the number of series, not of requests.
func (a *Aggregator) Snapshot() *Snapshot {
	var cells []*cell
	var labels []Series
	for r := range a.cells {
		for m := range a.cells[r] {
			p := a.cells[r][m].cells.Load()
			if p == nil {
				continue
			}
			for _, c := range *p {
				cells = append(cells, c)
				labels = append(labels, Series{Route: a.routes[r], Method: instrumenting.Methods[m], Code: c.code})
			}
		}
	}
	nb := len(a.bounds)
	flat := make([]uint64, len(cells)*nb)
	for k, c := range cells {
		s := &labels[k]
		s.Buckets = flat[k*nb : (k+1)*nb : (k+1)*nb]
		var sumNanos uint64
		for sh := range a.shards {
			base := sh * a.stride
			for i := range nb {
				s.Buckets[i] += c.counts[base+i].Load()
			}
			s.Count += c.counts[base+nb].Load() // +Inf bucket, cumulated below
			sumNanos += c.counts[base+nb+1].Load()
		}
		for i := 1; i < nb; i++ {
			s.Buckets[i] += s.Buckets[i-1]
		}
		if nb > 0 {
			s.Count += s.Buckets[nb-1]
		}
		s.Sum = float64(sumNanos) / float64(time.Second)
	}
	return &Snapshot{Series: labels, Bounds: a.buckets, Folded: a.folded.Load(), Taken: time.Now()}
}
