package metrics

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
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
	// routes is the label and the cells of each route id, id 0 the catch-all. Register grows it
	// copy-on-write under mu; a request reads it with one atomic load.
	routes    atomic.Pointer[routeTable]
	ids       map[string]int // route id by name; guarded by mu
	maxRoutes int            // Register refuses past this many routes, the catch-all included
	bounds    []int64        // histogram upper bounds in nanoseconds
	buckets   []float64      // the same bounds in seconds, for the exposition
	stride    int            // words per shard in a cell: bucket counts, +Inf, sum, native, padding
	native    *nativeLayout  // nil without native histograms
	zero      int            // with them, the word of a shard that counts the native zero bucket;
	//                        the dense native buckets follow it
	shards int // a power of two
	folded atomic.Uint64
	mu     sync.Mutex // serialises the rare creation of a cell or a route
	// snapshotMu serialises snapshots, which keep what they read of the exemplars in the cells.
	snapshotMu sync.Mutex
	// inFlight is sharded like the cells: a request adds and removes 1 on the same shard.
	inFlight []paddedInt64
}

// routeTable is the aggregator's routes as of one Register: their labels and cells, by id. The
// cells of a route never move, so a table that grows keeps pointing at the same ones.
type routeTable struct {
	names []string
	cells []*[len(instrumenting.Methods)]codeTable
	// cpu is the CPU time each route's requests burned, in nanoseconds: one counter a route, not
	// sharded, since a route that burns adds milliseconds of work to each add.
	cpu []*atomic.Int64
}

// DefaultMaxRoutes bounds the routes an aggregator counts apart, the catch-all included, so that
// reloads that keep adding names cannot grow the series without bound.
const DefaultMaxRoutes = 1024

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
	// exemplars holds the latest sampled request of each bucket (+Inf last), made by the cell's
	// first sampled request: a service that traces nothing pays no memory for them.
	exemplars atomic.Pointer[[]exemplarSlot]
	// overflow counts the native buckets above the dense ones, from hi+1 to top, not sharded: made
	// by the series' first observation there.
	overflow atomic.Pointer[[]atomic.Uint64]
	// published is what the last snapshot read from exemplars, reused while a slot is unchanged so
	// that a flush formats only new trace ids. Guarded by Aggregator.snapshotMu.
	published []Exemplar
}

// Option changes how an aggregator counts.
type Option func(*Aggregator)

// MaxRoutes bounds the routes the aggregator counts apart (the catch-all included): past it, a
// new name is counted under the catch-all. 0 or less: DefaultMaxRoutes.
func MaxRoutes(n int) Option {
	return func(a *Aggregator) {
		if n > 0 {
			a.maxRoutes = n
		}
	}
}

// NativeHistograms, when on, has the aggregator keep native histogram buckets beside the classic
// ones, at a schema chosen for the range of the classic bounds (see native.go).
func NativeHistograms(on bool) Option {
	return func(a *Aggregator) {
		if on {
			a.native = newNativeLayout(a.buckets)
		}
	}
}

// NewAggregator returns an aggregator for the catch-all route other, whose id is 0, and the given
// route names, ids 1 to len(routes); bucketBounds are the histogram's upper bounds in seconds,
// increasing, at least one. Id 0 being the catch-all lets a decorator that knows no route (panic
// recovery) leave the id at its zero value.
func NewAggregator(other string, routes []string, bucketBounds []float64, opts ...Option) *Aggregator {
	a := &Aggregator{
		ids:       make(map[string]int, len(routes)),
		maxRoutes: DefaultMaxRoutes,
		buckets:   append([]float64(nil), bucketBounds...),
		shards:    shardCount(),
	}
	for _, b := range bucketBounds {
		a.bounds = append(a.bounds, nanos(b))
	}
	for _, o := range opts {
		o(a)
	}
	// bucket counts, +Inf, sum, and the native zero and dense buckets; then rounded up to whole
	// cache lines plus one spare line, so that no two shards share a line whatever the alignment
	// of the allocation.
	words := len(a.bounds) + 2
	if a.native != nil {
		a.zero = words
		words += 1 + a.native.hi - a.native.lo + 1
	}
	a.stride = (words+7)/8*8 + 8
	a.inFlight = make([]paddedInt64, a.shards)
	a.routes.Store(&routeTable{names: []string{other}, cells: []*[len(instrumenting.Methods)]codeTable{{}}, cpu: []*atomic.Int64{new(atomic.Int64)}})
	for _, r := range routes {
		a.Register(r)
	}
	return a
}

