//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/anyroute/anyroute/test/kit"
)

// controlPlane is etcd, kube-apiserver and kube-controller-manager on loopback, with token
// authentication, AlwaysAllow authorization and the front-proxy certificates the aggregator
// needs to reach prometheus-adapter.
type controlPlane struct {
	url        string // https://127.0.0.1:PORT
	token      string
	kubeconfig string
	pki        *pki

	config  *rest.Config
	client  kubernetes.Interface
	dynamic dynamic.Interface
}

// hpaSyncPeriod is how often kube-controller-manager's HPA controller reconciles (15s by default).
const hpaSyncPeriod = 3 * time.Second

func startControlPlane(e *env, n *testNet) *controlPlane {
	e.t.Helper()
	pk, err := makePKI(e.mkdir("pki"))
	if err != nil {
		e.t.Fatal(err)
	}
	cp := &controlPlane{pki: pk, token: randomToken(e)}
	etcdURL := startEtcd(e)
	cp.startAPIServer(e, etcdURL, n)
	cp.writeKubeconfig(e)
	cp.startControllerManager(e)
	return cp
}

func randomToken(e *env) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		e.t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func mustFreePort(e *env, host string) string {
	p, err := kit.FreePortOn(host)
	if err != nil {
		e.t.Fatal(err)
	}
	return strconv.Itoa(p)
}

// startEtcd runs etcd on loopback ports and returns its client URL.
func startEtcd(e *env) string {
	e.t.Helper()
	client := "http://127.0.0.1:" + mustFreePort(e, "127.0.0.1")
	peer := "http://127.0.0.1:" + mustFreePort(e, "127.0.0.1")
	p := e.start("etcd", nil, kit.ProjectTool(e.t, "etcd"),
		"--name=e2e",
		"--data-dir="+e.path("etcd", "data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=e2e="+peer,
		"--unsafe-no-fsync", "--log-level=warn")
	kit.WaitHTTP(e.t, p, client+"/health", nil, 30*time.Second)
	e.tl.mark("etcd ready on %s", client)
	return client
}

func (cp *controlPlane) startAPIServer(e *env, etcdURL string, n *testNet) {
	e.t.Helper()
	tokens := e.path("pki", "tokens.csv")
	if err := os.WriteFile(tokens, []byte(cp.token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	port := mustFreePort(e, "127.0.0.1")
	cp.url = "https://127.0.0.1:" + port
	p := e.start("kube-apiserver", nil, kit.ProjectTool(e.t, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+port,
		// A loopback advertise address is refused unless nothing reconciles the kubernetes
		// Service's endpoints.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+e.mkdir("apiserver", "certs"),
		"--authorization-mode=AlwaysAllow",
		"--token-auth-file="+tokens,
		"--client-ca-file="+cp.pki.caCert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+cp.pki.saPub,
		"--service-account-signing-key-file="+cp.pki.saKey,
		"--service-cluster-ip-range="+n.serviceCIDR,
		// The aggregator: it proxies custom.metrics.k8s.io to prometheus-adapter's endpoint
		// address, presenting the front-proxy client certificate.
		"--enable-aggregator-routing=true",
		"--requestheader-client-ca-file="+cp.pki.frontProxyCA,
		"--requestheader-allowed-names="+frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+cp.pki.frontProxyClient,
		"--proxy-client-key-file="+cp.pki.frontProxyKey,
		"--profiling=false",
		"--v=1")
	kit.WaitHTTP(e.t, p, cp.url+"/readyz", http.Header{"Authorization": {"Bearer " + cp.token}}, 60*time.Second)
	e.tl.mark("kube-apiserver ready on %s", cp.url)
}

func (cp *controlPlane) writeKubeconfig(e *env) {
	e.t.Helper()
	cp.kubeconfig = e.path("kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, cp.url, cp.token)
	if err := os.WriteFile(cp.kubeconfig, []byte(kc), 0o600); err != nil {
		e.t.Fatal(err)
	}
	cp.config = &rest.Config{
		Host:            cp.url,
		BearerToken:     cp.token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             50,
		Burst:           100,
		Timeout:         30 * time.Second,
	}
	var err error
	if cp.client, err = kubernetes.NewForConfig(cp.config); err != nil {
		e.t.Fatal(err)
	}
	if cp.dynamic, err = dynamic.NewForConfig(cp.config); err != nil {
		e.t.Fatal(err)
	}
}

// startControllerManager runs the controllers the demo needs: deployments, replica sets, the HPA
// (with a short sync period), endpoints and service accounts. There is no scheduler and no kubelet.
func (cp *controlPlane) startControllerManager(e *env) {
	e.t.Helper()
	p := e.start("kube-controller-manager", nil, kit.ProjectTool(e.t, "kube-controller-manager"),
		"--kubeconfig="+cp.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller,"+
			"endpoints-controller,endpointslice-controller,serviceaccount-controller,serviceaccount-token-controller",
		"--service-account-private-key-file="+cp.pki.saKey,
		"--root-ca-file="+cp.pki.caCert,
		"--horizontal-pod-autoscaler-sync-period="+hpaSyncPeriod.String(),
		"--v=1")
	// The service-account controller making the default namespace's "default" account shows that
	// the controllers run.
	kit.WaitUntil(e.t, 60*time.Second, "kube-controller-manager to make the default service account", func() (bool, string, error) {
		if err := p.UnexpectedExit(); err != nil {
			return false, "", err
		}
		_, err := cp.client.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	e.tl.mark("kube-controller-manager running (HPA sync every %v)", hpaSyncPeriod)
}
