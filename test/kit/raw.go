package kit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// RawConn is a TCP connection to an HTTP server that a test writes raw bytes to: for requests no
// client library would send (smuggling shapes, malformed lines, oversized heads).
type RawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialRaw connects to addr (host:port), failing the test when it cannot. Every read and write on
// the connection fails after 10 s, so a server that never answers cannot hang the test; the
// connection is closed at the test's cleanup if not before.
func DialRaw(t testing.TB, addr string) *RawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &RawConn{conn: conn, r: bufio.NewReader(conn)}
}

// Exchange writes raw and reads one response and its whole body (the response's Body is then
// closed). A write or read that fails is the error, "write failed: ..." or "read failed: ...".
func (c *RawConn) Exchange(raw string) (*http.Response, string, error) {
	if _, err := io.WriteString(c.conn, raw); err != nil {
		return nil, "", fmt.Errorf("write failed: %w", err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, "", fmt.Errorf("read failed: %w", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b), nil
}

// ClosedByServer reports whether the server has closed the connection: a read ends in EOF within
// wait rather than waiting for more.
func (c *RawConn) ClosedByServer(wait time.Duration) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	_, err := c.r.ReadByte()
	return errors.Is(err, io.EOF)
}

// Close closes the connection.
func (c *RawConn) Close() error { return c.conn.Close() }
