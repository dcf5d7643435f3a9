package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// execKubeconfig writes a kubeconfig for server whose user's credential comes from an exec plugin,
// the shell script given, and returns its path. The server is a TLS one: client-go reads no
// credential for a plain-HTTP server.
func execKubeconfig(t *testing.T, server, script string) string {
	t.Helper()
	dir := t.TempDir()
	plugin := filepath.Join(dir, "plugin.sh")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"+script), 0o700); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: %q, interactiveMode: Never,
  env: [{name: DIR, value: %q}]}}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: demo}}]
current-context: x
`, server, plugin, dir)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// TestHangingExecPluginEndsAtTheTimeout: a kubeconfig's exec credential plugin that never answers
// (a login prompt nobody sees) is killed at the doctor's -timeout, and the doctor reports the
// release link broken, naming the plugin and the deadline, instead of waiting on it (client-go runs
// the plugin with no deadline). A plugin whose child holds its output open past the kill does not
// hold the doctor either.
func TestHangingExecPluginEndsAtTheTimeout(t *testing.T) {
	for name, script := range map[string]string{
		"plugin hangs":           `echo $$ > "$DIR/pid"; exec sleep 120`,
		"child holds its output": `echo $$ > "$DIR/pid"; sleep 60 2>/dev/null & wait`,
	} {
		t.Run(name, func(t *testing.T) { doctorOutlastsPlugin(t, script) })
	}
}

func doctorOutlastsPlugin(t *testing.T, script string) {
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the API server was asked without a credential")
	}))
	defer api.Close()
	kubeconfig := execKubeconfig(t, api.URL, script)
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := Run([]string{"-kubeconfig", kubeconfig, "-release", "anyroute", "-timeout", "1s"}, &out, &errb)
		done <- result{code, out.String() + errb.String()}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second): // a 1 s timeout; generous for a loaded machine
		t.Fatal("anyroute doctor -timeout 1s still running after 30 s: the exec plugin holds it")
	}
	if r.code != exitBroken || !strings.Contains(r.out, "FAIL  release") || !strings.Contains(r.out, "plugin.sh gave no credential before the doctor's deadline (-timeout)") {
		t.Errorf("exit %d:\n%s\nwant the release link broken, naming the plugin and the deadline", r.code, r.out)
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(kubeconfig), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	// The plugin was killed and reaped when the deadline passed, not left running behind.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the plugin (pid %d) outlived the doctor: kill -0 says %v", pid, err)
	}
}

// TestExecPluginAnswerIsBounded: a plugin that writes without end is cut at 1 MiB kept, and its
// answer refused saying so; the doctor does not hold what it wrote.
func TestExecPluginAnswerIsBounded(t *testing.T) {
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("the API server was asked without a credential")
	}))
	defer api.Close()
	kubeconfig := execKubeconfig(t, api.URL, `head -c 8000000 /dev/zero`)
	var out, errb bytes.Buffer
	code := Run([]string{"-kubeconfig", kubeconfig, "-release", "anyroute"}, &out, &errb)
	if code != exitBroken || !strings.Contains(out.String(), "plugin.sh answered more than 1024 KiB") {
		t.Errorf("exit %d:\n%s%s\nwant the release link broken, the answer refused as too large", code, out.String(), errb.String())
	}
}

// TestExecPluginCredentialIsUsed: a plugin that answers is run once, with client-go's
// ExecCredential request in KUBERNETES_EXEC_INFO, and its token goes with every request.
func TestExecPluginCredentialIsUsed(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"items":[]}`)
	}))
	defer api.Close()
	kubeconfig := execKubeconfig(t, api.URL, `echo "$KUBERNETES_EXEC_INFO" >> "$DIR/requests"
echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-123"}}'`)
	var out, errb bytes.Buffer
	code := Run([]string{"-kubeconfig", kubeconfig, "-release", "anyroute"}, &out, &errb)
	if code != exitBroken || !strings.Contains(out.String(), "0 Deployments labelled") {
		t.Fatalf("exit %d:\n%s%s\nwant the release link to find no Deployment", code, out.String(), errb.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auths) == 0 {
		t.Fatal("no request reached the API server")
	}
	for _, a := range auths {
		if a != "Bearer tok-123" {
			t.Errorf("a request carried %q, want the plugin's token", a)
		}
	}
	requests, err := os.ReadFile(filepath.Join(filepath.Dir(kubeconfig), "requests"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(requests), `"kind":"ExecCredential"`); n != 1 || !strings.Contains(string(requests), `"apiVersion":"client.authentication.k8s.io/v1"`) {
		t.Errorf("the plugin ran %d times with %s; want once, with client-go's ExecCredential request", n, requests)
	}
}
