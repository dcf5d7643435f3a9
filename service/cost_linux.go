package service

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux the cost's memory is mapped outside the Go heap: what a request holds is resident from
// its first write to its unmapping, exactly, whatever the garbage collector's pacing, and given
// back to the kernel the moment it is released, so RSS follows the configured amounts.

// acquire maps n bytes of anonymous memory (not resident until written). When the kernel refuses,
// it returns nil, and the cost holds nothing (the gauges, which count what is held, say so): the
// Go heap would not refuse, it would end the process.
func acquire(n int) []byte { return mmap(n, 0) }

// reserve maps the leak's arena, which requests fill a share at a time: without a reservation of
// swap space, since most of it may never be written.
func reserve(n int) []byte { return mmap(n, unix.MAP_NORESERVE) }

func mmap(n, flags int) []byte {
	if n <= 0 {
		return nil
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|flags)
	if err != nil {
		return nil
	}
	return b
}

// release unmaps b, giving its pages back at once.
func release(b []byte) {
	if len(b) > 0 {
		_ = unix.Munmap(b)
	}
}

// returnToOS has nothing to do: unmapped memory is already given back.
func returnToOS() {}

// burn spends d of CPU time on the calling goroutine and returns what it spent, as the thread's
// CPU clock measured it. The goroutine is locked to its thread meanwhile, so the clock is the one
// of the thread doing the work; time the thread waits for a core (other processes, other
// goroutines) is not counted, so the CPU burned is d on a loaded machine too, only slower.
func burn(d time.Duration) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	begin, ok := threadCPU()
	if !ok {
		return spinWall(d)
	}
	x := uint64(0x9e3779b97f4a7c15)
	for {
		x = spin(x)
		now, _ := threadCPU()
		if used := now - begin; used >= d {
			burnSink.Store(x)
			return used
		}
	}
}

// threadCPU reads the calling thread's CPU clock.
func threadCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
