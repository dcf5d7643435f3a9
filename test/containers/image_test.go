//go:build integration

package containers

import (
	"bytes"
	"debug/buildinfo"
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

	"github.com/anyroute/anyroute/test/kit"
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

// TestImageArm64 checks the image `make image ARCH=arm64` builds on this machine without running
// it (nothing here runs arm64 containers): its config says linux/arm64, which is what a registry's
// index and a node's runtime go by, and its /anyroute is an arm64 ELF built as the other image's
// binary is (no cgo, without the doctor).
func TestImageArm64(t *testing.T) {
	t.Parallel()
	if platform := inspectField(t, images.anyrouteArm64, "{{.Os}}/{{.Architecture}}"); platform != "linux/arm64" {
		t.Errorf("image %s: config says %s, want linux/arm64", images.anyrouteArm64, platform)
	}
	out, err := exec.Command("docker", "create", images.anyrouteArm64).Output()
	if err != nil {
		t.Fatalf("docker create %s: %v", images.anyrouteArm64, err)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rm", id).CombinedOutput(); err != nil {
			t.Errorf("docker rm %s: %v: %s", id, err, out)
		}
	})
	bin := filepath.Join(t.TempDir(), "anyroute")
	if out, err := exec.Command("docker", "cp", id+":/anyroute", bin).CombinedOutput(); err != nil {
		t.Fatalf("docker cp %s:/anyroute: %v: %s", id, err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if goos, goarch, err := kit.BinaryPlatform(b); err != nil || goos != "linux" || goarch != "arm64" {
		t.Errorf("/anyroute of %s is a %s/%s executable (%v), want linux/arm64", images.anyrouteArm64, goos, goarch, err)
	}
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("/anyroute of %s: %v", images.anyrouteArm64, err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOARCH"] != "arm64" || settings["CGO_ENABLED"] != "0" || settings["-tags"] != "nodoctor" {
		t.Errorf("/anyroute of %s was built with %v, want GOARCH=arm64, CGO_ENABLED=0, -tags=nodoctor", images.anyrouteArm64, settings)
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
