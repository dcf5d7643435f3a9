package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/anyroute/anyroute/test/kit"
)

// h2cClient speaks HTTP/2 in clear text with prior knowledge, and nothing else.
func h2cClient() *http.Client {
	tr := &http.Transport{Proxy: nil, Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// h2TLSClient speaks HTTP/2 over TLS (ALPN h2), and nothing else.
func h2TLSClient(cfg *tls.Config) *http.Client {
	tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

const mixConfig = `{
  "routes": [{"name": "mix", "match": "/mix/*", "delay": "20ms", "errors": [{"status": 503, "rate": 0.3}, {"status": 429, "rate": 0.1}]}]
}`

// multiplexedCounts sends n requests from c goroutines through client, which multiplexes them as
// HTTP/2 streams over few connections, and checks that every answer came over HTTP/2 (and over
// h2 through ALPN when tls), on fewer connections than requests were in flight, and that
// app_requests_total holds exactly what the client counted, code by code.
func multiplexedCounts(t *testing.T, p *proc, client *http.Client, base string, wantTLS bool) {
	t.Helper()
	const n, c = 300, 50
	var mu sync.Mutex
	answered := map[int]int{}
	conns := map[string]bool{}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range c {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				var conn string
				trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { conn = ci.Conn.LocalAddr().String() }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", fmt.Sprintf("%s/mix/%d", base, i), nil)
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					t.Errorf("request %d: %v", i, err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.ProtoMajor != 2 || (wantTLS && (resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2")) {
					t.Errorf("request %d answered over %s (TLS %v), want HTTP/2", i, resp.Proto, resp.TLS != nil)
				}
				mu.Lock()
				answered[resp.StatusCode]++
				conns[conn] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	if len(conns) >= c {
		t.Errorf("%d requests in flight at once went over %d connections: not multiplexed", c, len(conns))
	}
	m := waitCounts(t, p, n, 10*time.Second)
	counts, _ := requestCounts(m)
	for code, k := range answered {
		if got := counts[fmt.Sprintf("GET mix %d", code)]; got != float64(k) {
			t.Errorf("app_requests_total{route=mix,code=%d} = %v, the client counted %d", code, got, k)
		}
	}
	if len(answered) != 3 {
		t.Errorf("answers by status %v: want 200, 503 and 429 (a status mix)", answered)
	}
	t.Logf("%d requests over %d connection(s), by status %v", n, len(conns), answered)
}

// TestH2CPriorKnowledgeCountsExactly: HTTP/2 in clear text, streams multiplexed over one
// connection, every one answered and counted.
func TestH2CPriorKnowledgeCountsExactly(t *testing.T) {
	p := start(t, mixConfig)
	multiplexedCounts(t, p, h2cClient(), p.api, false)
}

// TestTLSALPNH2CountsExactly: HTTP/2 over TLS, chosen by ALPN, streams multiplexed and counted
// exactly; an HTTP/1.1 client on the same port is answered over HTTP/1.1, and plain HTTP sent to
// the TLS port gets net/http's 400, counted too.
func TestTLSALPNH2CountsExactly(t *testing.T) {
	ca := newTestCA(t, "anyroute test CA")
	dir := t.TempDir()
	srv := ca.issue(t, pkixName("anyroute-server"), true)
	writeFileAtomic(t, dir+"/tls.crt", srv.certPEM)
	writeFileAtomic(t, dir+"/tls.key", srv.keyPEM)
	p := start(t, strings.Replace(mixConfig, `"routes"`, `"http": {"tls": {"cert_file": "`+dir+`/tls.crt", "key_file": "`+dir+`/tls.key"}}, "routes"`, 1))
	base := strings.Replace(p.api, "http://", "https://", 1)
	multiplexedCounts(t, p, h2TLSClient(clientTLS(ca)), base, true)

	h1TLS := clientTLS(ca)
	h1TLS.NextProtos = []string{"http/1.1"}
	h1 := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: h1TLS}, Timeout: 30 * time.Second}
	resp, err := h1.Get(base + "/mix/h1")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("an HTTP/1.1 client got %s, ALPN %q", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	status, _ := kit.Get(p.api + "/mix/plain")
	if status != 400 {
		t.Fatalf("plain HTTP on the TLS port: %d, want 400", status)
	}
	m := waitCounts(t, p, 302, 10*time.Second)
	if got := m.Sum("app_requests_total", "code", "400"); got != 1 {
		t.Fatalf("the plain HTTP request's 400 counted %v times, want 1", got)
	}
}

// h2Conn is a raw HTTP/2 client connection: frames written and read one by one.
type h2Conn struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	encb bytes.Buffer
	dec  *hpack.Decoder
	host string
}

// newH2Conn starts HTTP/2 on c (the preface and an empty SETTINGS), reading from r.
func newH2Conn(t *testing.T, c net.Conn, r io.Reader, host string) *h2Conn {
	t.Helper()
	h := &h2Conn{t: t, c: c, host: host, dec: hpack.NewDecoder(4096, nil)}
	h.enc = hpack.NewEncoder(&h.encb)
	h.fr = http2.NewFramer(c, r)
	h.fr.ReadMetaHeaders = h.dec
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// headers writes a GET of path on stream id, with END_STREAM.
func (h *h2Conn) headers(id uint32, path string) error {
	h.encb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", h.host}, {":path", path}} {
		_ = h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.encb.Bytes(), EndStream: true, EndHeaders: true})
}

// answer reads frames until stream id ends, and returns its status and body.
func (h *h2Conn) answer(id uint32) (string, string) {
	h.t.Helper()
	_ = h.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var status string
	var body bytes.Buffer
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("reading stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				status = f.PseudoValue("status")
				if f.StreamEnded() {
					return status, body.String()
				}
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				body.Write(f.Data())
				if f.StreamEnded() {
					return status, body.String()
				}
			}
		case *http2.GoAwayFrame:
			h.t.Fatalf("GOAWAY %v before stream %d ended", f.ErrCode, id)
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				h.t.Fatalf("stream %d reset: %v", id, f.ErrCode)
			}
		}
	}
}