// Register returns the id of the named route, giving it one if it has none: a reload that brings a
// new route counts it from 0, and a route a reload removed keeps its id and its counts, published
// until the process ends, so that no counter goes down. Past the aggregator's MaxRoutes a new name
// gets 0, the catch-all's id. Callers resolve ids once per route, never per request.
func (a *Aggregator) Register(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.ids[name]; ok {
		return id
	}
	id := a.grow(name)
	if id != 0 {
		a.ids[name] = id
	}
	return id
}

// grow adds a slot labelled name and returns its id, or 0 past maxRoutes. Called under mu.
func (a *Aggregator) grow(name string) int {
	t := a.routes.Load()
	if len(t.names) >= a.maxRoutes {
		return 0
	}
	grown := &routeTable{
		names: append(slices.Clip(t.names), name),
		cells: append(slices.Clip(t.cells), &[len(instrumenting.Methods)]codeTable{}),
		cpu:   append(slices.Clip(t.cpu), new(atomic.Int64)),
	}
	a.routes.Store(grown)
	return len(grown.names) - 1
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

// RouteID returns the id of a registered route, 0 (the catch-all's) for a name that is not.
func (a *Aggregator) RouteID(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[name]
}

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

// AddCPU counts CPU time a request of the route burned (route as in End; out of range, the
// catch-all's).
func (a *Aggregator) AddCPU(route int, d time.Duration) {
	routes := a.routes.Load()
	if route < 0 || route >= len(routes.cpu) {
		route = 0
	}
	routes.cpu[route].Add(int64(d))
}

// End records a finished request: its route id (from RouteID; anything out of range is folded into
// the catch-all and counted), method, status code and duration.
func (a *Aggregator) End(token, route int, method string, code int, d time.Duration) {
	a.end(token, route, method, code, d)
}

// EndSampled is End for a request whose trace was sampled: its trace id becomes the exemplar of
// the request's bucket, replacing the one before, unless that one is less than exemplarGap older.
// at is when the request ended, on the clock of monotonic. It takes no lock: a request that finds
// another writing the same bucket's exemplar leaves it to that one, which is as recent. A trace id
// longer than 32 bytes is not kept.
func (a *Aggregator) EndSampled(token, route int, method string, code int, d, at time.Duration, traceID string) {
	c, i := a.end(token, route, method, code, d)
	slots := c.exemplars.Load()
	if slots == nil {
		fresh := make([]exemplarSlot, len(a.bounds)+1)
		if !c.exemplars.CompareAndSwap(nil, &fresh) {
			slots = c.exemplars.Load()
		} else {
			slots = &fresh
		}
	}
	(*slots)[i].store(traceID, int64(d), int64(at))
}

// end counts the request and returns its cell and bucket.
func (a *Aggregator) end(token, route int, method string, code int, d time.Duration) (*cell, int) {
	a.inFlight[token].Add(-1)
	routes := a.routes.Load()
	if route < 0 || route >= len(routes.cells) {
		route = 0
		a.folded.Add(1)
	}
	c := a.cell(routes.cells[route], instrumenting.MethodIndex(method), code)
	base := token * a.stride
	if a.native != nil {
		a.observeNative(c, base, d) // before the classic bucket: see Snapshot
	}
	i := 0
	for i < len(a.bounds) && int64(d) > a.bounds[i] {
		i++
	}
	c.counts[base+i].Add(1)
	c.counts[base+len(a.bounds)+1].Add(uint64(max(d, 0)))
	return c, i
}

func (a *Aggregator) observeNative(c *cell, base int, d time.Duration) {
	n := a.native
	switch k := n.bucket(d); {
	case k < n.lo:
		c.counts[base+a.zero].Add(1)
	case k <= n.hi:
		c.counts[base+a.zero+1+k-n.lo].Add(1)
	default:
		c.overflowBuckets(n)[k-n.hi-1].Add(1)
	}
}

func (c *cell) overflowBuckets(n *nativeLayout) []atomic.Uint64 {
	if p := c.overflow.Load(); p != nil {
		return *p
	}
	fresh := make([]atomic.Uint64, n.top-n.hi)
	if c.overflow.CompareAndSwap(nil, &fresh) {
		return fresh
	}
	return *c.overflow.Load()
}

func (a *Aggregator) cell(route *[len(instrumenting.Methods)]codeTable, method, code int) *cell {
	t := &route[method]
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
	// ZeroCount and Native are the native histogram's zero bucket and its other buckets that hold
	// an observation, by increasing key; with native histograms only.
	ZeroCount uint64
	Native    []NativeBucket
	// Exemplars holds the latest sampled request per bucket, +Inf last; an empty TraceID marks a
	// bucket without one. Nil when the series never had a sampled request.
	Exemplars []Exemplar
}

// NativeBucket is one bucket of a native histogram: its key under the snapshot's schema, and the
// observations it holds (not cumulative).
type NativeBucket struct {
	Key   int
	Count uint64
}

// Exemplar is a sampled request that fell into a bucket: its trace id, duration and end time.
type Exemplar struct {
	TraceID string
	Value   float64 // seconds
	Time    time.Time
	seq     uint64 // the slot's version this was read from
}

// Latest returns the most recent of the exemplars, and false when there is none.
func Latest(exemplars []Exemplar) (Exemplar, bool) {
	var latest Exemplar
	for _, e := range exemplars {
		if e.TraceID != "" && (latest.TraceID == "" || e.Time.After(latest.Time)) {
			latest = e
		}
	}
	return latest, latest.TraceID != ""
}

// Snapshot is what one flush publishes.
type Snapshot struct {
	Series []Series
	// Calls are the upstream calls' series, when the flusher has their counter.
	Calls  []CallSeries
	Bounds []float64
	// CPU is the CPU time each route's requests burned, for the routes that burned any.
	CPU    []RouteCPU
	Folded uint64
	Taken  time.Time
	Native *NativeSchema // nil without native histograms
}

// RouteCPU is the CPU time a route's requests burned since start.
type RouteCPU struct {
	Route   string
	Seconds float64
}

// NativeSchema is the resolution of the native histograms: bucket k's upper bound is
// 2^(k / 2^Schema) seconds; the zero bucket holds what is at most ZeroThreshold.
type NativeSchema struct {
	Schema        int32
	ZeroThreshold float64
}

// Snapshot reads every cell. It allocates once for the series, once for all their buckets, and
// once each for all their exemplars and native buckets (growing), so its cost grows with the
// number of series, not of requests.
func (a *Aggregator) Snapshot() *Snapshot {
	snap, _ := a.snapshot(false)
	return snap
}

// snapshot is Snapshot, and with withIDs the route id of each series, for a counter that labels
// the slots itself (CallCounter).
func (a *Aggregator) snapshot(withIDs bool) (*Snapshot, []int) {
	a.snapshotMu.Lock()
	defer a.snapshotMu.Unlock()
	var cells []*cell
	var labels []Series
	var ids []int
	routes := a.routes.Load()
	for r, route := range routes.cells {
		for m := range route {
			p := route[m].cells.Load()
			if p == nil {
				continue
			}
			for _, c := range *p {
				cells = append(cells, c)
				labels = append(labels, Series{Route: routes.names[r], Method: instrumenting.Methods[m], Code: c.code})
				if withIDs {
					ids = append(ids, r)
				}
			}
		}
	}
	nb := len(a.bounds)
	flat := make([]uint64, len(cells)*nb)
	var exemplars []Exemplar // copied out of the cells: the next snapshot rewrites theirs
	var native []NativeBucket
	var nativeFrom []int // series k's native buckets are native[nativeFrom[k]:nativeFrom[k+1]]
	if a.native != nil {
		nativeFrom = make([]int, len(cells)+1)
	}
	for _, c := range cells {
		if c.exemplars.Load() != nil {
			exemplars = append(exemplars, make([]Exemplar, nb+1)...)
		}
	}
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
		if a.native != nil {
			a.readNative(c, s, &native)
			nativeFrom[k+1] = len(native)
		}
		if ex := c.readExemplars(); ex != nil && len(exemplars) >= len(ex) {
			s.Exemplars = exemplars[:len(ex):len(ex)]
			copy(s.Exemplars, ex)
			exemplars = exemplars[len(ex):]
		}
	}
	snap := &Snapshot{Series: labels, Bounds: a.buckets, Folded: a.folded.Load(), Taken: time.Now()}
	for r, c := range routes.cpu {
		if n := c.Load(); n > 0 {
			snap.CPU = append(snap.CPU, RouteCPU{Route: routes.names[r], Seconds: float64(n) / float64(time.Second)})
		}
	}
	if a.native != nil {
		snap.Native = &NativeSchema{Schema: a.native.schema, ZeroThreshold: a.native.zeroThreshold}
		for k := range snap.Series { // slices of native, now that it has stopped growing
			s := &snap.Series[k]
			s.Native = native[nativeFrom[k]:nativeFrom[k+1]:nativeFrom[k+1]]
		}
	}
	return snap, ids
}

