package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/config"
)

// writeTLSFiles writes a self-signed certificate for host, valid until notAfter, and its key into
// dir, and returns http.tls naming them.
func writeTLSFiles(t *testing.T, dir, host string, notAfter time.Time) *config.TLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &config.TLS{CertFile: filepath.Join(dir, host+".crt"), KeyFile: filepath.Join(dir, host+".key")}
	writePEM(t, c.CertFile, "CERTIFICATE", der)
	writePEM(t, c.KeyFile, "PRIVATE KEY", keyDER)
	return c
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckTLSFilesNamesTheFile: each file http.tls names that cannot be used stops the start
// (exit 2, before listening) with its pointer and what is wrong with it, as a bad config does.
func TestCheckTLSFilesNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	a := writeTLSFiles(t, dir, "a.test", time.Now().Add(time.Hour))
	b := writeTLSFiles(t, dir, "b.test", time.Now().Add(time.Hour))
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  string
		want string
	}{
		{"valid", `{"cert_file": "` + a.CertFile + `", "key_file": "` + a.KeyFile + `"}`, ""},
		{"missing cert", `{"cert_file": "` + dir + `/none.crt", "key_file": "` + a.KeyFile + `"}`, "/http/tls/cert_file: " + dir + "/none.crt: no such file or directory"},
		{"missing key", `{"cert_file": "` + a.CertFile + `", "key_file": "` + dir + `/none.key"}`, "/http/tls/key_file: " + dir + "/none.key: no such file or directory"},
		{"cert not PEM", `{"cert_file": "` + notPEM + `", "key_file": "` + a.KeyFile + `"}`, "/http/tls/cert_file: " + notPEM + ": holds no PEM CERTIFICATE block"},
		{"key of another", `{"cert_file": "` + a.CertFile + `", "key_file": "` + b.KeyFile + `"}`, "/http/tls/key_file: " + b.KeyFile + ": is not the key of the certificate in " + a.CertFile},
		{"CA not PEM", `{"cert_file": "` + a.CertFile + `", "key_file": "` + a.KeyFile + `", "client_ca_file": "` + notPEM + `", "client_auth": "required"}`, "/http/tls/client_ca_file: " + notPEM + ": holds no PEM certificate"},
		{"CA without client_auth", `{"cert_file": "` + a.CertFile + `", "key_file": "` + a.KeyFile + `", "client_ca_file": "` + a.CertFile + `"}`, "/http/tls/client_auth: is none"},
		{"client_auth without CA", `{"cert_file": "` + a.CertFile + `", "key_file": "` + a.KeyFile + `", "client_auth": "optional"}`, "/http/tls/client_ca_file: is required with client_auth optional"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.json")
			if err := os.WriteFile(file, []byte(`{"http": {"tls": `+tc.tls+`}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				cfg, err := config.Load(file)
				if err == nil {
					err = checkTLSFiles(file, cfg.HTTP)
				}
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var out, errOut bytes.Buffer
			code := realMain([]string{"-config", file, "-http.addr", "127.0.0.1:0", "-admin.addr", "127.0.0.1:0"}, &out, &errOut)
			if code != exitBadUsage || !strings.HasPrefix(errOut.String(), file+": "+tc.want) || strings.Count(errOut.String(), "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line starting %q", code, errOut.String(), file+": "+tc.want)
			}
		})
	}
}
