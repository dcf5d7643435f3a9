package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultMemoryLimitRatio is the share of the container's memory limit given to the Go runtime as
// its soft limit (GOMEMLIMIT) when GOMEMLIMIT is not set: the rest is headroom for what the runtime
// does not count (the binary's mapped pages, thread stacks outside the heap, the kernel's socket
// buffers charged to the cgroup). Near the limit the collector then runs as often as it must to
// stay under it, where without a soft limit the heap grows to twice its live size and the kernel's
// OOM killer ends the process first.
const defaultMemoryLimitRatio = 0.9

// memoryLimit is what applyMemoryLimit decided, for the start-up log line.
type memoryLimit struct {
	source  string // "GOMEMLIMIT", "cgroup v2 FILE", "cgroup v1 FILE", or "" for none
	cgroup  int64  // the cgroup's limit in bytes; 0 when none was read
	applied int64  // the soft limit set by applyMemoryLimit; 0 when it set none
}

// applyMemoryLimit sets the Go runtime's soft memory limit to ratio × the memory limit of the
// process's cgroup, read under root ("/" outside tests), unless the GOMEMLIMIT environment
// variable is set (the runtime has applied it: an explicit setting always wins) or ratio is 0
// (off). No limit (cgroup v2's "max", v1's near-2^63 "unlimited"), no cgroup file or an unreadable
// one leave the runtime's default, no soft limit.
func applyMemoryLimit(root string, ratio float64, getenv func(string) string) memoryLimit {
	if getenv("GOMEMLIMIT") != "" {
		return memoryLimit{source: "GOMEMLIMIT"}
	}
	if ratio <= 0 {
		return memoryLimit{}
	}
	limit, source := cgroupMemoryLimit(root)
	if limit <= 0 {
		return memoryLimit{}
	}
	soft := int64(float64(limit) * ratio)
	debug.SetMemoryLimit(soft)
	return memoryLimit{source: source, cgroup: limit, applied: soft}
}

// cgroupMemoryLimit is the memory limit of the process's cgroup in bytes and the file it was read
// from, or 0: cgroup v2's memory.max, else v1's memory.limit_in_bytes. The cgroup's path comes from
// /proc/self/cgroup; inside a container with its own cgroup namespace that path is "/" and the
// files are at the mount's root, which is also the fallback when the path's directory is not
// mounted (a host cgroup path seen from a container without a cgroup namespace).
func cgroupMemoryLimit(root string) (int64, string) {
	self, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, ""
	}
	v2, v1 := cgroupPaths(self)
	if v2 != "" {
		for _, dir := range []string{v2, "/"} {
			file := filepath.Join(root, "sys/fs/cgroup", dir, "memory.max")
			if n, ok := readLimit(file); ok {
				return n, "cgroup v2 " + file
			}
		}
	}
	if v1 != "" {
		for _, dir := range []string{v1, "/"} {
			file := filepath.Join(root, "sys/fs/cgroup/memory", dir, "memory.limit_in_bytes")
			if n, ok := readLimit(file); ok {
				return n, "cgroup v1 " + file
			}
		}
	}
	return 0, ""
}

// cgroupPaths reads /proc/self/cgroup: the unified hierarchy's path ("0::/path") and the v1 memory
// controller's ("N:memory:/path", the controller possibly among others: "N:cpu,memory:/path").
func cgroupPaths(self []byte) (v2, v1 string) {
	s := bufio.NewScanner(bytes.NewReader(self))
	for s.Scan() {
		f := strings.SplitN(s.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			v2 = f[2]
		case strings.Contains(","+f[1]+",", ",memory,"):
			v1 = f[2]
		}
	}
	return v2, v1
}

// readLimit reads a limit file: a number of bytes, true; "max", v1's "unlimited" (the page-rounded
// largest int64) or anything unreadable, false.
func readLimit(file string) (int64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0, false
	}
	return n, true
}

// parseMemoryLimitRatio reads -memory.limit-ratio: 0 (off) or a share in (0, 1].
func parseMemoryLimitRatio(s string) (float64, error) {
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
		return 0, fmt.Errorf("-memory.limit-ratio (or ANYROUTE_MEMORY_LIMIT_RATIO) %q: want 0 (off) or a share of the cgroup's memory limit in (0, 1], such as 0.9", s)
	}
	return r, nil
}
