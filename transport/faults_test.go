package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

// faultServer serves every request with the given fault, a 200 of padding bytes otherwise.
func faultServer(t *testing.T, f *service.Fault, padding int, hangFor time.Duration) string {
	t.Helper()
	ep := func(context.Context, any) (any, error) {
		return &endpoint.HandleResponse{Response: service.Response{Status: 200, Route: "r", Padding: padding, Fault: f}}, nil
	}
	srv := httptest.NewServer(NewHTTPHandler(ep, Options{HangFor: hangFor}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rawGet sends one GET on a new connection and returns the connection and a reader of it.
func rawGet(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

func TestConnectionFaults(t *testing.T) {
	t.Run("reset", func(t *testing.T) {
		_, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultReset}, 0, 0))
		if b, err := io.ReadAll(r); !errors.Is(err, syscall.ECONNRESET) || len(b) != 0 {
			t.Fatalf("read %q, %v; want nothing and ECONNRESET", b, err)
		}
	})
	t.Run("close", func(t *testing.T) {
		_, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultClose}, 0, 0))
		if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
			t.Fatalf("read %q, %v; want nothing, then EOF", b, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultMalformed}, 0, 0))
		if resp, err := http.ReadResponse(r, nil); err == nil {
			resp.Body.Close()
			t.Fatalf("net/http parsed the malformed answer: %v", resp.Status)
		}
	})
	t.Run("truncate", func(t *testing.T) {
		_, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultTruncate}, 1000, 0))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) || resp.ContentLength < 1000 || int64(len(b)) != resp.ContentLength/2 {
			t.Fatalf("%d of %d body bytes, then %v; want half, then an unexpected EOF", len(b), resp.ContentLength, err)
		}
	})
	t.Run("slow_body", func(t *testing.T) {
		_, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultSlowBody, BytesPerSecond: 4000}, 1000, 0))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		begin := time.Now()
		b, err := io.ReadAll(resp.Body)
		took := time.Since(begin)
		want := time.Duration(float64(len(b)) / 4000 * float64(time.Second))
		if err != nil || int64(len(b)) != resp.ContentLength || resp.StatusCode != 200 {
			t.Fatalf("%d %d of %d bytes, %v", resp.StatusCode, len(b), resp.ContentLength, err)
		}
		if took < want*8/10 || took > want+2*time.Second { // never faster; slower only by a loaded machine
			t.Errorf("%d bytes in %v, want about %v at 4000 B/s", len(b), took, want)
		}
	})
	t.Run("hang until the client leaves", func(t *testing.T) {
		conn, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultHang}, 0, 0))
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var ne net.Error
		if b, err := r.ReadByte(); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read %q, %v; want the client's own timeout", b, err)
		}
	})
	t.Run("hang bounded", func(t *testing.T) {
		_, r := rawGet(t, faultServer(t, &service.Fault{Kind: service.FaultHang}, 0, 200*time.Millisecond))
		begin := time.Now()
		if b, err := io.ReadAll(r); err != nil || len(b) != 0 || time.Since(begin) < 150*time.Millisecond {
			t.Fatalf("read %q, %v after %v; want nothing, then EOF after the bound", b, err, time.Since(begin))
		}
	})
}

func TestRateLimitedAnswerSaysWhenToRetry(t *testing.T) {
	ep := func(context.Context, any) (any, error) {
		return &endpoint.HandleResponse{Response: service.Response{Status: 429, Route: "r",
			Err: &service.RateLimitError{RetryAfter: 3 * time.Second}}}, nil
	}
	srv := httptest.NewServer(NewHTTPHandler(ep, Options{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || !strings.Contains(string(b), `"error":"rate limit exceeded"`) {
		t.Fatalf("%d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}
