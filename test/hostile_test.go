package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// rawExchange writes raw bytes to the API port and reads the first response: its status line,
// and its body (empty when there is no response to read).
func rawExchange(t *testing.T, addr, raw string) (status string, body string) {
	t.Helper()
	c := kit.DialRaw(t, addr)
	defer c.Close()
	resp, body, err := c.Exchange(raw) //nolint:bodyclose // Exchange has read and closed the body
	if err != nil {
		return err.Error(), ""
	}
	return resp.Proto + " " + resp.Status, body
}

// TestBadRequestsGetAClearStatus sends what browsers and libraries never would, and checks each
// gets its status while the service goes on answering normal requests.
func TestBadRequestsGetAClearStatus(t *testing.T) {
	p := start(t, `{"http": {"max_body_bytes": 1024, "max_header_bytes": 8192}}`)
	addr := strings.TrimPrefix(p.api, "http://")
	long := strings.Repeat("a", 64<<10)
	tests := []struct {
		name, raw, want string
	}{
		{"oversized header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", "431"},
		{"64 KiB path", "GET /" + long + " HTTP/1.1\r\nHost: x\r\n\r\n", "431"},
		{"declared body too large", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n", "413"},
		{"chunked body too large", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("400\r\n"+strings.Repeat("z", 1024)+"\r\n", 4) + "0\r\n\r\n", "413"},
		{"malformed request line", "GARBAGE\r\n\r\n", "400"},
		{"invalid method token", "G(E)T / HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"invalid percent-encoding", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"NUL byte in path", "GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"control byte in path", "GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"encoded NUL in path", "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", "200"},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\n\r\n", "200"},
		{"unknown protocol version", "GET / HTTP/7.1\r\nHost: x\r\n\r\n", "505"},
		{"invented method", "PURGE /cache HTTP/1.1\r\nHost: x\r\n\r\n", "200"},
		{"garbage trace headers", "GET /t HTTP/1.1\r\nHost: x\r\nuber-trace-id: ::::\r\ntraceparent: zz-zz\r\nb3: -\r\n" +
			"X-B3-TraceId: " + strings.Repeat("f", 4000) + "\r\n\r\n", "200"},
	}
	for _, tt := range tests {
		status, body := rawExchange(t, addr, tt.raw)
		if !strings.HasPrefix(status, "HTTP/1.") || !strings.Contains(status, " "+tt.want+" ") {
			t.Errorf("%s: got %q, want status %s", tt.name, status, tt.want)
		}
		if tt.want == "200" {
			if e, err := kit.ParseEcho(body); err != nil || e.Status != 200 {
				t.Errorf("%s: no JSON echo of status 200: %+v %v", tt.name, e, err)
			}
		}
		if code, _ := kit.Get(p.api + "/still/serving"); code != 200 {
			t.Fatalf("after %s: the service answers %d", tt.name, code)
		}
	}
}

func TestPipelinedRequestsAnswerInOrder(t *testing.T) {
	p := start(t, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.api, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var batch strings.Builder
	for i := range 5 {
		fmt.Fprintf(&batch, "GET /p/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	if _, err := io.WriteString(conn, batch.String()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for i := range 5 {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e, err := kit.ParseEcho(string(body))
		if resp.StatusCode != 200 || err != nil || e.Path != fmt.Sprintf("/p/%d", i) {
			t.Fatalf("response %d: %d %s %v", i, resp.StatusCode, body, err)
		}
	}
}

// TestSlowHeadersAreCutOff is a slowloris: one byte of headers a while, forever. The connection is
// closed after read_header_timeout, and other clients are served meanwhile.
func TestSlowHeadersAreCutOff(t *testing.T) {
	p := start(t, `{"http": {"read_header_timeout": "1s"}}`)
	addr := strings.TrimPrefix(p.api, "http://")
	const slow = 20
	closed := make(chan time.Duration, slow)
	for range slow {
		go func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				closed <- -1
				return
			}
			defer conn.Close()
			begin := time.Now()
			_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
			for {
				if _, err := io.WriteString(conn, "X"); err != nil {
					break
				}
				_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					break // the server closed the connection (it may first answer 408)
				}
				if time.Since(begin) > 10*time.Second {
					break
				}
			}
			closed <- time.Since(begin)
		}()
	}
	// Meanwhile others are served.
	for range 20 {
		if code, _ := kit.Get(p.api + "/fast"); code != 200 {
			t.Fatalf("a normal client got %d during the slowloris", code)
		}
	}
	for range slow {
		if d := <-closed; d < 0 || d > 5*time.Second {
			t.Fatalf("a slow-header connection was held for %v (read_header_timeout 1s)", d)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
