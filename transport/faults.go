package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/anyroute/anyroute/service"
)

// The faults are carried out here, where the connection is: the service only decided that a
// request gets one (Response.Fault). Those that break the connection take it from net/http
// (Hijack), which then neither answers nor keeps the connection, nor tracks it for a graceful
// shutdown: a hang ends with the shutdown's grace (the request's context) all the same.

// breaksConnection reports whether a fault of kind k answers nothing before it breaks the
// connection, so the answer need not be built.
func breaksConnection(k service.FaultKind) bool {
	return k == service.FaultReset || k == service.FaultClose || k == service.FaultHang || k == service.FaultMalformed
}

// malformedAnswer is what a malformed fault writes: a first line that is not a status line, so
// no HTTP client parses it (its protocol is not HTTP/x.y), and a blank line after it, so a client
// that waits for a head's end does not wait for the close.
var malformedAnswer = []byte("ANYROUTE/0 MALFORMED \x00\xff\r\n\r\n")

// breakConnection carries out a fault that answers nothing: reset (RST: SO_LINGER 0, then close),
// close (FIN, no answer), malformed (bytes that are not an HTTP response, then close), or hang
// (nothing until the client closes its end, hangFor passes, or ctx ends; then close). hangFor 0
// waits without a limit.
//
// An HTTP/2 stream has no connection of its own to break (Hijack is not supported there): the
// fault resets the stream instead (RST_STREAM, after the hang for a hang), and the connection's
// other streams go on.
func breakConnection(ctx context.Context, w http.ResponseWriter, k service.FaultKind, hangFor time.Duration) error {
	conn, _, err := http.NewResponseController(w).Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		if k == service.FaultHang {
			hangUntil(ctx, hangFor, nil) // ctx ends when the client resets the stream, or leaves
		}
		panic(http.ErrAbortHandler) // net/http resets the stream, and logs nothing
	}
	if err != nil {
		return err
	}
	switch k {
	case service.FaultReset:
		if l, ok := conn.(interface{ SetLinger(sec int) error }); ok {
			_ = l.SetLinger(0) // close then sends RST instead of FIN
		}
	case service.FaultMalformed:
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second)) // Hijack cleared write_timeout's
		_, _ = conn.Write(malformedAnswer)
	case service.FaultHang:
		hang(ctx, conn, hangFor)
	}
	return conn.Close()
}

// hang waits until the client closes its end (a read ends), hangFor passes, or ctx ends; it
// reads and drops whatever the client sends meanwhile.
func hang(ctx context.Context, conn net.Conn, hangFor time.Duration) {
	left := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(left)
	}()
	hangUntil(ctx, hangFor, left)
	_ = conn.SetReadDeadline(time.Now()) // ends the read, so the reader is gone when hang returns
	<-left
}

// hangUntil waits until hangFor passes (never, when it is 0), ctx ends, or left is closed (a nil
// left never is): the wait of a hang, on a connection of its own or on an HTTP/2 stream.
func hangUntil(ctx context.Context, hangFor time.Duration, left <-chan struct{}) {
	var limit <-chan time.Time
	if hangFor > 0 {
		t := time.NewTimer(hangFor)
		defer t.Stop()
		limit = t.C
	}
	select {
	case <-left:
	case <-limit:
	case <-ctx.Done():
	}
}

// writeFaulty carries out a fault that writes the answer, or part of it: slow_body (the whole
// body at BytesPerSecond, within the server's write_timeout) and truncate (the head announcing
// the whole body, half of it, then the connection closed).
func writeFaulty(ctx context.Context, w http.ResponseWriter, status int, body []byte, f *service.Fault) error {
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	if f.Kind == service.FaultTruncate {
		if _, err := w.Write(body[:len(body)/2]); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil { // Hijack drops what the response still buffers
			return err
		}
		conn, _, err := rc.Hijack()
		if errors.Is(err, http.ErrNotSupported) {
			panic(http.ErrAbortHandler) // HTTP/2: the stream is reset after half its body
		}
		if err != nil {
			return err
		}
		return conn.Close()
	}
	if err := rc.Flush(); err != nil { // the head at once, as a slow server sends it
		return err
	}
	return dribble(ctx, w, rc, body, f.BytesPerSecond)
}

// dribble writes body at rate bytes a second: at each tick, what is due by then, so the pace
// holds on average however late the ticks come. A tick is 20 ms, or a byte's time when that is
// longer.
func dribble(ctx context.Context, w io.Writer, rc *http.ResponseController, body []byte, rate int) error {
	begin, written := time.Now(), 0 // before the ticker, so the tick a byte is due at finds it due
	t := time.NewTicker(max(20*time.Millisecond, time.Second/time.Duration(rate)))
	defer t.Stop()
	for written < len(body) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		due := min(len(body), int(time.Since(begin).Seconds()*float64(rate)))
		if due <= written {
			continue
		}
		if _, err := w.Write(body[written:due]); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		written = due
	}
	return nil
}

// retryAfter is the Retry-After header of a request its rule's quota refused, nil for any other.
func retryAfter(err error) []string {
	var rl *service.RateLimitError
	if !errors.As(err, &rl) {
		return nil
	}
	return []string{strconv.Itoa(int(rl.RetryAfter / time.Second))}
}
