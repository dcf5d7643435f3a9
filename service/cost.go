package service

import (
	"sync"
	"sync/atomic"
	"time"
)

// Leak is the process's bounded per-request leak: every request answered keeps PerRequest bytes,
// written so that they are resident, until Max bytes are kept; Router.ReleaseLeak, or a table
// whose leak differs, gives them back. The zero Leak keeps nothing.
type Leak struct {
	PerRequest int64
	Max        int64
}

// MemoryStats is what the service holds now, in bytes: per-request memory of the requests being
// answered, the steady resident allocation, and the leak.
type MemoryStats struct {
	Held, Resident, Leaked int64
}

// memory is the process-level memory a Router holds across its tables: the resident block and the
// leak arena, which a reload adjusts, and the count of bytes held by requests in flight.
type memory struct {
	held atomic.Int64

	mu           sync.Mutex // serialises changes of the resident block and of the leak's settings
	resident     []byte
	residentWant int64 // what was asked; resident may hold less if the kernel refused it
	residentSize atomic.Int64

	// The leak arena is reserved whole (Max bytes, not resident until written); requests write
	// their share at the cursor under the read lock, and a release takes the write lock to unmap
	// it, so that no request writes into memory given back.
	arenaMu sync.RWMutex
	arena   []byte
	leak    Leak
	cursor  atomic.Int64
}

// setResident makes the resident block n bytes, every page written; the old block is given back
// first, so a change never holds both.
func (m *memory) setResident(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.residentWant == n {
		return
	}
	m.residentWant = n
	if m.resident != nil {
		release(m.resident)
		m.resident = nil
		m.residentSize.Store(0)
		returnToOS()
	}
	if n > 0 {
		m.resident = acquire(int(n))
		touch(m.resident)
		m.residentSize.Store(int64(len(m.resident)))
	}
}

// setLeak applies a leak's settings: the same ones keep what was leaked, other ones (or none)
// give it back and start again.
func (m *memory) setLeak(l Leak) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.PerRequest <= 0 || l.Max <= 0 {
		l = Leak{}
	}
	if l == m.leak {
		return
	}
	m.arenaMu.Lock()
	defer m.arenaMu.Unlock()
	m.releaseArena()
	m.leak = l
	if l.PerRequest > 0 {
		m.arena = reserve(int(l.Max))
	}
}

// releaseLeak gives back what the leak kept, keeps its settings, and returns the bytes released.
func (m *memory) releaseLeak() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.arenaMu.Lock()
	defer m.arenaMu.Unlock()
	n := m.leaked()
	m.releaseArena()
	if m.leak.PerRequest > 0 {
		m.arena = reserve(int(m.leak.Max))
	}
	return n
}

// releaseArena unmaps the arena; arenaMu held for writing.
func (m *memory) releaseArena() {
	if m.arena != nil {
		release(m.arena)
		m.arena = nil
		returnToOS()
	}
	m.cursor.Store(0)
}

// leakOne keeps one request's share, unless the leak is at its cap.
func (m *memory) leakOne() {
	m.arenaMu.RLock()
	defer m.arenaMu.RUnlock()
	size := int64(len(m.arena))
	if size == 0 || m.cursor.Load() >= size {
		return
	}
	end := m.cursor.Add(m.leak.PerRequest)
	begin := end - m.leak.PerRequest
	if begin >= size {
		return
	}
	touch(m.arena[begin:min(end, size)])
}

// leaked is the bytes the leak keeps now.
func (m *memory) leaked() int64 {
	return min(m.cursor.Load(), int64(len(m.arena)))
}

// stats reads the three amounts; the leak's under its lock, since a release may be swapping it.
func (m *memory) stats() MemoryStats {
	m.arenaMu.RLock()
	leaked := m.leaked()
	m.arenaMu.RUnlock()
	return MemoryStats{Held: m.held.Load(), Resident: m.residentSize.Load(), Leaked: leaked}
}

// hold allocates n bytes for a request, every page written so they are resident, and counts them
// held until drop.
func (m *memory) hold(n int64) []byte {
	b := acquire(int(n))
	touch(b)
	m.held.Add(int64(len(b)))
	return b
}

func (m *memory) drop(b []byte) {
	if b == nil {
		return
	}
	m.held.Add(-int64(len(b)))
	release(b)
}

// pageSize is the stride touch writes at: one byte a page makes the page resident.
const pageSize = 4096

// touch writes every page of b (its first and last byte included), so the kernel backs it with
// memory: allocated but unwritten pages cost nothing resident.
func touch(b []byte) {
	for i := 0; i < len(b); i += pageSize {
		b[i] = 1
	}
	if len(b) > 0 {
		b[len(b)-1] = 1
	}
}

// burnSink keeps the burn's arithmetic from being optimised away.
var burnSink atomic.Uint64

// spin does a few microseconds of arithmetic a compiler cannot drop (xorshift rounds whose result
// is kept), between two reads of the clock.
func spin(x uint64) uint64 {
	for range 2048 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// spinWall burns for d of wall time: the fallback where no thread CPU clock can be read. On a busy
// machine it burns less CPU than d, since the thread is not always running.
func spinWall(d time.Duration) time.Duration {
	x := uint64(0x9e3779b97f4a7c15)
	begin := time.Now()
	for {
		x = spin(x)
		if used := time.Since(begin); used >= d {
			burnSink.Store(x)
			return used
		}
	}
}
