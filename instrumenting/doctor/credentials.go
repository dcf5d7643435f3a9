package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// usesExecPlugin says the kubeconfig's user gets its credential from an exec plugin: it names one
// and supplies no token, password or client certificate of its own (with one, client-go never
// runs the plugin either).
func usesExecPlugin(cfg *rest.Config) bool {
	tls := cfg.TLSClientConfig
	return cfg.ExecProvider != nil && cfg.BearerToken == "" && cfg.BearerTokenFile == "" && cfg.Username == "" && cfg.Password == "" &&
		len(tls.CertData) == 0 && tls.CertFile == "" && len(tls.KeyData) == 0 && tls.KeyFile == ""
}

// execCredentials is the cluster's transport when the kubeconfig names an exec credential plugin.
// client-go runs such a plugin with exec.Command inside its round tripper, with no context: a
// plugin that hangs (a login prompt nobody answers, a cloud CLI waiting on the network) holds every
// request, and the doctor with it, for as long as it likes. Here the first request runs the plugin
// itself, with exec.CommandContext under that request's context, which carries the doctor's
// -timeout: the plugin is killed at the deadline and the request fails naming it. The credential
// it returns is then handed to client-go's own transport as a static token or client certificate;
// a run of the doctor is shorter than any credential's life, so it is never refreshed.
type execCredentials struct {
	cfg *rest.Config

	mu        sync.Mutex
	transport http.RoundTripper // client-go's, once the plugin has answered
}

func (e *execCredentials) RoundTrip(req *http.Request) (*http.Response, error) {
	rt, err := e.authenticated(req.Context())
	if err != nil {
		return nil, fmt.Errorf("getting credentials: %w", err)
	}
	return rt.RoundTrip(req)
}

// authenticated returns client-go's transport with the plugin's credential, running the plugin
// the first time; a failed run is not remembered, so a later request tries again, as client-go does.
func (e *execCredentials) authenticated(ctx context.Context) (http.RoundTripper, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.transport != nil {
		return e.transport, nil
	}
	status, err := runExecPlugin(ctx, e.cfg)
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(e.cfg)
	cfg.ExecProvider = nil
	cfg.BearerToken = status.Token
	if status.ClientCertificateData != "" {
		cfg.CertData, cfg.KeyData = []byte(status.ClientCertificateData), []byte(status.ClientKeyData)
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	e.transport = rt
	return rt, nil
}

// execInfoEnv is the variable that hands the plugin its ExecCredential request.
const execInfoEnv = "KUBERNETES_EXEC_INFO"

// runExecPlugin runs the kubeconfig's exec plugin under ctx as client-go's exec authenticator
// does (the same environment, request and checks of the answer; k8s.io/client-go/plugin/pkg/
// client/auth/exec), and returns the credential it prints. The doctor reads no kuberc, so no
// credential plugin policy applies: client-go allows every plugin then too.
func runExecPlugin(ctx context.Context, cfg *rest.Config) (*clientauthv1.ExecCredentialStatus, error) {
	x := cfg.ExecProvider
	interactive, err := execInteractive(x)
	if err != nil {
		return nil, fmt.Errorf("exec plugin cannot support interactive mode: %w", err)
	}
	request := clientauthv1.ExecCredential{
		TypeMeta: metav1.TypeMeta{APIVersion: x.APIVersion, Kind: "ExecCredential"},
		Spec:     clientauthv1.ExecCredentialSpec{Interactive: interactive},
	}
	if x.ProvideClusterInfo {
		if request.Spec.Cluster, err = execCluster(cfg); err != nil {
			return nil, err
		}
	}
	info, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	stdout := cappedBuffer{limit: execAnswerLimit}
	cmd := exec.CommandContext(ctx, x.Command, x.Args...)
	cmd.Env = append(os.Environ(), execInfoEnv+"="+string(info))
	for _, v := range x.Env {
		cmd.Env = append(cmd.Env, v.Name+"="+v.Value)
	}
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if interactive {
		cmd.Stdin = os.Stdin
	}
	// A plugin's own children may hold its output open after it is killed: stop waiting for them.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return nil, execRunError(ctx, x, err)
	}
	if stdout.over {
		return nil, fmt.Errorf("exec plugin %s answered more than %d KiB: no credential is that large", x.Command, execAnswerLimit>>10)
	}
	var answer clientauthv1.ExecCredential
	if err := json.Unmarshal(stdout.buf.Bytes(), &answer); err != nil {
		return nil, fmt.Errorf("decoding stdout: %w", err)
	}
	switch s := answer.Status; {
	case answer.APIVersion != x.APIVersion:
		return nil, fmt.Errorf("exec plugin is configured to use API version %s, plugin returned version %s", x.APIVersion, answer.APIVersion)
	case s == nil:
		return nil, errors.New("exec plugin didn't return a status field")
	case s.Token == "" && s.ClientCertificateData == "" && s.ClientKeyData == "":
		return nil, errors.New("exec plugin didn't return a token or cert/key pair")
	case (s.ClientCertificateData == "") != (s.ClientKeyData == ""):
		return nil, errors.New("exec plugin returned only certificate or key, not both")
	}
	return answer.Status, nil
}

