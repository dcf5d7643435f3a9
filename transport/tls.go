package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TLSFiles are the API listener's TLS settings: the files read at start and at every reload, and
// what is fixed for the process's life.
type TLSFiles struct {
	Cert, Key  string
	ClientCA   string // "" with ClientAuth tls.NoClientCert
	ClientAuth tls.ClientAuthType
	MinVersion uint16
	HTTP2      bool // offer h2 through ALPN
}

// TLSFileError names the file that could not be used and why, under the config key naming it
// (cert_file, key_file or client_ca_file), so a user is told which to fix.
type TLSFileError struct {
	Key, File string
	Err       error
}

func (e *TLSFileError) Error() string { return fmt.Sprintf("%s %s: %v", e.Key, e.File, e.Err) }
func (e *TLSFileError) Unwrap() error { return e.Err }

// maxTLSFile bounds what is read of a certificate, key or CA file: a chain is a few KiB.
const maxTLSFile = 1 << 20

// Certs serves the API's certificate, and the CAs client certificates are checked against, from
// the files, read again on Reload: new handshakes get what was read last, connections already
// made keep what they got. A reload that fails (a file missing mid-swap, a key that is not the
// new certificate's) keeps what is served and says so in LastReload.
type Certs struct {
	files   TLSFiles
	mu      sync.Mutex // one reload at a time
	current atomic.Pointer[tls.Config]
	// the last reload's outcome, and the time of the last one that succeeded (unix nanoseconds)
	lastOK      atomic.Bool
	lastSuccess atomic.Int64
}

// NewCerts reads the files; a file that cannot be used is a *TLSFileError.
func NewCerts(f TLSFiles) (*Certs, error) {
	c := &Certs{files: f}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckTLSFiles reads the files as NewCerts does, for check-config and the start's checks.
func CheckTLSFiles(f TLSFiles) error {
	_, err := loadTLS(f)
	return err
}

// Reload reads the files again; on failure what was served goes on being served.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, err := loadTLS(c.files)
	if err != nil {
		c.lastOK.Store(false)
		return err
	}
	c.current.Store(cfg)
	c.lastOK.Store(true)
	c.lastSuccess.Store(time.Now().UnixNano())
	return nil
}

// Config is the listener's TLS config: every handshake takes the config the last good read made.
func (c *Certs) Config() *tls.Config {
	return &tls.Config{
		MinVersion:         c.files.MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return c.current.Load(), nil },
	}
}

// LastReload reports whether the last read of the files succeeded, and when one last did.
func (c *Certs) LastReload() (ok bool, lastSuccess time.Time) {
	return c.lastOK.Load(), time.Unix(0, c.lastSuccess.Load())
}

// NotAfter is when the certificate served expires.
func (c *Certs) NotAfter() time.Time {
	return c.current.Load().Certificates[0].Leaf.NotAfter
}

// loadTLS reads and checks the files, and makes the config a handshake is served with.
func loadTLS(f TLSFiles) (*tls.Config, error) {
	certPEM, err := readTLSFile("cert_file", f.Cert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readTLSFile("key_file", f.Key)
	if err != nil {
		return nil, err
	}
	if !hasPEM(certPEM, "CERTIFICATE") {
		return nil, &TLSFileError{"cert_file", f.Cert, errors.New("holds no PEM CERTIFICATE block")}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &TLSFileError{"key_file", f.Key, fmt.Errorf("is not the key of the certificate in %s: %w", f.Cert, err)}
	}
	protos := []string{"http/1.1"}
	if f.HTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   f.MinVersion,
		NextProtos:   protos,
		ClientAuth:   f.ClientAuth,
	}
	if f.ClientAuth != tls.NoClientCert {
		caPEM, err := readTLSFile("client_ca_file", f.ClientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, &TLSFileError{"client_ca_file", f.ClientCA, errors.New("holds no PEM certificate")}
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

func readTLSFile(key, name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &TLSFileError{key, name, unwrapPathError(err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTLSFile+1))
	if err != nil {
		return nil, &TLSFileError{key, name, unwrapPathError(err)}
	}
	if len(b) > maxTLSFile {
		return nil, &TLSFileError{key, name, fmt.Errorf("is larger than %d bytes", maxTLSFile)}
	}
	return b, nil
}

// unwrapPathError drops the path an *os.PathError repeats.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// hasPEM reports whether b holds a PEM block of the type.
func hasPEM(b []byte, typ string) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if block.Type == typ {
			return true
		}
	}
}
