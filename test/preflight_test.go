package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The real node (make e2e, make cluster, the end of make test) needs what a fresh machine may not
// give: root, a Docker daemon, the cgroups the kubelet asks for. Issue 26 wants such a machine
// stopped at preflight with one line naming what is missing, before the images and the tools
// build. These tests run the Makefile and scripts/preflight.sh without a node: each case lacks
// one thing, so the preflight stops before anything would start one.

// nobody runs a command as the user nobody when the test runs as root (setpriv drops to it), and
// as the test's own user otherwise, which is not root either.
func nobody(name string, args ...string) *exec.Cmd {
	if os.Getuid() != 0 {
		return exec.Command(name, args...)
	}
	return exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", name}, args...)...)
}

// asRoot runs a command as uid 0: itself when the test is root, else in a user namespace that maps
// the test's user to root, which passes the preflight's root check and no more.
func asRoot(name string, args ...string) *exec.Cmd {
	if os.Getuid() == 0 {
		return exec.Command(name, args...)
	}
	return exec.Command("unshare", append([]string{"--user", "--map-root-user", name}, args...)...)
}

// runCmd runs c and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, c *exec.Cmd) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", c, err)
	}
	return c.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// copyForNobody copies the repository's files at rel (relative to the repository root) into a
// directory every user can read, so that nobody can run them wherever the checkout lives.
func copyForNobody(t *testing.T, rel ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, r := range rel {
		b, err := os.ReadFile(filepath.Join("..", r))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, r)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// t.TempDir's parent is private to the test's user too.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o755)
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestE2EStopsAtPreflightWithoutRoot runs `make e2e` and `make cluster` as a user: each must stop
// in node-preflight with exactly one line of its own naming root, before make builds an image or
// a tool (make echoes every recipe line it runs, so any build would show on stdout).
func TestE2EStopsAtPreflightWithoutRoot(t *testing.T) {
	dir := copyForNobody(t, "Makefile", "scripts/preflight.sh")
	for _, target := range []string{"e2e", "cluster"} {
		t.Run(target, func(t *testing.T) {
			c := nobody("make", "--no-print-directory", "-C", dir, target)
			c.Env = append(os.Environ(), "HOME="+dir, "MAKEFLAGS=", "MAKELEVEL=")
			code, stdout, stderr := runCmd(t, c)
			if code == 0 {
				t.Fatalf("make %s as a user passed; stdout:\n%s", target, stdout)
			}
			if stdout != "" {
				t.Errorf("make %s ran something before stopping; stdout:\n%s", target, stdout)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			var ours []string
			for _, l := range lines {
				if strings.HasPrefix(l, "preflight: ") {
					ours = append(ours, l)
				}
			}
			if len(ours) != 1 || !strings.Contains(ours[0], "must run as root") {
				t.Errorf("want one preflight line naming root, got stderr:\n%s", stderr)
			}
			if len(lines) != 2 || !strings.Contains(lines[1], "node-preflight] Error 1") {
				t.Errorf("want the preflight line and make's error at node-preflight only, got stderr:\n%s", stderr)
			}
		})
	}
}

// cgroupTree makes a cgroup v1 tree with the hierarchies named (each holding cgroup.procs, as a
// mounted hierarchy does), or, with v2, a cgroup v2 root listing them as its controllers.
func cgroupTree(t *testing.T, v2 bool, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if v2 {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte(strings.Join(names, " ")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, n := range names {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n, "cgroup.procs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestNodePreflightNamesWhatIsMissing runs scripts/preflight.sh node as root on a machine that
// lacks one thing the node needs (a cgroup hierarchy, a v2 controller, a Docker daemon): one line
// on stderr naming it, exit 1. The complete trees pass the cgroup checks and stop at Docker, the
// last check, only because DOCKER_HOST points nowhere (or there is no docker command): so the
// cgroup checks accept a complete tree.
func TestNodePreflightNamesWhatIsMissing(t *testing.T) {
	all := []string{"cpu", "cpuacct", "cpuset", "memory", "pids"}
	cases := []struct {
		name   string
		cgroup string
		want   []string // in the one line
	}{
		{"no pids hierarchy", cgroupTree(t, false, "cpu", "cpuacct", "cpuset", "memory", "devices"), []string{"no cgroup v1 hierarchy pids under", "kubelet"}},
		{"no cgroups", cgroupTree(t, false), []string{"no cgroup v1 hierarchy cpu cpuacct cpuset memory pids under"}},
		{"v2 without cpuset", cgroupTree(t, true, "cpu", "io", "memory", "pids"), []string{"cgroup v2 at", "lacks the controllers cpuset", "kubelet"}},
		{"v1 complete, no Docker", cgroupTree(t, false, all...), []string{"Docker is required and"}},
		{"v2 complete, no Docker", cgroupTree(t, true, all...), []string{"Docker is required and"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := asRoot("bash", "../scripts/preflight.sh", "node")
			c.Env = append(os.Environ(), "PREFLIGHT_CGROUP_FS="+tc.cgroup, "DOCKER_HOST=unix:///nonexistent/docker.sock")
			code, stdout, stderr := runCmd(t, c)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			line := strings.TrimSuffix(stderr, "\n")
			if !strings.HasPrefix(line, "preflight: ") || strings.Contains(line, "\n") {
				t.Fatalf("want one line starting preflight:, got stderr:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("the line does not say %q: %s", w, line)
				}
			}
		})
	}
}
