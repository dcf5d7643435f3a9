package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport"
)

// The API listener's HTTP/2 and TLS: what the config asks of them, the certificates and their
// watcher, and their metrics. The listener (transport.Listener) and the HTTP/2 handler
// (transport.H2C) do the work; this file wires them.

// tlsFiles is what the listener's certificates are made of, from http.tls.
func tlsFiles(c config.HTTP) transport.TLSFiles {
	t := c.TLS
	f := transport.TLSFiles{Cert: t.CertFile, Key: t.KeyFile, ClientCA: t.ClientCAFile,
		MinVersion: tls.VersionTLS12, HTTP2: c.HTTP2.Enabled}
	if t.MinVersion == "1.3" {
		f.MinVersion = tls.VersionTLS13
	}
	switch t.ClientAuth {
	case "optional":
		f.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		f.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return f
}

// checkTLSFiles reads http.tls's files as the listener will, so that a missing file or a key that
// is not the certificate's stops the start (and fails check-config) with the key and file named.
func checkTLSFiles(name string, c config.HTTP) error {
	if c.TLS == nil {
		return nil
	}
	err := transport.CheckTLSFiles(tlsFiles(c))
	var fe *transport.TLSFileError
	if errors.As(err, &fe) {
		return &config.Error{File: name, Problems: []config.Problem{{Pointer: "/http/tls/" + fe.Key, Reason: fe.File + ": " + fe.Err.Error()}}}
	}
	return err
}

// newTLS reads the certificates when the config asks for TLS, and registers their metrics and the
// handshake failures' counter.
func (a *app) newTLS(c config.HTTP, ns string, logger log.Logger) error {
	if c.TLS == nil {
		return nil
	}
	var err error
	if a.certs, err = transport.NewCerts(tlsFiles(c)); err != nil {
		return err
	}
	certs := a.certs
	handshakes := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "tls_handshake_failures_total",
		Help: "TLS handshakes on the API listener that failed: a client without the certificate client_auth requires, one that does not trust ours, one speaking something else."})
	handshakeLog := level.Debug(log.With(logger, "component", "tls"))
	a.handshakeFailed = func(err error) {
		handshakes.Inc()
		_ = handshakeLog.Log("msg", "TLS handshake failed", "err", err)
	}
	gauge := func(name, help string, read func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, read)
	}
	a.registry.MustRegister(handshakes,
		gauge("tls_last_reload_successful", "Whether the last read of http.tls's files succeeded (1); 0 while the certificate served is the one read before.",
			func() float64 {
				if ok, _ := certs.LastReload(); ok {
					return 1
				}
				return 0
			}),
		gauge("tls_last_reload_success_timestamp_seconds", "When http.tls's files were last read successfully.",
			func() float64 { _, t := certs.LastReload(); return float64(t.UnixNano()) / 1e9 }),
		gauge("tls_certificate_expiry_timestamp_seconds", "When the certificate the API listener serves expires (its NotAfter).",
			func() float64 { return float64(certs.NotAfter().Unix()) }),
	)
	return nil
}

// maxHTTP2ErrorTypes bounds the type label of app_http2_errors_total: net/http names its HTTP/2
// errors from a fixed list, but the list is its own, so past this many the rest count as other.
const maxHTTP2ErrorTypes = 32

// newHTTP2Errors registers app_http2_errors_total and returns what counts into it: the HTTP/2
// server's CountError, called for each connection or stream it ends for a protocol error (the
// rapid-reset defence's conn_ENHANCE_YOUR_CALM_too_many_early_resets among them).
func newHTTP2Errors(ns string, reg prometheus.Registerer) func(string) {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http2_errors_total",
		Help: "HTTP/2 connections and streams the API listener ended for a protocol error, by net/http's name for it (at most 32 names, then other)."},
		[]string{"type"})
	reg.MustRegister(errs)
	other := errs.WithLabelValues("other") // a series from the start, at 0
	var mu sync.Mutex
	seen := map[string]prometheus.Counter{}
	return func(typ string) {
		mu.Lock()
		c, ok := seen[typ]
		if !ok {
			c = other
			if len(seen) < maxHTTP2ErrorTypes {
				c = errs.WithLabelValues(typ)
				seen[typ] = c
			}
		}
		mu.Unlock()
		c.Inc()
	}
}

// withHTTP2 puts the HTTP/2 handler (transport.H2C) in front of the API server's handler when
// http2.enabled: prior knowledge always (over TLS, what ALPN h2 leads to), the h2c upgrade when
// http2.upgrade asks for it on a clear-text listener (never over TLS, where ALPN chooses).
func withHTTP2(srv *http.Server, c config.HTTP, countError func(string)) error {
	if !c.HTTP2.Enabled {
		return nil
	}
	u, err := transport.NewH2C(srv.Handler, srv, &http2.Server{
		MaxConcurrentStreams:      uint32(c.HTTP2.MaxConcurrentStreams),
		MaxDecoderHeaderTableSize: uint32(c.HTTP2.MaxDecoderHeaderTableSize),
		MaxReadFrameSize:          uint32(c.HTTP2.MaxReadFrameSize),
		IdleTimeout:               c.IdleTimeout.D(),
		CountError:                countError,
	}, c.HTTP2.Upgrade && c.TLS == nil)
	if err != nil {
		return err
	}
	srv.Handler = u
	return nil
}

// tlsWatcherActor reads the certificates again whenever one of their files changes, as the config
// file's watcher does for it (watchFile: the directory watched, so a Secret's swapped symlink is
// seen); there is none without TLS. A read that fails keeps the certificate served, and says so.
func tlsWatcherActor(a *app, c config.HTTP, logger log.Logger) actor {
	if a.certs == nil {
		return actor{}
	}
	files := []string{c.TLS.CertFile, c.TLS.KeyFile}
	if c.TLS.ClientCAFile != "" {
		files = append(files, c.TLS.ClientCAFile)
	}
	logger = log.With(logger, "component", "tls")
	reload := func() {
		if err := a.certs.Reload(); err != nil {
			_ = level.Error(logger).Log("msg", "TLS files changed but do not load: still serving the certificate read before", "err", err)
			return
		}
		_ = level.Info(logger).Log("msg", "TLS certificate reloaded", "not_after", a.certs.NotAfter())
	}
	ctx, cancel := context.WithCancel(context.Background())
	return actor{func() error {
		errs := make(chan error, len(files))
		for _, f := range files {
			go func() { errs <- watchFile(ctx, f, logger, reload) }()
		}
		var first error
		for range files {
			if err := <-errs; err != nil && first == nil {
				first = err
				cancel()
			}
		}
		return first
	}, func(error) {
		cancel()
	}}
}