// execAnswerLimit bounds what the doctor keeps of a plugin's answer: an ExecCredential is a few
// KiB, a certificate chain included, and a plugin that writes without end must not fill memory
// until the deadline.
const execAnswerLimit = 1 << 20

// cappedBuffer keeps the first limit bytes written to it and drops the rest, reading on so the
// writer never blocks on a full pipe; over says something was dropped. The buffer is a field, not
// embedded: an embedded bytes.Buffer's ReadFrom would let io.Copy fill it past the limit.
type cappedBuffer struct {
	buf   bytes.Buffer
	limit int
	over  bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); len(p) > room {
		b.over = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// execRunError says why the plugin gave no credential: the deadline (the doctor's -timeout), a
// missing executable (with the kubeconfig's install hint), or its exit status.
func execRunError(ctx context.Context, x *clientcmdapi.ExecConfig, err error) error {
	var notFound *exec.Error
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("exec plugin %s gave no credential before the doctor's deadline (-timeout): %w", x.Command, ctx.Err())
	case errors.As(err, &notFound):
		msg := fmt.Sprintf("exec: executable %s not found", x.Command)
		if x.InstallHint != "" {
			msg += ": " + x.InstallHint
		}
		return errors.New(msg)
	case errors.As(err, &exit):
		return fmt.Errorf("exec: executable %s failed with exit code %d", x.Command, exit.ExitCode())
	}
	return fmt.Errorf("exec: %w", err)
}

// execInteractive decides, as client-go does, whether the plugin may talk to the user on stdin.
func execInteractive(x *clientcmdapi.ExecConfig) (bool, error) {
	fi, err := os.Stdin.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	switch x.InteractiveMode {
	case clientcmdapi.NeverExecInteractiveMode:
		return false, nil
	case "", clientcmdapi.IfAvailableExecInteractiveMode:
		return terminal && !x.StdinUnavailable, nil
	case clientcmdapi.AlwaysExecInteractiveMode:
		if !terminal {
			return false, errors.New("standard input is not a terminal")
		}
		if x.StdinUnavailable {
			return false, errors.New("standard input is unavailable")
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown interactiveMode: %q", x.InteractiveMode)
}

// execCluster is the cluster a plugin with provideClusterInfo is told about.
func execCluster(cfg *rest.Config) (*clientauthv1.Cluster, error) {
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("exec plugin's cluster info: %w", err)
		}
	}
	c := &clientauthv1.Cluster{Server: cfg.Host, TLSServerName: cfg.ServerName, InsecureSkipTLSVerify: cfg.Insecure, CertificateAuthorityData: ca}
	if cfg.ExecProvider.Config != nil {
		raw, err := json.Marshal(cfg.ExecProvider.Config)
		if err != nil {
			return nil, fmt.Errorf("exec plugin's cluster info: %w", err)
		}
		c.Config = runtime.RawExtension{Raw: raw}
	}
	return c, nil
}
