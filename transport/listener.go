package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Listener is the API's listener. It holds at most a given number of connections at once, as
// netutil.LimitListener does, but without a second wrapper around each connection, which every
// read, write and deadline of a request would go through. It counts the connections it accepted,
// and the answers net/http writes by itself, to requests that never reach a handler (a request
// line it cannot parse: 400; a head past the limit: 431; an unknown transfer coding: 501; an HTTP
// version it does not speak: 505; an Expect header other than 100-continue: 417). net/http offers
// no hook for those; it writes each in one Write straight to the connection, with headers no
// handler of ours writes, which is how the connection recognises them.
//
// With TLS (UseTLS) the connection is encrypted under this wrapper, not above it: net/http sees a
// plain connection, so what it writes by itself is still read in clear here and counted, and an
// HTTP/2 client (ALPN h2) arrives as a prior-knowledge h2c one would, which H2C serves. The price
// is that Request.TLS is nil: the client's certificate is read from the connection instead
// (ClientSubject).
//
// It also tells the connections speaking HTTP/2 from the others (H2C marks those it takes), so
// that a drain can wait for the HTTP/1 ones to close by themselves and let GOAWAY end the HTTP/2
// ones.
type Listener struct {
	net.Listener
	rejected  func(status int)
	slots     chan struct{} // one per open connection: Accept waits for a free one
	closed    chan struct{}
	accepted  atomic.Uint64
	open      atomic.Int64
	openH2    atomic.Int64
	closeOnce sync.Once
	// tls, when set, is the connections' TLS config; handshakeFailed is told each failed
	// handshake but those of clients that left before sending a byte.
	tls             *tls.Config
	handshakeFailed func(error)
}

// NewListener wraps ln, holding at most maxConns connections at once; rejected is called with the
// status of every answer net/http writes by itself.
func NewListener(ln net.Listener, maxConns int, rejected func(status int)) *Listener {
	return &Listener{Listener: ln, rejected: rejected, slots: make(chan struct{}, maxConns), closed: make(chan struct{})}
}

// Accept implements net.Listener. While maxConns connections are open it waits for one to close
// before it accepts another, so that the kernel's backlog, not the process's file descriptors,
// holds the rest.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.accepted.Add(1)
	l.open.Add(1)
	if l.tls != nil {
		tc := tls.Server(c, l.tls)
		return &conn{Conn: tc, raw: c, tls: tc, l: l}, nil
	}
	return &conn{Conn: c, raw: c, l: l}, nil
}

// UseTLS makes every connection accepted from now on speak TLS with cfg; call it before serving.
// failed is told every handshake that fails (a client without a certificate mTLS requires, one
// that does not trust ours), but not a client that closes before sending anything (a TCP probe).
func (l *Listener) UseTLS(cfg *tls.Config, failed func(error)) {
	l.tls, l.handshakeFailed = cfg, failed
}

// Close closes the listener once; closing it again does nothing and reports nothing, so that a
// drain can stop accepting before http.Server.Shutdown closes it too.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		_ = l.Listener.Close()
	})
	return nil
}

// Accepted returns the number of connections accepted so far.
func (l *Listener) Accepted() uint64 { return l.accepted.Load() }

// Open returns the number of accepted connections not yet closed.
func (l *Listener) Open() int64 { return l.open.Load() }

// OpenHTTP2 returns how many of the open connections speak HTTP/2.
func (l *Listener) OpenHTTP2() int64 { return l.openH2.Load() }

// connKey is the context key of the connection a request came on (ConnContext).
type connKey struct{}

// ConnContext is http.Server's ConnContext for the API: it keeps the Listener's connection in
// the context of every request that comes on it, where ClientSubject and the h2c upgrade find it.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*conn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// ClientSubject is the subject of the certificate the client of a request's connection presented
// and the listener verified (mTLS), "" when it presented none or the connection is clear text.
func ClientSubject(ctx context.Context) string {
	c, _ := ctx.Value(connKey{}).(*conn)
	if c == nil || c.tls == nil {
		return ""
	}
	c.subjectOnce.Do(func() {
		st := c.tls.ConnectionState()
		if len(st.PeerCertificates) > 0 && len(st.VerifiedChains) > 0 {
			c.subject = st.PeerCertificates[0].Subject.String()
		}
	})
	return c.subject
}

// clientSubjectIf is ClientSubject when identity is on, else "" with no lookup.
func clientSubjectIf(ctx context.Context, identity bool) string {
	if !identity {
		return ""
	}
	return ClientSubject(ctx)
}

// netHTTPErrorHeaders follow the status line of every answer net/http writes itself
// (net/http's errorHeaders); the API's answers are JSON and never carry them.
var netHTTPErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// maxRejectionHead bounds how much of a write is searched: net/http's own answers are short.
const maxRejectionHead = 256

