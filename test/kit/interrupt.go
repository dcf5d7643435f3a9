package kit

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts holds what must be undone if the test binary is interrupted: the ordinary cleanups
// of a test do not run when a signal ends the binary.
var interrupts struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// OnInterrupt registers fn to run if the test binary gets SIGINT, SIGTERM or SIGHUP after
// CleanUpOnInterrupt, and returns the function that unregisters it. Every process Start starts
// is registered to be killed.
func OnInterrupt(fn func()) (unregister func()) {
	interrupts.Lock()
	defer interrupts.Unlock()
	if interrupts.fns == nil {
		interrupts.fns = map[int]func(){}
	}
	id := interrupts.next
	interrupts.next++
	interrupts.fns[id] = fn
	return func() {
		interrupts.Lock()
		defer interrupts.Unlock()
		delete(interrupts.fns, id)
	}
}

// CleanUpOnInterrupt makes an interrupted test binary run what OnInterrupt registered, newest
// first, and exit 2. A TestMain calls it; who names the binary in the message.
func CleanUpOnInterrupt(who string) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "%s: %v: cleaning up\n", who, sig)
		runInterruptCleanups()
		os.Exit(2)
	}()
}

func runInterruptCleanups() {
	interrupts.Lock()
	defer interrupts.Unlock()
	for id := interrupts.next - 1; id >= 0; id-- {
		if fn, ok := interrupts.fns[id]; ok {
			fn()
		}
	}
	interrupts.fns = nil
}
