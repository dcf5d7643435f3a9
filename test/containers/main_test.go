//go:build integration

// Package containers tests the anyroute image and the local stack in real containers: the image
// that `make image` builds, started with testcontainers-go beside Prometheus and Jaeger on a network
// of its own, and the docker-compose stack of deployments/compose. Run with `make test-integration`
// (part of `make test`), or directly:
//
//	cd test && go test -tags integration -count=1 -v ./containers/
//
// Image names come from the environment (ANYROUTE_IMAGE, ANYROUTE_ARM64_IMAGE, and PROMETHEUS_IMAGE,
// JAEGER_IMAGE and SIEGE_IMAGE as `make images` writes them to .build/images.env). Run directly,
// the tests make what is missing with the same scripts the Makefile uses. They need a Docker daemon
// and fail, not skip, without one.
package containers

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/anyroute/anyroute/test/kit"
)

// repoRoot is the repository root, found by TestMain.
var repoRoot string

// images are the images the tests run, resolved once by TestMain.
var images struct {
	anyroute, anyrouteArm64, prometheus, jaeger, siege string
}

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "test/containers: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func setup() error {
	root, err := kit.RepoRoot()
	if err != nil {
		return err
	}
	repoRoot = root
	// The reaper (Ryuk) image cannot be pulled without a registry, and the tests clean up after
	// themselves. Without the host override, on a machine with /.dockerenv testcontainers looks for
	// published ports on the bridge gateway, where they are not (they are on 127.0.0.1).
	setDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
	setDefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The docker CLI (compose, the image scripts) and testcontainers' client must both reach it.
	if out, err := exec.CommandContext(ctx, "docker", "version", "-f", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("Docker is required and no daemon answers the docker command (DOCKER_HOST=%q): %w: %s",
			os.Getenv("DOCKER_HOST"), err, strings.TrimSpace(string(out)))
	}
	provider, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return fmt.Errorf("Docker is required and no daemon answers (DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), err)
	}
	defer provider.Close()
	if err := provider.Health(ctx); err != nil {
		return fmt.Errorf("Docker is required and no daemon answers (DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), err)
	}

	// What the Makefile passes wins; otherwise build or reuse as `make images` would.
	if os.Getenv("ANYROUTE_IMAGE") == "" {
		if err := run("make", "image", "IMAGE=anyroute:latest"); err != nil {
			return err
		}
		os.Setenv("ANYROUTE_IMAGE", "anyroute:latest")
	}
	if os.Getenv("ANYROUTE_ARM64_IMAGE") == "" {
		if err := run("make", "image", "ARCH=arm64", "IMAGE=anyroute:latest-arm64"); err != nil {
			return err
		}
		os.Setenv("ANYROUTE_ARM64_IMAGE", "anyroute:latest-arm64")
	}
	keys := []string{"PROMETHEUS_IMAGE", "JAEGER_IMAGE", "SIEGE_IMAGE"}
	if missing(keys) {
		env, err := readEnvFile(filepath.Join(repoRoot, ".build", "images.env"))
		if err != nil || missingIn(env, keys) {
			if err := run("make", "images"); err != nil {
				return err
			}
			if env, err = readEnvFile(filepath.Join(repoRoot, ".build", "images.env")); err != nil {
				return err
			}
		}
		for _, k := range keys {
			setDefault(k, env[k])
		}
	}
	images.anyroute = os.Getenv("ANYROUTE_IMAGE")
	images.anyrouteArm64 = os.Getenv("ANYROUTE_ARM64_IMAGE")
	images.prometheus = os.Getenv("PROMETHEUS_IMAGE")
	images.jaeger = os.Getenv("JAEGER_IMAGE")
	images.siege = os.Getenv("SIEGE_IMAGE")
	fmt.Fprintf(os.Stderr, "test/containers: images anyroute=%s (arm64 %s) prometheus=%s jaeger=%s siege=%s\n",
		images.anyroute, images.anyrouteArm64, images.prometheus, images.jaeger, images.siege)
	// Present here, or testcontainers and compose would try (and, without a registry, fail) to pull.
	for _, img := range []string{images.anyroute, images.anyrouteArm64, images.prometheus, images.jaeger, images.siege} {
		if out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", img).CombinedOutput(); err != nil {
			return fmt.Errorf("image %s is not on this Docker host (`make images` makes it): %w: %s", img, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func setDefault(key, value string) {
	if os.Getenv(key) == "" {
		os.Setenv(key, value)
	}
}

func missing(keys []string) bool {
	for _, k := range keys {
		if os.Getenv(k) == "" {
			return true
		}
	}
	return false
}

func missingIn(env map[string]string, keys []string) bool {
	for _, k := range keys {
		if env[k] == "" {
			return true
		}
	}
	return false
}

// run runs a command (make) in the repository root, its output going to the test's stderr.
func run(command string, args ...string) error {
	cmd := exec.Command(command, args...)
	cmd.Dir = repoRoot
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", command, strings.Join(args, " "), err)
	}
	return nil
}

// readEnvFile reads KEY=VALUE lines, as .build/images.env holds them.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}