type conn struct {
	net.Conn           // tls, or raw
	raw       net.Conn // the TCP connection
	tls       *tls.Conn
	l         *Listener
	closeOnce sync.Once
	// handshook and handshakeErr belong to the reader (net/http reads a connection from one
	// goroutine at a time): whether the TLS handshake was made, and the error it failed with,
	// which every read returns.
	handshook    bool
	handshakeErr error
	proto        atomic.Int32 // protoHTTP1, protoHTTP2, or protoClosed once closed
	// subject is the verified client certificate's subject, read once per connection (its
	// certificates do not change after the handshake) by the first request that asks.
	subjectOnce sync.Once
	subject     string
}

const (
	protoHTTP1 = iota
	protoHTTP2
	protoClosed
)

func (c *conn) Read(p []byte) (int, error) {
	if c.tls != nil && !c.handshook {
		c.handshakeErr = c.handshake()
	}
	if c.handshakeErr != nil {
		return 0, c.handshakeErr
	}
	return c.Conn.Read(p)
}

// markHTTP2 counts the connection among the HTTP/2 ones, unless it is already closed.
func (c *conn) markHTTP2() {
	if c.proto.CompareAndSwap(protoHTTP1, protoHTTP2) {
		c.l.openH2.Add(1)
	}
}

// handshake makes the TLS handshake, within the read deadline net/http set for the request's
// head. A failure reads as a failed read, every time (net/http reads again after its HTTP/2
// preface check), which net/http closes the connection on quietly, where any other error would
// have it write a 400 no client sees (and the listener count it); a client
// that sent plain HTTP gets the 400 net/http itself gives one on a TLS port, counted.
func (c *conn) handshake() error {
	c.handshook = true
	err := c.tls.Handshake()
	if err == nil {
		return nil
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader[:]) {
		c.l.rejected(400)
		_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
	} else if !errors.Is(err, io.EOF) && c.l.handshakeFailed != nil {
		c.l.handshakeFailed(err)
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// looksLikeHTTP reports whether the first bytes of a would-be TLS record are an HTTP request's.
func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.proto.Swap(protoClosed) == protoHTTP2 {
			c.l.openH2.Add(-1)
		}
		c.l.open.Add(-1)
		<-c.l.slots
	})
	return err
}

func (c *conn) Write(p []byte) (int, error) {
	if status, ok := rejectionStatus(p); ok {
		c.l.rejected(status)
	}
	return c.Conn.Write(p)
}

// SetLinger reaches the TCP connection's, so that a reset fault can make Close send RST.
func (c *conn) SetLinger(sec int) error {
	if l, ok := c.raw.(interface{ SetLinger(sec int) error }); ok {
		return l.SetLinger(sec)
	}
	return errors.ErrUnsupported
}

// CloseWrite keeps net/http's half-close before it closes a connection it refused a request on,
// so that the client reads the answer instead of a reset; over TLS, after the close_notify alert.
func (c *conn) CloseWrite() error {
	if c.tls != nil {
		_ = c.tls.CloseWrite()
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// expectationFailed is the status line's rest of net/http's answer to an Expect header it does not
// support, which it writes through an ordinary response (HTTP/1.0 or HTTP/1.1, Connection: close,
// no body) rather than with the error headers of its other refusals.
var expectationFailed = []byte(" 417 Expectation Failed\r\n")

// rejectionStatus returns the status of p when p is one of net/http's own answers.
func rejectionStatus(p []byte) (int, bool) {
	// "HTTP/1.x NNN ": only 4xx and 5xx are worth the search.
	if len(p) < 13 || !bytes.HasPrefix(p, []byte("HTTP/1.")) || (p[9] != '4' && p[9] != '5') || p[12] != ' ' {
		return 0, false
	}
	if bytes.HasPrefix(p[8:], expectationFailed) {
		// Every answer of the API but 204, 205 and 304 carries a Content-Type (a route may
		// answer 417 too): net/http's own has none.
		head, _, complete := bytes.Cut(p[:min(len(p), maxRejectionHead)], []byte("\r\n\r\n"))
		if !complete || bytes.Contains(head, []byte("\r\nContent-Type:")) {
			return 0, false
		}
		return 417, true
	}
	if p[7] != '1' { // net/http writes its other refusals as HTTP/1.1 whatever the request
		return 0, false
	}
	if !bytes.Contains(p[:min(len(p), maxRejectionHead)], netHTTPErrorHeaders) {
		return 0, false
	}
	status := 0
	for _, d := range p[9:12] {
		if d < '0' || d > '9' {
			return 0, false
		}
		status = status*10 + int(d-'0')
	}
	return status, true
}
