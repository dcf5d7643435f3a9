package kit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// serviceModule is the module path of the service's go.mod, which marks the repository's root;
// test/go.mod, the tests' own module, is passed over on the way up.
const serviceModule = "github.com/anyroute/anyroute"

// RepoRoot returns the repository's root: the directory of the service's go.mod, found from the
// working directory up (a test runs in its package's directory).
var RepoRoot = sync.OnceValues(func() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == serviceModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s in the working directory or above it", serviceModule)
		}
		dir = parent
	}
})

// modulePath is the path a go.mod's module directive names, empty when it has none.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// RepoPath joins elem to the repository's root.
func RepoPath(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// SystemTool returns the path of a command the tests install from Debian's archive, failing the
// test, with how to install it, when it is missing.
func SystemTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `scripts/deps.sh %s` (`make test` runs it for you)", name, name)
	}
	return p
}

// ProjectTool returns the path of a tool scripts/tools.sh builds into .tools/bin, building it
// first when it is missing. When another run is building it (make test builds the e2e's slowest
// tools in the background), that build is waited for: a test that needs such a tool waits at its
// start instead of holding up every test before it.
func ProjectTool(t testing.TB, name string) string {
	t.Helper()
	p := RepoPath(t, ".tools", "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	start := time.Now()
	build := exec.Command(RepoPath(t, "scripts", "tools.sh"), name)
	build.Env = append(os.Environ(), "TOOLS_DIR="+RepoPath(t, ".tools"))
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("%s is not built, and scripts/tools.sh %s failed: %v\n%s", name, name, err, out)
	}
	t.Logf("scripts/tools.sh %s (%v): %s", name, time.Since(start).Round(time.Second), bytes.TrimSpace(out))
	return p
}

// BuildAnyroute builds cmd/anyroute into out with extra `go build` flags, its output going to
// the test binary's.
func BuildAnyroute(out string, flags ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	args := append(append([]string{"build"}, flags...), "-o", out, "./cmd/anyroute")
	build := exec.Command("go", args...)
	build.Dir = root
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	return nil
}
