package test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// tlsFiles writes the server's certificate and key, and the client CA when given, into a fresh
// directory, and returns their paths.
func tlsFiles(t *testing.T, srv issued, clientCA *testCA) (cert, key, ca string) {
	t.Helper()
	dir := t.TempDir()
	cert, key = dir+"/tls.crt", dir+"/tls.key"
	writeFileAtomic(t, cert, srv.certPEM)
	writeFileAtomic(t, key, srv.keyPEM)
	if clientCA != nil {
		ca = dir + "/ca.crt"
		writeFileAtomic(t, ca, clientCA.pem)
	}
	return cert, key, ca
}

// httpsBase is the API's https:// address.
func (p *proc) httpsBase() string { return strings.Replace(p.api, "http://", "https://", 1) }

// TestMTLSRequiredRefusesClientsWithoutACertificate: with client_auth required, a client without a
// certificate, and one with a certificate another CA signed, are refused at the handshake (counted
// as failed handshakes, and as no request); one signed by the CA is answered, over h2 and
// HTTP/1.1, and its subject is echoed.
func TestMTLSRequiredRefusesClientsWithoutACertificate(t *testing.T) {
	ca := newTestCA(t, "anyroute test CA")
	other := newTestCA(t, "another CA")
	cert, key, caFile := tlsFiles(t, ca.issue(t, pkixName("anyroute-server"), true), ca)
	p := start(t, fmt.Sprintf(`{"http": {"tls": {"cert_file": %q, "key_file": %q, "client_ca_file": %q, "client_auth": "required"}},
  "routes": [{"name": "who", "match": "/who"}]}`, cert, key, caFile))
	base := p.httpsBase()

	refused := 0
	for name, certs := range map[string][]tls.Certificate{
		"no certificate":             nil,
		"a certificate of other CAs": {other.issue(t, pkixName("mallory"), false).tlsCert(t)},
	} {
		for _, client := range []*http.Client{h2TLSClient(clientTLS(ca, certs...)),
			{Transport: &http.Transport{Proxy: nil, TLSClientConfig: clientTLS(ca, certs...)}, Timeout: 30 * time.Second}} {
			resp, err := client.Get(base + "/who")
			if err == nil {
				_ = resp.Body.Close()
				t.Fatalf("a client with %s was answered %s", name, resp.Status)
			}
			refused++
		}
	}

	good := ca.issue(t, pkixName("client-a"), false).tlsCert(t)
	for _, client := range []*http.Client{h2TLSClient(clientTLS(ca, good)),
		{Transport: &http.Transport{Proxy: nil, TLSClientConfig: clientTLS(ca, good)}, Timeout: 30 * time.Second}} {
		resp, err := client.Get(base + "/who")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		e, err := kit.ParseEcho(string(body))
		if resp.StatusCode != 200 || err != nil || e.ClientSubject != "CN=client-a,O=anyroute tests" {
			t.Fatalf("%s %d: %s (%v), want client_subject CN=client-a,O=anyroute tests", resp.Proto, resp.StatusCode, body, err)
		}
	}
	m := waitCounts(t, p, 2, 10*time.Second)
	if got := m.Sum("app_tls_handshake_failures_total"); got != float64(refused) {
		t.Fatalf("app_tls_handshake_failures_total = %v, want the %d refused clients", got, refused)
	}
}

// TestTLSCertificateSwap: certificate files replaced on disk are served to new connections while
// an open connection goes on with the certificate it got, without a restart; a pair that does not
// load (the new certificate beside the old key) keeps the old certificate served, and says so.
func TestTLSCertificateSwap(t *testing.T) {
	ca := newTestCA(t, "anyroute test CA")
	first, second := ca.issue(t, pkixName("first"), true), ca.issue(t, pkixName("second"), true)
	cert, key, _ := tlsFiles(t, first, nil)
	p := start(t, fmt.Sprintf(`{"http": {"tls": {"cert_file": %q, "key_file": %q}}}`, cert, key))
	base := p.httpsBase()

	// served asks with a fresh client (a new connection) unless one is given, and returns the
	// common name of the certificate the answer came under.
	served := func(client *http.Client) string {
		t.Helper()
		if client == nil {
			client = h2TLSClient(clientTLS(ca))
		}
		resp, err := client.Get(base + "/x")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("answered %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	old := h2TLSClient(clientTLS(ca)) // keeps its one connection open throughout
	if got := served(old); got != "first" {
		t.Fatalf("served %q at start", got)
	}
	reloaded := func(want float64) {
		t.Helper()
		kit.WaitUntil(t, 15*time.Second, fmt.Sprintf("app_tls_last_reload_successful %v", want), func() (bool, string, error) {
			v := p.metrics(t).Sum("app_tls_last_reload_successful")
			return v == want, fmt.Sprint(v), nil
		})
	}

	writeFileAtomic(t, cert, second.certPEM) // its key is not there yet
	reloaded(0)
	if got := served(nil); got != "first" {
		t.Fatalf("with a certificate beside a key not its own, a new connection got %q, want the old certificate", got)
	}
	writeFileAtomic(t, key, second.keyPEM)
	reloaded(1)
	if got := served(nil); got != "second" {
		t.Fatalf("after the swap a new connection got %q", got)
	}
	if got := served(old); got != "first" {
		t.Fatalf("the connection opened before the swap got %q, want it to go on with the first", got)
	}
	if !strings.Contains(p.Logs(), "TLS files changed but do not load") {
		t.Fatalf("the failed reload was not logged:\n%s", p.Logs())
	}
	m := waitCounts(t, p, 4, 10*time.Second)
	if got := m.Sum("app_tls_certificate_expiry_timestamp_seconds"); got < float64(time.Now().Unix()) {
		t.Fatalf("app_tls_certificate_expiry_timestamp_seconds = %v, in the past", got)
	}
}
