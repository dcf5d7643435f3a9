//go:build unix

package main

import "syscall"

// fdLimit returns the process's soft limit on open files.
func fdLimit() (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return uint64(lim.Cur), true //nolint:unconvert // int64 on some unix systems
}
