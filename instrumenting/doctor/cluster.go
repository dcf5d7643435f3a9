package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Getter fetches a path (with its query string) relative to some base: a Prometheus server, or
// the Kubernetes API server. It returns the body of a 2xx answer, and an error naming the status
// and the start of the body otherwise.
type Getter func(ctx context.Context, pathAndQuery string) ([]byte, error)

// Cluster is how the doctor reads the cluster: GETs of API server paths, for objects (decoded into
// k8s.io/api's types), aggregated APIs, KEDA's objects and the pod and service proxies alike. The
// doctor reads a handful of kinds, so it does without client-go's typed clientset: linked into
// anyroute, that would triple the binary and more than double the service's idle RSS.
type Cluster struct {
	Raw Getter
}

// get decodes the object or list at the API path p into out.
func (c Cluster) get(ctx context.Context, p string, out any) error {
	body, err := c.Raw(ctx, p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", p, err)
	}
	return nil
}

// objectsPath is the API path of a namespace's objects of one kind: objectsPath("apps/v1", ns,
// "deployments"), or with a name a single one; a core kind has group version "v1".
func objectsPath(groupVersion, namespace, resource string, name ...string) string {
	prefix := "/apis/"
	if groupVersion == "v1" {
		prefix = "/api/"
	}
	return prefix + path.Join(append([]string{groupVersion, "namespaces", namespace, resource}, name...)...)
}

// withLabelSelector adds a label selector to a list's path.
func withLabelSelector(p, selector string) string {
	return p + "?labelSelector=" + url.QueryEscape(selector)
}

// isNotFound tells a 404 of the API server (a kind whose CRD is not installed) from other errors.
func isNotFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "404") || strings.Contains(strings.ToLower(s), "not found") || strings.Contains(s, "could not find the requested resource")
}

// pathUnder joins a decoded path to an API server proxy prefix (a pod's or a service's), cleaned
// as an HTTP server would clean it, and escaped; ok is false when the cleaned path leaves the
// prefix, or holds a byte no path should. A trailing slash is kept: Clean drops it, a scrape keeps it.
func pathUnder(prefix, p string) (joined string, ok bool) {
	if strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	joined = path.Clean(prefix + "/" + p)
	if joined != prefix && !strings.HasPrefix(joined, prefix+"/") {
		return "", false
	}
	if strings.HasSuffix(p, "/") && !strings.HasSuffix(joined, "/") {
		joined += "/"
	}
	return (&url.URL{Path: joined}).EscapedPath(), true
}

// restConfig resolves the cluster as kubectl does: an explicit file, else $KUBECONFIG, else
// ~/.kube/config, else the pod's service account (in-cluster). It returns the context's namespace.
func restConfig(kubeconfig, kubeContext string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, "", errors.New("no cluster: no -kubeconfig, no $KUBECONFIG, no ~/.kube/config and not in a pod")
		}
		return nil, "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	cfg.Timeout = 15 * time.Second
	return cfg, ns, nil
}

// NewCluster makes the doctor's client for a rest config: client-go's HTTP client for it (TLS,
// tokens), GETs against its server. A kubeconfig's exec credential plugin is run by the doctor
// itself, under the deadline of the request that needs it (credentials.go): client-go runs it
// with no deadline at all, and a plugin that hangs held the doctor past its -timeout.
func NewCluster(cfg *rest.Config) (Cluster, error) {
	server, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return Cluster{}, err
	}
	var client *http.Client
	if usesExecPlugin(cfg) {
		client = &http.Client{Transport: &execCredentials{cfg: cfg}, Timeout: cfg.Timeout}
	} else if client, err = rest.HTTPClientFor(cfg); err != nil {
		return Cluster{}, err
	}
	return Cluster{Raw: httpGetter(server.String(), client, false)}, nil
}

// HTTPGetter gets from a base URL directly; its errors name the whole URL.
func HTTPGetter(base string, client *http.Client) Getter {
	return httpGetter(base, client, true)
}

// httpGetter is a Getter on base through client. A body is read up to 16 MiB; an answer other than
// 2xx is an error "GET path: status: why", why being the API Status' message or the body's first
// line; fullURL names base+path instead of the path (the API server's base is the same for every
// link, a Prometheus URL is worth showing).
func httpGetter(base string, client *http.Client, fullURL bool) Getter {
	base = strings.TrimRight(base, "/")
	return func(ctx context.Context, p string) ([]byte, error) {
		what := p
		if fullURL {
			what = base + p
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err // a *url.Error: it names the method and the URL
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", what, err)
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("GET %s: %s%s", what, resp.Status, statusNote(body))
		}
		return body, nil
	}
}

// statusNote is what an error answer says: the message of the API server's Status object, or the
// start of a body that is not one (a proxied pod's or service's own answer).
func statusNote(body []byte) string {
	var status struct {
		Kind, Message string
	}
	if json.Unmarshal(body, &status) == nil && status.Kind == "Status" && status.Message != "" {
		return ": " + status.Message
	}
	if s := firstLine(string(body)); s != "" {
		return ": " + s
	}
	return ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
