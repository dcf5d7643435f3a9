package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// fakeRoot lays out a root with /proc/self/cgroup and the given files (paths relative to root).
func fakeRoot(t *testing.T, self string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	all := map[string]string{"proc/self/cgroup": self}
	for k, v := range files {
		all[k] = v
	}
	for name, body := range all {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// keepMemoryLimit restores the runtime's soft limit after a test that sets it.
func keepMemoryLimit(t *testing.T) {
	was := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(was) })
}

// TestCgroupMemoryLimit: the limit is read from cgroup v2's memory.max or v1's
// memory.limit_in_bytes, at the process's cgroup path or at the mount's root; no limit reads as 0.
func TestCgroupMemoryLimit(t *testing.T) {
	const v1Unlimited = "9223372036854771712\n"
	for _, tc := range []struct {
		name  string
		self  string
		files map[string]string
		want  int64
		from  string // the file's path under root
	}{
		{"v2 in a cgroup namespace", "0::/\n", map[string]string{"sys/fs/cgroup/memory.max": "134217728\n"}, 134217728, "sys/fs/cgroup/memory.max"},
		{"v2 at the process's path", "0::/kubepods/pod1/c1\n", map[string]string{
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "268435456\n",
			"sys/fs/cgroup/memory.max":                  "max\n",
		}, 268435456, "sys/fs/cgroup/kubepods/pod1/c1/memory.max"},
		{"v2 path not mounted: the root's", "0::/host/slice\n", map[string]string{"sys/fs/cgroup/memory.max": "67108864"}, 67108864, "sys/fs/cgroup/memory.max"},
		{"v2 max", "0::/\n", map[string]string{"sys/fs/cgroup/memory.max": "max\n"}, 0, ""},
		{"v1", "12:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n1:name=systemd:/docker/abc\n", map[string]string{
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "536870912\n",
		}, 536870912, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"},
		{"v1 among other controllers, namespaced", "4:memory,hugetlb:/\n", map[string]string{
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "104857600",
		}, 104857600, "sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"v1 unlimited", "9:memory:/\n", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": v1Unlimited}, 0, ""},
		{"hybrid: v2 has no memory controller, v1 has the limit", "0::/x\n9:memory:/x\n", map[string]string{
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": "33554432",
		}, 33554432, "sys/fs/cgroup/memory/x/memory.limit_in_bytes"},
		{"garbage", "0::/\n", map[string]string{"sys/fs/cgroup/memory.max": "lots\n"}, 0, ""},
		{"no cgroup files", "0::/\n", nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t, tc.self, tc.files)
			got, from := cgroupMemoryLimit(root)
			if got != tc.want {
				t.Fatalf("limit %d, want %d (from %q)", got, tc.want, from)
			}
			if tc.from != "" && !strings.HasSuffix(from, filepath.Join(root, tc.from)) {
				t.Errorf("read from %q, want %s", from, tc.from)
			}
		})
	}
	if got, _ := cgroupMemoryLimit(t.TempDir()); got != 0 {
		t.Errorf("no /proc/self/cgroup: limit %d", got)
	}
}

// TestApplyMemoryLimit: the runtime's soft limit becomes ratio × the cgroup's limit; GOMEMLIMIT
// set, a ratio of 0 or no cgroup limit leave the runtime's limit as it was.
func TestApplyMemoryLimit(t *testing.T) {
	keepMemoryLimit(t)
	limited := fakeRoot(t, "0::/\n", map[string]string{"sys/fs/cgroup/memory.max": "134217728\n"})
	unlimited := fakeRoot(t, "0::/\n", map[string]string{"sys/fs/cgroup/memory.max": "max\n"})
	noEnv := func(string) string { return "" }

	debug.SetMemoryLimit(math.MaxInt64)
	ml := applyMemoryLimit(limited, 0.9, noEnv)
	const want = 120795955 // 0.9 × 128 MiB, rounded down
	if ml.applied != want || ml.cgroup != 134217728 || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("applied %+v, runtime limit %d; want %d", ml, debug.SetMemoryLimit(-1), want)
	}

	for _, tc := range []struct {
		name   string
		root   string
		ratio  float64
		getenv func(string) string
	}{
		{"GOMEMLIMIT set", limited, 0.9, func(k string) string {
			if k == "GOMEMLIMIT" {
				return "64MiB"
			}
			return ""
		}},
		{"ratio 0", limited, 0, noEnv},
		{"no limit", unlimited, 0.9, noEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(12345678)
			if ml := applyMemoryLimit(tc.root, tc.ratio, tc.getenv); ml.applied != 0 {
				t.Errorf("applied %+v", ml)
			}
			if got := debug.SetMemoryLimit(-1); got != 12345678 {
				t.Errorf("runtime limit %d, want it left at 12345678", got)
			}
		})
	}
}

// TestMemoryLimitRatioFlag: the flag, or its environment variable, takes 0 to 1; anything else is
// refused at start with a message naming it.
func TestMemoryLimitRatioFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want float64
		bad  bool
	}{
		{nil, "", defaultMemoryLimitRatio, false},
		{[]string{"-memory.limit-ratio", "0.75"}, "", 0.75, false},
		{[]string{"-memory.limit-ratio", "0"}, "0.5", 0, false},
		{nil, "0.5", 0.5, false},
		{[]string{"-memory.limit-ratio", "1.5"}, "", 0, true},
		{[]string{"-memory.limit-ratio", "-0.1"}, "", 0, true},
		{nil, "ninety", 0, true},
	} {
		t.Setenv("ANYROUTE_MEMORY_LIMIT_RATIO", tc.env)
		var stderr bytes.Buffer
		o, err := parseFlags("anyroute", tc.args, &stderr)
		if tc.bad {
			if err == nil || !strings.Contains(stderr.String(), "-memory.limit-ratio") {
				t.Errorf("%v env %q: err %v, stderr %q", tc.args, tc.env, err, stderr.String())
			}
			continue
		}
		if err != nil || o.memLimitRatio != tc.want {
			t.Errorf("%v env %q: ratio %v, err %v; want %v", tc.args, tc.env, o.memLimitRatio, err, tc.want)
		}
	}
}