// TestH2CUpgrade: an HTTP/1.1 request with Upgrade: h2c (what curl --http2 sends) switches the
// connection to HTTP/2 and is answered as its stream 1; the connection then carries more streams.
// A request with a body is answered over HTTP/1.1 instead. Each is counted once.
func TestH2CUpgrade(t *testing.T) {
	p := start(t, `{"routes": [{"name": "up", "match": "/up/*"}]}`)
	host := strings.TrimPrefix(p.api, "http://")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// HTTP2-Settings: SETTINGS_ENABLE_PUSH = 0, base64url
	if _, err := fmt.Fprintf(c, "GET /up/1 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAIAAAAA\r\n\r\n", host); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // a 101's is empty: the connection goes on as HTTP/2, read through br
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "h2c" {
		t.Fatalf("upgrade answered %s %v, want 101 Switching Protocols to h2c", resp.Status, resp.Header)
	}
	h := newH2Conn(t, c, br, host)
	for i, id := range []uint32{1, 3, 5} {
		if id != 1 { // stream 1 is the upgraded request's
			if err := h.headers(id, fmt.Sprintf("/up/%d", i+1)); err != nil {
				t.Fatal(err)
			}
		}
		status, body := h.answer(id)
		e, err := kit.ParseEcho(body)
		if status != "200" || err != nil || e.Path != fmt.Sprintf("/up/%d", i+1) {
			t.Fatalf("stream %d: status %s, body %q (%v)", id, status, body, err)
		}
	}

	withBody := "POST /up/body HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAIAAAAA\r\nContent-Length: 3\r\n\r\nabc"
	c2, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := io.WriteString(c2, withBody); err != nil {
		t.Fatal(err)
	}
	resp2, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp2.Body.Close()
	if resp2.StatusCode != 200 || resp2.ProtoMajor != 1 {
		t.Fatalf("a request with a body and Upgrade: h2c got %s %s, want 200 over HTTP/1.1", resp2.Proto, resp2.Status)
	}
	m := waitCounts(t, p, 4, 10*time.Second)
	if got := m.Sum("app_requests_total", "route", "up", "code", "200"); got != 4 {
		t.Fatalf("app_requests_total{route=up,code=200} = %v, want 4", got)
	}
}