// readNative reads a cell's native buckets into s, appending them to native, after its classic
// buckets were read. A request counts its native bucket before its classic one, so whatever the
// classic read saw is in the native read: their total becomes the series' count, which no classic
// bucket then exceeds and which equals the native buckets' sum, as Prometheus expects.
func (a *Aggregator) readNative(c *cell, s *Series, native *[]NativeBucket) {
	n := a.native
	dense := n.hi - n.lo + 1
	var total uint64
	for sh := range a.shards {
		s.ZeroCount += c.counts[sh*a.stride+a.zero].Load()
	}
	total += s.ZeroCount
	for i := range dense {
		var count uint64
		for sh := range a.shards {
			count += c.counts[sh*a.stride+a.zero+1+i].Load()
		}
		if count > 0 {
			*native = append(*native, NativeBucket{Key: n.lo + i, Count: count})
			total += count
		}
	}
	if p := c.overflow.Load(); p != nil {
		for i := range *p {
			if count := (*p)[i].Load(); count > 0 {
				*native = append(*native, NativeBucket{Key: n.hi + 1 + i, Count: count})
				total += count
			}
		}
	}
	s.Count = total
}

// readExemplars reads the cell's exemplar slots into c.published, reusing what it read before for
// a slot that has not changed, and returns it; nil when the cell never had a sampled request.
// Called under Aggregator.snapshotMu.
func (c *cell) readExemplars() []Exemplar {
	slots := c.exemplars.Load()
	if slots == nil {
		return nil
	}
	if c.published == nil {
		c.published = make([]Exemplar, len(*slots))
	}
	for i := range *slots {
		if e, ok := (*slots)[i].load(c.published[i].seq); ok {
			c.published[i] = e
		}
	}
	return c.published
}

