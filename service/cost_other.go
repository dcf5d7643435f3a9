//go:build !linux

package service

import (
	"runtime/debug"
	"time"
)

// Outside Linux the cost's memory is the Go heap's: it is given back when the collector frees it
// and the runtime returns it, which returnToOS forces after the rare large releases (a reload, a
// leak release); per-request memory goes back at the runtime's own pace.

func acquire(n int) []byte {
	if n <= 0 {
		return nil
	}
	return make([]byte, n)
}

func reserve(n int) []byte { return acquire(n) }

func release([]byte) {}

func returnToOS() { debug.FreeOSMemory() }

// burn spends about d on the calling goroutine, by the wall clock: there is no portable thread CPU
// clock, so on a busy machine it burns less CPU than d.
func burn(d time.Duration) time.Duration { return spinWall(d) }
