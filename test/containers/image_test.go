//go:build integration

package containers

import (
	"encoding/json"
	"errors"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const maxImageBytes = 20 << 20

// TestImage checks what the image promises without running the service: under 20 MB, a numeric
// non-root user, a HEALTHCHECK, a binary built by the patched Go release go.mod's toolchain line
// names, and no doctor (that the container turns healthy on a read-only root is TestContainers' part).
func TestImage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("docker", "image", "inspect", images.anyroute).Output()
	if err != nil {
		t.Fatalf("docker image inspect %s: %v", images.anyroute, err)
	}
	var inspect []struct {
		Size   int64
		Config struct {
			User        string
			Healthcheck *struct{ Test []string }
			Entrypoint  []string
		}
	}
	if err := json.Unmarshal(out, &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("docker image inspect: %v: %.300s", err, out)
	}
	img := inspect[0]
	t.Logf("%s: %.1f MB, user %q, healthcheck %v", images.anyroute, float64(img.Size)/(1<<20), img.Config.User, img.Config.Healthcheck)

	if img.Size >= maxImageBytes {
		t.Errorf("image is %d bytes, want under %d", img.Size, maxImageBytes)
	}

	user, group, _ := strings.Cut(img.Config.User, ":")
	if uid, err := strconv.Atoi(user); err != nil || uid == 0 {
		t.Errorf("image user %q: want a numeric, non-root UID", img.Config.User)
	}
	if group != "" {
		if gid, err := strconv.Atoi(group); err != nil || gid == 0 {
			t.Errorf("image user %q: want a numeric, non-root GID", img.Config.User)
		}
	}

	if hc := img.Config.Healthcheck; hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		t.Errorf("image has no HEALTHCHECK: %+v", hc)
	}

	// `anyroute -version` names the Go release that built it; read-only and without a network, as
	// the service runs.
	out, err = exec.Command("docker", "run", "--rm", "--read-only", "--network", "none", images.anyroute, "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s -version: %v: %s", images.anyroute, err, out)
	}
	t.Logf("-version: %s", strings.TrimSpace(string(out)))
	goVersion := regexp.MustCompile(`go1\.[0-9]+(\.[0-9]+)?`).FindString(string(out))
	if goVersion == "" {
		t.Fatalf("-version names no Go release: %s", out)
	}
	if want := toolchainLine(t); version.Compare(goVersion, want) < 0 {
		t.Errorf("image built with %s, older than go.mod's toolchain %s (the patched release)", goVersion, want)
	}

	// The image leaves the doctor out (the nodoctor tag): asked for it, it says where the doctor is
	// and exits 2 rather than serving.
	out, err = exec.Command("docker", "run", "--rm", "--read-only", "--network", "none", images.anyroute, "doctor").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "not in this build") {
		t.Errorf("docker run %s doctor: %v, want exit 2 saying the doctor is not in this build: %s", images.anyroute, err, out)
	}
}

// toolchainLine returns go.mod's toolchain version (go1.26.10), or its go version without one.
func toolchainLine(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^toolchain (go\S+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	if m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(b); m != nil {
		return "go" + string(m[1])
	}
	t.Fatal("go.mod has no go line")
	return ""
}
