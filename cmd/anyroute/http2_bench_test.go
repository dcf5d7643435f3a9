package main

import (
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/go-kit/log"

	"github.com/anyroute/anyroute/config"
	"github.com/anyroute/anyroute/transport"
)

// BenchmarkH2C sends requests over HTTP/2 in clear text (prior knowledge), many streams at once on
// one connection, on loopback: to the API server wired as apiActor wires it (transport.Listener,
// net/http's HTTP/1 server, transport.H2C and x/net/http2, every layer of the request path), and to
// a bare net/http server serving h2c itself (http.Protocols) with a handler that writes a JSON
// answer of the same size. The two side by side say what the service costs over HTTP/2; the
// numbers are for reading, nothing asserts them.
//
//	go test -run '^$' -bench H2C -benchmem ./cmd/anyroute/
func BenchmarkH2C(b *testing.B) {
	body := []byte(`{"method":"GET","path":"/orders/42","query":"expand=1","route":"other","status":200,"instance":"bench","trace_id":"","request_id":"0123456789abcdef0123456789abcdef"}` + "\n")
	bare := func(b *testing.B) (*http.Server, net.Listener) {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv := &http.Server{Protocols: p, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Content-Type"] = []string{"application/json"}
			_, _ = w.Write(body)
		})}
		return srv, listenLoopback(b)
	}
	service := func(b *testing.B) (*http.Server, net.Listener) {
		cfg := config.Default()
		a, err := newApp(cfg, log.NewNopLogger())
		if err != nil {
			b.Fatal(err)
		}
		srv := newAPIServer(cfg.HTTP, a.api, log.NewNopLogger())
		srv.ConnContext = transport.ConnContext
		if err := withHTTP2(srv, cfg.HTTP, a.http2Errors); err != nil {
			b.Fatal(err)
		}
		return srv, transport.NewListener(listenLoopback(b), 1024, a.rejected)
	}
	for _, bc := range []struct {
		name  string
		serve func(*testing.B) (*http.Server, net.Listener)
	}{{"bare-net-http", bare}, {"anyroute", service}} {
		b.Run(bc.name, func(b *testing.B) {
			srv, ln := bc.serve(b)
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true)
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + ln.Addr().String() + "/orders/42?expand=1"
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
						b.Errorf("%s %d", resp.Proto, resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

func listenLoopback(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}
