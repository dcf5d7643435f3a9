package transport

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
)

// Listener is the API's listener. It holds at most a given number of connections at once, as
// netutil.LimitListener does, but without a second wrapper around each connection, which every
// read, write and deadline of a request would go through. It counts the connections it accepted,
// and the answers net/http writes by itself, to requests that never reach a handler (a request
// line it cannot parse: 400; a head past the limit: 431; an unknown transfer coding: 501; an HTTP
// version it does not speak: 505). net/http offers no hook for those; it writes each in one Write
// straight to the connection, with headers no handler of ours writes, which is how the connection
// recognises them.
type Listener struct {
	net.Listener
	rejected  func(status int)
	slots     chan struct{} // one per open connection: Accept waits for a free one
	closed    chan struct{}
	accepted  atomic.Uint64
	open      atomic.Int64
	closeOnce sync.Once
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
	return &conn{Conn: c, l: l}, nil
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

// netHTTPErrorHeaders follow the status line of every answer net/http writes itself
// (net/http's errorHeaders); the API's answers are JSON and never carry them.
var netHTTPErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// maxRejectionHead bounds how much of a write is searched: net/http's own answers are short.
const maxRejectionHead = 256

type conn struct {
	net.Conn
	l         *Listener
	closeOnce sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
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

// CloseWrite keeps net/http's half-close before it closes a connection it refused a request on,
// so that the client reads the answer instead of a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rejectionStatus returns the status of p when p is one of net/http's own answers.
func rejectionStatus(p []byte) (int, bool) {
	// "HTTP/1.1 NNN ": only 4xx and 5xx are worth the search.
	if len(p) < 13 || !bytes.HasPrefix(p, []byte("HTTP/1.1 ")) || (p[9] != '4' && p[9] != '5') || p[12] != ' ' {
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