// TestHTTP2RapidResetFlood: connections that open streams and reset them at once, over and over
// (CVE-2023-44487), are closed by net/http's defence (GOAWAY ENHANCE_YOUR_CALM once a connection
// queues four times max_concurrent_streams handlers), counted in app_http2_errors_total, while
// another client's requests go on being answered, every one, and counted exactly.
func TestHTTP2RapidResetFlood(t *testing.T) {
	p := start(t, `{
  "http": {"http2": {"max_concurrent_streams": 4}},
  "routes": [{"name": "flood", "match": "/flood", "cpu": "20ms"}, {"name": "fast", "match": "/fast"}]
}`)
	host := strings.TrimPrefix(p.api, "http://")
	const floodConns = 10
	calmed := make(chan error, floodConns)
	var floodWG sync.WaitGroup
	floodWG.Go(func() {
		for range floodConns {
			calmed <- rapidReset(host, 100000)
		}
	})

	client := h2cClient()
	var fastOK int
	floodDone := make(chan struct{})
	go func() { floodWG.Wait(); close(floodDone) }()
	for done := false; !done || fastOK < 20; {
		select {
		case <-floodDone:
			done = true
		default:
		}
		resp, err := client.Get(p.api + "/fast")
		if err != nil {
			t.Fatalf("a request beside the flood failed after %d answered: %v", fastOK, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("a request beside the flood got %d", resp.StatusCode)
		}
		fastOK++
	}
	close(calmed)
	for err := range calmed {
		if err != nil {
			t.Fatalf("a flooding connection: %v", err)
		}
	}
	var m kit.Metrics
	kit.WaitUntil(t, 10*time.Second, "the fast route's answers counted", func() (bool, string, error) {
		m = p.metrics(t)
		got := m.Sum("app_requests_total", "route", "fast")
		if got > float64(fastOK) {
			return false, "", fmt.Errorf("app_requests_total{route=fast} = %v, more than the %d answers", got, fastOK)
		}
		return got == float64(fastOK), fmt.Sprintf("%v of %d", got, fastOK), nil
	})
	if got := m.Sum("app_http2_errors_total", "type", "conn_ENHANCE_YOUR_CALM_too_many_early_resets"); got != floodConns {
		t.Fatalf("app_http2_errors_total{type=conn_ENHANCE_YOUR_CALM_too_many_early_resets} = %v, want one per flooding connection (%d)", got, floodConns)
	}
	t.Logf("%d requests answered beside %d flooding connections", fastOK, floodConns)
}

// errNotCalmed is rapidReset's error when the server let a connection reset every stream it opened.
var errNotCalmed = errors.New("the server never closed the connection for its resets")

// rapidReset opens an h2c connection and opens and resets up to n streams on it, as fast as it
// can; it returns nil once the server answers GOAWAY ENHANCE_YOUR_CALM.
func rapidReset(host string, n int) error {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	goaway := make(chan http2.ErrCode, 1)
	h := &h2Conn{c: c, host: host, dec: hpack.NewDecoder(4096, nil)}
	h.enc = hpack.NewEncoder(&h.encb)
	h.fr = http2.NewFramer(c, c)
	go func() {
		defer close(goaway)
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goaway <- g.ErrCode
				return
			}
		}
	}()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return err
	}
	if err := h.fr.WriteSettings(); err != nil {
		return err
	}
	for i := range n {
		id := uint32(2*i + 1)
		if h.headers(id, "/flood") != nil || h.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the server closed the connection
		}
	}
	code, ok := <-goaway
	switch {
	case !ok:
		return errNotCalmed
	case code != http2.ErrCodeEnhanceYourCalm:
		return fmt.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
	}
	return nil
}

