//go:build !unix

package main

// fdLimit reports no limit: windows has no per-process file descriptor limit to keep under.
func fdLimit() (uint64, bool) { return 0, false }
