package transport

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 on the API is served by golang.org/x/net/http2's Server, which net/http's own HTTP/2
// server is bundled from. net/http could serve prior knowledge itself (http.Protocols'
// UnencryptedHTTP2), but to tell an HTTP/2 connection from an HTTP/1 one it peeks at the first 14
// bytes before it starts counting a request head against MaxHeaderBytes, so the first request of
// every connection could exceed http.max_header_bytes by 14 bytes, and the limit is exact
// (reliability case 55). It has no way in for an HTTP/1.1 Upgrade to h2c either (RFC 7540 3.2,
// deprecated by RFC 9113, but what curl --http2 sends to an http:// URL). So net/http speaks
// HTTP/1 only, and reads the prior-knowledge preface's first line ("PRI * HTTP/2.0", which it
// passes to a handler as a request) or the upgrade request, under its head limit like any other;
// this handler then takes the connection (Hijack) and gives it to x/net's ServeConn, configured
// with the same limits. Over TLS the client's ALPN h2 leads to the same preface (the listener
// decrypts below net/http), and the upgrade is refused.

// H2C takes HTTP/2 connections, by prior knowledge and, when asked, by upgrade, and passes every
// other request to next.
type H2C struct {
	next    http.Handler
	upgrade bool
	base    *http.Server  // the API server, whose limits (MaxHeaderBytes, timeouts) apply
	h2      *http2.Server // serves the HTTP/2 connections
	// shadow is an http.Server of no listener that h2 is configured on (http2.ConfigureServer),
	// for the one thing ConfigureServer gives: its Shutdown sends GOAWAY to every connection h2
	// serves, which the API server's Shutdown does (Shutdown), since a connection taken by Hijack
	// is no longer the API server's to close.
	shadow *http.Server
}

// NewH2C returns the HTTP/2 handler in front of next, for the API server base; h2 carries the
// HTTP/2 limits (MaxConcurrentStreams and the others); upgrade takes HTTP/1.1 requests asking for
// h2c, which only a clear-text listener should.
func NewH2C(next http.Handler, base *http.Server, h2 *http2.Server, upgrade bool) (*H2C, error) {
	u := &H2C{next: next, upgrade: upgrade, base: base, h2: h2, shadow: &http.Server{}}
	if err := http2.ConfigureServer(u.shadow, h2); err != nil {
		return nil, err
	}
	base.RegisterOnShutdown(u.Shutdown)
	return u, nil
}

// Shutdown sends GOAWAY to the HTTP/2 connections: each closes once its streams are answered.
func (u *H2C) Shutdown() {
	_ = u.shadow.Shutdown(context.Background()) // no listener, no connection: it runs the hooks and returns
}

// priorKnowledgeRest is what follows "PRI * HTTP/2.0\r\n\r\n" in HTTP/2's preface.
const priorKnowledgeRest = "SM\r\n\r\n"

// ServeHTTP serves HTTP/2 on a connection whose first request is HTTP/2's preface; upgrades a
// request with Upgrade: h2c, Connection: Upgrade, HTTP2-Settings and no body, answering it as
// stream 1 of the new connection; and passes anything else to next. A request that asks for the
// upgrade with a body (which would have to be read whole before the switch) is answered over
// HTTP/1.1, as RFC 9110 lets a server ignore an Upgrade.
func (u *H2C) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == "PRI" && r.URL.Path == "*" && r.ProtoMajor == 2 && len(r.Header) == 0 {
		u.priorKnowledge(w, r)
		return
	}
	settings, ok := h2cUpgradeRequest(r)
	if !u.upgrade || !ok {
		u.next.ServeHTTP(w, r)
		return
	}
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		u.next.ServeHTTP(w, r)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Time{}) // the HTTP/1.1 request's: HTTP/2 keeps its own
	if _, err := rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"); err != nil {
		return
	}
	if err := rw.Flush(); err != nil {
		return
	}
	markHTTP2(c)
	for _, h := range []string{"Upgrade", "Connection", "Http2-Settings"} {
		r.Header.Del(h)
	}
	u.h2.ServeConn(bufferedConn(c, rw.Reader), &http2.ServeConnOpts{
		Context:        r.Context(),
		BaseConfig:     u.base,
		Handler:        u.next,
		UpgradeRequest: r,
		Settings:       settings,
	})
}

// priorKnowledge serves the connection whose preface's first line net/http read as a request.
func (u *H2C) priorKnowledge(w http.ResponseWriter, r *http.Request) {
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(u.base.ReadHeaderTimeout)) // for the preface's rest
	rest := make([]byte, len(priorKnowledgeRest))
	if _, err := io.ReadFull(rw, rest); err != nil || string(rest) != priorKnowledgeRest {
		return
	}
	_ = c.SetDeadline(time.Time{})
	markHTTP2(c)
	u.h2.ServeConn(bufferedConn(c, rw.Reader), &http2.ServeConnOpts{
		Context:          r.Context(),
		BaseConfig:       u.base,
		Handler:          u.next,
		SawClientPreface: true,
	})
}

// markHTTP2 counts a Listener's connection among the HTTP/2 ones (the listener's own sniffing
// sees a prior-knowledge preface; an upgraded connection starts as HTTP/1.1).
func markHTTP2(c net.Conn) {
	if lc, ok := c.(*conn); ok {
		lc.markHTTP2()
	}
}

// h2cUpgradeRequest returns the decoded HTTP2-Settings of a request that asks for h2c and may
// have it.
func h2cUpgradeRequest(r *http.Request) ([]byte, bool) {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.ContentLength != 0 || len(r.TransferEncoding) > 0 ||
		!headerHasToken(r.Header["Upgrade"], "h2c") || !headerHasToken(r.Header["Connection"], "upgrade") ||
		!headerHasToken(r.Header["Connection"], "http2-settings") {
		return nil, false
	}
	vs := r.Header["Http2-Settings"]
	if len(vs) != 1 {
		return nil, false
	}
	settings, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vs[0], "="))
	return settings, err == nil
}

// headerHasToken reports whether a comma-separated header holds the token, in any case.
func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// bufferedConn reads what the HTTP/1.1 server had buffered past the request (the client's
// preface may be there) before it reads the connection.
func bufferedConn(c net.Conn, r *bufio.Reader) net.Conn {
	if r.Buffered() == 0 {
		return c
	}
	return &readFirst{Conn: c, r: r}
}

type readFirst struct {
	net.Conn
	r *bufio.Reader
}

func (c *readFirst) Read(p []byte) (int, error) {
	if c.r != nil {
		if n := c.r.Buffered(); n > 0 {
			return c.r.Read(p[:min(len(p), n)])
		}
		c.r = nil
	}
	return c.Conn.Read(p)
}