// exemplarSlot holds one exemplar, written by requests and read by the flusher without a lock: a
// sequence lock whose every field is an atomic, so that a reader that raced a writer sees the
// sequence change and keeps what it had. A writer that finds the slot taken gives up rather than
// wait: the request holding it is as recent.
type exemplarSlot struct {
	seq   atomic.Uint64    // odd while a request writes the slot; 0 until the first one has
	id    [4]atomic.Uint64 // the trace id's bytes, 8 a word
	n     atomic.Uint64    // its length
	value atomic.Int64     // the request's duration in nanoseconds
	at    atomic.Int64     // when it ended, on monotonic's clock
}

const maxTraceID = 32

// exemplarGap is how long an exemplar stays before a later request of its bucket replaces it. Only
// the latest of a flush interval is published; when every request is sampled, writing the slot for
// each would make the cores take its cache line from each other on every request, which costs more
// than the rest of the counting. Reading the slot's time leaves the line shared.
const exemplarGap = int64(time.Millisecond)

func (s *exemplarSlot) store(traceID string, value, at int64) {
	if len(traceID) > maxTraceID {
		return
	}
	seq := s.seq.Load()
	if seq != 0 && at-s.at.Load() < exemplarGap {
		return
	}
	if seq&1 == 1 || !s.seq.CompareAndSwap(seq, seq+1) {
		return
	}
	var w [4]uint64
	for i := range len(traceID) {
		w[i/8] |= uint64(traceID[i]) << (8 * (i % 8))
	}
	for i := range w {
		s.id[i].Store(w[i])
	}
	s.n.Store(uint64(len(traceID)))
	s.value.Store(value)
	s.at.Store(at)
	s.seq.Store(seq + 2)
}

// load reads the slot when it holds an exemplar other than version seen. It gives up, answering
// false, when a writer holds the slot through a few attempts: the next flush reads it.
func (s *exemplarSlot) load(seen uint64) (Exemplar, bool) {
	for range 4 {
		seq := s.seq.Load()
		if seq == seen || seq == 0 {
			return Exemplar{}, false
		}
		if seq&1 == 1 {
			runtime.Gosched()
			continue
		}
		var w [4]uint64
		for i := range w {
			w[i] = s.id[i].Load()
		}
		n, value, at := s.n.Load(), s.value.Load(), s.at.Load()
		if s.seq.Load() != seq {
			continue
		}
		var b [maxTraceID]byte
		for i := range b {
			b[i] = byte(w[i/8] >> (8 * (i % 8)))
		}
		return Exemplar{
			TraceID: string(b[:min(n, maxTraceID)]),
			Value:   time.Duration(value).Seconds(),
			Time:    epoch.Add(time.Duration(at)),
			seq:     seq,
		}, true
	}
	return Exemplar{}, false
}
