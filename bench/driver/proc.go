package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// clockTick is the unit of /proc/PID/stat's times: USER_HZ, 100 on every Linux the project
// builds for; getconf says otherwise where it differs.
var clockTick = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if v, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && perr == nil && v > 0 {
		return v
	}
	return 100
}()

// cpuSeconds is the CPU time the process has used, user and system, all its threads: utime +
// stime of /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/PID/stat line, counting
// from after the command name, which may hold spaces and parentheses.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q, stime %q", f[11], f[12])
	}
	return (u + s) / clockTick, nil
}

// rssMiB is the process's resident set (VmRSS), in MiB.
func rssMiB(pid int) (float64, error) {
	m, err := residentMiB(pid)
	return m.total, err
}

// resident is a process's resident set in MiB: the whole (VmRSS) and its anonymous (RssAnon:
// heap, stacks, the runtime's own) and file-backed parts (RssFile: the binary's pages and the
// shared libraries' that it touched, which the kernel maps in blocks around each touch).
type resident struct{ total, anon, file float64 }

// residentMiB reads VmRSS, RssAnon and RssFile from /proc/PID/status.
func residentMiB(pid int) (resident, error) {
	r := resident{total: nan(), anon: nan(), file: nan()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return r, err
	}
	r, err = parseStatusRSS(b)
	return r, err
}

// parseStatusRSS reads the resident-set lines of a /proc/PID/status; VmRSS is required.
func parseStatusRSS(b []byte) (resident, error) {
	r := resident{total: nan(), anon: nan(), file: nan()}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var into *float64
		switch k {
		case "VmRSS":
			into = &r.total
		case "RssAnon":
			into = &r.anon
		case "RssFile":
			into = &r.file
		default:
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return r, fmt.Errorf("status: %s %q", k, v)
		}
		*into = kb / 1024
	}
	if math.IsNaN(r.total) {
		return r, fmt.Errorf("status: no VmRSS")
	}
	return r, nil
}

// syscalls is the read and write system calls the process has made (syscr + syscw of
// /proc/PID/io): on sockets Go reads and writes with read(2) and write(2), so per request they
// count its I/O calls; epoll and futex calls are not in them. -1 when the file is unreadable.
func syscalls(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	var n float64
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return -1
		}
		n += x
		found++
	}
	if found != 2 {
		return -1
	}
	return n
}

// established counts the TCP connections in state ESTABLISHED whose local port is port, in this
// network namespace: a server's accepted connections on its listening port.
func established(port int) int {
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		n += countEstablished(b, port)
	}
	return n
}

// countEstablished counts, in a /proc/net/tcp table, the rows with that local port in state 01.
func countEstablished(table []byte, port int) int {
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for i, line := range strings.Split(string(table), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 4 {
			continue
		}
		if strings.HasSuffix(f[1], want) && f[3] == "01" {
			n++
		}
	}
	return n
}

// loadAverage is the 1, 5 and 15 minute load averages as /proc/loadavg gives them.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the first processor's model name.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
