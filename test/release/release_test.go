//go:build release

// Package release tests what `make release` ships, with the real tools: it runs the release
// (GoReleaser in snapshot mode, cyclonedx-gomod, cosign) with a version of its own and a freshly
// made cosign key, then checks dist/ as a user would: every archive and its checksum, what each
// archive holds and that its binary is for the platform in its name, an SBOM per binary, the
// linux/amd64 binary and, under qemu-user-static, the linux/arm64 one answering -version and a
// request, and the signature of checksums.txt. Run with `make test-release`, which builds the tools
// and installs qemu-user-static first, or directly:
//
//	cd test && go test -tags release -count=1 -v -timeout 30m ./release/
package release

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// version is what the test has make stamp, fileVersion the archives' names carry (no "v").
const (
	version      = "v0.0.0-releasetest"
	fileVersion  = "0.0.0-releasetest"
	module       = "github.com/anyroute/anyroute"
	password     = "release-test"
	releaseLimit = 25 * time.Minute
)

var platforms = []struct{ goos, goarch string }{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

func TestMain(m *testing.M) {
	kit.CleanUpOnInterrupt("test/release")
	os.Exit(m.Run())
}

func TestRelease(t *testing.T) {
	cosign := kit.ProjectTool(t, "cosign")
	qemu := kit.SystemTool(t, "qemu-aarch64-static")
	keys := t.TempDir()
	run(t, kit.Cmd{Path: cosign, Args: []string{"generate-key-pair"}, Dir: keys, Env: []string{"COSIGN_PASSWORD=" + password}}, time.Minute)

	revision := strings.TrimSpace(run(t, kit.Cmd{Path: "git", Args: []string{"rev-parse", "HEAD"}, Dir: kit.RepoPath(t)}, time.Minute))
	start := time.Now()
	run(t, kit.Cmd{
		Path: "make",
		Args: []string{"--no-print-directory", "release", "VERSION=" + version, "REVISION=" + revision, "SIGN=" + filepath.Join(keys, "cosign.key")},
		Dir:  kit.RepoPath(t),
		Env:  []string{"COSIGN_PASSWORD=" + password},
	}, releaseLimit)
	t.Logf("make release took %v", time.Since(start).Round(time.Second))
	dist := kit.RepoPath(t, "dist")
	sums := checksums(t, filepath.Join(dist, "checksums.txt"))

	bins := t.TempDir()
	binSums := map[string]string{} // "goos/goarch" → the sha256 of the archive's binary
	t.Run("archives", func(t *testing.T) {
		want := append(licenses(t), "README.md")
		for _, p := range platforms {
			name := archiveName(p.goos, p.goarch)
			if _, ok := sums[name]; !ok {
				t.Errorf("%s is not in checksums.txt", name)
			}
			files := archiveFiles(t, filepath.Join(dist, name))
			binary := "anyroute"
			if p.goos == "windows" {
				binary += ".exe"
			}
			wantNames := append([]string{binary}, want...)
			slices.Sort(wantNames)
			if names := slices.Sorted(maps.Keys(files)); !slices.Equal(names, wantNames) {
				t.Errorf("%s holds %v, want %v", name, names, wantNames)
			}
			sum256 := sha256.Sum256(files[binary])
			binSums[p.goos+"/"+p.goarch] = hex.EncodeToString(sum256[:])
			goos, goarch, err := kit.BinaryPlatform(files[binary])
			if err != nil || goos != p.goos || goarch != p.goarch {
				t.Errorf("%s: %s is a %s/%s executable (%v), want %s/%s", name, binary, goos, goarch, err, p.goos, p.goarch)
			}
			if p.goos == "linux" {
				if err := os.WriteFile(filepath.Join(bins, "anyroute-"+p.goarch), files[binary], 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Every file checksums.txt names, archives and SBOMs, is there and has that sum.
		for name, sum := range sums {
			if got := sha256Hex(t, filepath.Join(dist, name)); got != sum {
				t.Errorf("checksums.txt: %s has sha256 %s, the file %s", name, sum, got)
			}
		}
	})

	t.Run("sboms", func(t *testing.T) {
		for _, p := range platforms {
			checkSBOM(t, filepath.Join(dist, fmt.Sprintf("anyroute_%s_%s_%s.cdx.json", fileVersion, p.goos, p.goarch)),
				p.goos, p.goarch, binSums[p.goos+"/"+p.goarch])
		}
	})

	t.Run("linux-amd64", func(t *testing.T) {
		checkBinary(t, revision, "", filepath.Join(bins, "anyroute-amd64"))
	})

	t.Run("linux-arm64-under-qemu", func(t *testing.T) {
		checkBinary(t, revision, qemu, filepath.Join(bins, "anyroute-arm64"))
	})

	t.Run("signature", func(t *testing.T) {
		verify := func(file string) (kit.Result, error) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return kit.Run(ctx, kit.Cmd{Path: cosign, Args: []string{"verify-blob", "--key", filepath.Join(keys, "cosign.pub"),
				"--signature", filepath.Join(dist, "checksums.txt.sig"), "--insecure-ignore-tlog=true", file}})
		}
		r, err := verify(filepath.Join(dist, "checksums.txt"))
		if err != nil {
			t.Fatalf("the signature of checksums.txt does not verify: %v", err)
		}
		t.Logf("cosign verify-blob checksums.txt: %s", strings.TrimSpace(r.Output))
		b, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
		if err != nil {
			t.Fatal(err)
		}
		// One digit of one sum changed: what an attacker who swapped an archive would need.
		tampered := filepath.Join(t.TempDir(), "checksums.txt")
		if b[0] == '0' {
			b[0] = '1'
		} else {
			b[0] = '0'
		}
		if err := os.WriteFile(tampered, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err = verify(tampered)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(r.Output, "invalid signature") {
			t.Fatalf("a tampered checksums.txt: %v, want cosign to exit non-zero with invalid signature: %s", err, r.Output)
		}
	})
}

// run runs a command to completion and returns its standard output, failing the test, with its
// output, when it fails.
func run(t *testing.T, c kit.Cmd, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := kit.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return r.Stdout
}

func archiveName(goos, goarch string) string {
	ext := "tar.gz"
	if goos == "windows" {
		ext = "zip"
	}
	return fmt.Sprintf("anyroute_%s_%s_%s.%s", fileVersion, goos, goarch, ext)
}

// licenses returns the names of the repository's LICENSE files, which every archive must hold.
func licenses(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(kit.RepoPath(t, "LICENSE*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

// checksums reads checksums.txt: "SHA256  NAME" lines.
func checksums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("%s: %q is not a sha256sum line", path, sc.Text())
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

func sha256Hex(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// archiveFiles returns the regular files of a .tar.gz or .zip archive by name.
func archiveFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	if strings.HasSuffix(path, ".zip") {
		z, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		for _, f := range z.File {
			if f.FileInfo().IsDir() {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("%s: %s: %v", path, f.Name, err)
			}
			files[f.Name] = b
		}
		return files
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, h.Name, err)
		}
		files[h.Name] = b
	}
}

// checkSBOM checks that an SBOM is CycloneDX JSON naming the module at the stamped version, and
// that it is the SBOM of the binary with sha256 binSum, built for goos/goarch, listing the modules
// that binary is made of.
func checkSBOM(t *testing.T, path, goos, goarch, binSum string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"component"`
			Properties []struct{ Name, Value string } `json:"properties"`
		} `json:"metadata"`
		Components []struct {
			Name string `json:"name"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Errorf("%s: not JSON: %v", path, err)
		return
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
		t.Errorf("%s: bomFormat %q, specVersion %q: not a CycloneDX document", path, bom.BOMFormat, bom.SpecVersion)
	}
	if c := bom.Metadata.Component; c.Name != module || c.Version != version {
		t.Errorf("%s: names component %s %s, want %s %s", path, c.Name, c.Version, module, version)
	}
	props := map[string]string{}
	for _, p := range bom.Metadata.Properties {
		props[p.Name] = p.Value
	}
	if props["cdx:gomod:build:env:GOOS"] != goos || props["cdx:gomod:build:env:GOARCH"] != goarch ||
		props["cdx:gomod:binary:hash:SHA-256"] != binSum {
		t.Errorf("%s: describes %v, want GOOS %s, GOARCH %s and the archive's binary, SHA-256 %s", path, props, goos, goarch, binSum)
	}
	deps := map[string]bool{}
	for _, c := range bom.Components {
		deps[c.Name] = true
	}
	for _, m := range []string{"github.com/go-kit/kit", "github.com/prometheus/client_golang"} {
		if !deps[m] {
			t.Errorf("%s: lists no %s among its %d components", path, m, len(bom.Components))
		}
	}
}

// checkBinary runs a release binary, under qemu when that is not "": -version names the stamped
// version and revision, and served on free loopback ports it answers a request as the embedded
// defaults say (no routes: route other).
func checkBinary(t *testing.T, revision, qemu, bin string) {
	t.Helper()
	cmd := func(args ...string) kit.Cmd {
		if qemu == "" {
			return kit.Cmd{Path: bin, Args: args}
		}
		return kit.Cmd{Name: filepath.Base(bin) + " (qemu)", Path: qemu, Args: append([]string{bin}, args...)}
	}
	out := run(t, cmd("-version"), time.Minute)
	t.Logf("-version: %s", strings.TrimSpace(out))
	if want := fmt.Sprintf("anyroute %s (revision %s, go", version, revision); !strings.HasPrefix(out, want) {
		t.Errorf("-version says %q, want it to start with %q", out, want)
	}
	api, admin := kit.FreeAddr(t), kit.FreeAddr(t)
	p := kit.StartT(t, cmd("-http.addr", api, "-admin.addr", admin))
	kit.WaitHTTP(t, p, "http://"+admin+"/readyz", nil, time.Minute)
	code, e := kit.Echo(t, http.MethodPost, "http://"+api+"/release/check?from=test", nil)
	if code != http.StatusOK || e.Method != http.MethodPost || e.Path != "/release/check" || e.Query != "from=test" || e.Route != "other" {
		t.Errorf("POST /release/check?from=test: %d %+v, want 200 echoing it under route other", code, e)
	}
}
