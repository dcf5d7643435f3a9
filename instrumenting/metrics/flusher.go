package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// Flusher publishes the aggregator's counts every interval, so that /metrics serves a snapshot
// no older than one interval while the request path never touches Prometheus. It is a run-group
// actor: Run loops until Stop, and Stop flushes once more, so requests answered before Stop are
// all published.
type Flusher struct {
	agg      *Aggregator
	calls    *CallCounter // the upstream calls'; nil: none
	interval time.Duration
	current  atomic.Pointer[Snapshot]
	flushes  atomic.Uint64
	lastTook atomic.Int64 // nanoseconds
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex // one flush at a time, so snapshots are published in order

	state   sync.Mutex // guards started and stopped, which decide who makes the final flush
	started bool
	stopped bool
}

// NewFlusher returns a flusher that has published one snapshot already: /metrics is complete from
// the first scrape on.
func NewFlusher(agg *Aggregator, interval time.Duration) *Flusher {
	return NewFlusherWithCalls(agg, nil, interval)
}

// NewFlusherWithCalls is NewFlusher for the requests' aggregator and the upstream calls' counter,
// flushed together into one snapshot (its Calls), so both are as of the same moment.
func NewFlusherWithCalls(agg *Aggregator, calls *CallCounter, interval time.Duration) *Flusher {
	f := &Flusher{agg: agg, calls: calls, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	f.Flush()
	return f
}

// Flush publishes a snapshot now.
func (f *Flusher) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	begin := time.Now()
	snap := f.agg.Snapshot()
	if f.calls != nil {
		snap.Calls = f.calls.Snapshot()
	}
	f.current.Store(snap)
	f.lastTook.Store(int64(time.Since(begin)))
	f.flushes.Add(1)
}

// Current returns the last published snapshot.
func (f *Flusher) Current() *Snapshot { return f.current.Load() }

// Run flushes every interval until Stop, then once more. After Stop it returns at once.
func (f *Flusher) Run() error {
	f.state.Lock()
	if f.stopped {
		f.state.Unlock()
		return nil
	}
	f.started = true
	f.state.Unlock()
	defer close(f.done)
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f.Flush()
		case <-f.stop:
			f.Flush()
			return nil
		}
	}
}

// Stop ends Run and returns after its final flush; when Run never started, Stop makes that flush
// itself rather than wait for a loop that will not come. It is the flusher's run-group interrupt,
// and must be called only after the API listener has drained. Calling it again only waits.
func (f *Flusher) Stop() {
	f.state.Lock()
	first, running := !f.stopped, f.started
	f.stopped = true
	f.state.Unlock()
	switch {
	case running:
		if first {
			close(f.stop)
		}
		<-f.done
	case first:
		f.Flush()
	}
}