// TestHTTP2DrainAnswersOpenStreams: SIGTERM with HTTP/2 connections open, by prior knowledge and
// by upgrade. Streams in flight are answered and counted; the idle connections get GOAWAY instead
// of holding the drain: the process exits 0 long before shutdown.grace, which only a drain waiting
// for HTTP/2 connections to close by themselves would use up.
func TestHTTP2DrainAnswersOpenStreams(t *testing.T) {
	p := start(t, `{"shutdown": {"grace": "1m"}, "http": {"write_timeout": "2m"},
  "routes": [{"name": "slow", "match": "/slow", "delay": "1500ms"}, {"name": "up", "match": "/up"}]}`)
	host := strings.TrimPrefix(p.api, "http://")

	// An upgraded connection, idle after its one stream.
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET /up HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAIAAAAA\r\n\r\n", host); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	_ = resp.Body.Close() // a 101's is empty: the connection goes on as HTTP/2, read through br
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s, want 101 Switching Protocols", resp.Status)
	}
	up := newH2Conn(t, c, br, host)
	if status, _ := up.answer(1); status != "200" {
		t.Fatalf("upgraded stream answered %s", status)
	}

	// Five streams in flight on one prior-knowledge connection.
	client := h2cClient()
	const inFlight = 5
	// The streams report to the test rather than calling t: one may end after the test failed.
	type answer struct {
		status int
		err    error
	}
	answers := make(chan answer, inFlight)
	for range inFlight {
		go func() {
			resp, err := client.Get(p.api + "/slow")
			if err != nil {
				answers <- answer{err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			answers <- answer{status: resp.StatusCode}
		}()
	}
	kit.WaitUntil(t, 10*time.Second, "the five streams in flight", func() (bool, string, error) {
		v := p.metrics(t).Sum("app_requests_in_flight")
		return v == inFlight, fmt.Sprint(v), nil
	})
	sent := time.Now()
	p.SignalT(t, syscall.SIGTERM)
	for range inFlight {
		if a := <-answers; a.err != nil || a.status != 200 {
			t.Fatalf("a stream in flight at SIGTERM got %d (%v), want 200", a.status, a.err)
		}
	}
	// The upgraded connection is told to go away.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		f, err := up.fr.ReadFrame()
		if err != nil {
			t.Fatalf("the upgraded connection ended without GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeNo {
				t.Fatalf("GOAWAY %v, want NO_ERROR", g.ErrCode)
			}
			break
		}
	}
	if code := p.WaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if took := time.Since(sent); took > 30*time.Second {
		t.Fatalf("the drain took %v: it waited for the HTTP/2 connections instead of sending GOAWAY", took)
	}
	if strings.Contains(p.Logs(), "API drain cut short") {
		t.Fatalf("the drain was cut short:\n%s", p.Logs())
	}
}

// TestHTTP2FaultsResetTheStream: a route's connection faults act on the HTTP/2 stream, not on the
// connection its other streams share: reset, close and malformed reset the stream before any
// answer, truncate after half the body; the connection goes on answering, and each fault is
// counted under its code as on HTTP/1.1.
func TestHTTP2FaultsResetTheStream(t *testing.T) {
	p := start(t, `{"routes": [
  {"name": "reset", "match": "/reset", "faults": [{"kind": "reset", "rate": 1}]},
  {"name": "close", "match": "/close", "faults": [{"kind": "close", "rate": 1}]},
  {"name": "malformed", "match": "/malformed", "faults": [{"kind": "malformed", "rate": 1}]},
  {"name": "truncate", "match": "/truncate", "body_bytes": 4096, "faults": [{"kind": "truncate", "rate": 1}]},
  {"name": "ok", "match": "/ok"}]}`)
	client := h2cClient()
	conns := map[string]bool{}
	get := func(path string) (int, error) {
		var conn string
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { conn = ci.Conn.LocalAddr().String() }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", p.api+path, nil)
		resp, err := client.Do(req)
		if conn != "" {
			conns[conn] = true
		}
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	const each = 3
	for range each {
		for _, kind := range []string{"reset", "close", "malformed", "truncate"} {
			status, err := get("/" + kind)
			var se http2.StreamError
			if err == nil || (!errors.As(err, &se) && !strings.Contains(err.Error(), "stream error")) {
				t.Fatalf("%s over HTTP/2: status %d, err %v; want the stream reset", kind, status, err)
			}
			if kind == "truncate" && status != 200 {
				t.Fatalf("truncate: the head said %d, want 200 before the body broke off", status)
			}
		}
		if status, err := get("/ok"); err != nil || status != 200 {
			t.Fatalf("a request after the faults: %d %v", status, err)
		}
	}
	if len(conns) != 1 {
		t.Errorf("the requests went over %d connections: a fault broke the shared connection", len(conns))
	}
	m := waitCounts(t, p, 5*each, 10*time.Second)
	for _, kind := range []string{"reset", "close", "malformed", "truncate"} {
		if got := m.Sum("app_requests_total", "route", kind, "code", kind); got != each {
			t.Errorf("app_requests_total{route=%s,code=%s} = %v, want %d", kind, kind, got, each)
		}
	}
}
