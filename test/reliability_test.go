package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anyroute/anyroute/test/kit"
)

// answer is what exchange read of a response.
type answer struct {
	StatusCode  int
	Close       bool // Connection: close (http.ReadResponse takes the header out)
	ContentType string
}

// exchange writes raw to a new connection, reads one response, then reports whether the server
// closed the connection after it (a read that ends in EOF rather than waiting).
func exchange(t *testing.T, addr, raw string) (resp answer, body string, closed bool) {
	t.Helper()
	c := kit.DialRaw(t, addr)
	defer c.Close()
	hr, body, err := c.Exchange(raw) //nolint:bodyclose // Exchange has read and closed the body
	if err != nil {
		t.Fatalf("%.40q: %v", raw, err)
	}
	return answer{hr.StatusCode, hr.Close, hr.Header.Get("Content-Type")}, body, c.ClosedByServer(500 * time.Millisecond)
}

// TestSmugglingShapesCloseTheConnection sends the classic request-smuggling shapes, a body framed
// by both Content-Length and Transfer-Encoding in either order, also on HTTP/1.0 keep-alive: each
// is answered and its connection closed (RFC 9112 6.1), so nothing after it is read as a request.
// A plain keep-alive request keeps its connection.
func TestSmugglingShapesCloseTheConnection(t *testing.T) {
	p := start(t, "")
	addr := strings.TrimPrefix(p.api, "http://")
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tt := range []struct {
		name, raw string
		close     bool
	}{
		{"CL.TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, true},
		{"TE.CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, true},
		{"HTTP/1.0 keep-alive CL.TE", "POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, true},
		{"chunked alone", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", true},
		{"plain keep-alive", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", false},
	} {
		resp, _, closed := exchange(t, addr, tt.raw)
		if resp.StatusCode != 200 || closed != tt.close || resp.Close != tt.close {
			t.Errorf("%s: %d, Connection: close %v, closed %v; want closed %v", tt.name, resp.StatusCode, resp.Close, closed, tt.close)
		}
	}
	kit.WaitFor(t, 5*time.Second, "the smuggled requests never answered", func() bool {
		m := p.metrics(t)
		return m.Sum("app_requests_total", "method", "POST") == 5 && m.Sum("app_requests_total", "method", "GET") == 0
	})
}

// TestHeaderLimitIsTheConfiguredOne: a request head of exactly http.max_header_bytes is answered,
// one byte more gets 431, at the schema's minimum and at the default.
func TestHeaderLimitIsTheConfiguredOne(t *testing.T) {
	for _, limit := range []int{8192, 65536} {
		p := start(t, fmt.Sprintf(`{"http": {"max_header_bytes": %d}}`, limit))
		addr := strings.TrimPrefix(p.api, "http://")
		head := func(size int) string {
			const start, end = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", "\r\n\r\n"
			return start + strings.Repeat("p", size-len(start)-len(end)) + end
		}
		for size, want := range map[int]int{limit: 200, limit + 1: 431, limit - 1: 200} {
			if resp, _, _ := exchange(t, addr, head(size)); resp.StatusCode != want {
				t.Errorf("limit %d: a %d-byte head got %d, want %d", limit, size, resp.StatusCode, want)
			}
		}
	}
}

// TestNetHTTPsOwnAnswersAreCounted: the answers net/http writes by itself, to requests that never
// reach the service, are counted under route other, method OTHER, by status.
func TestNetHTTPsOwnAnswersAreCounted(t *testing.T) {
	p := start(t, `{"http": {"max_header_bytes": 8192}, "routes": [{"name": "teapot", "match": "/teapot", "status": 417}]}`)
	addr := strings.TrimPrefix(p.api, "http://")
	raws := map[string]string{
		"400": "GARBAGE\r\n\r\n",
		"431": "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n",
		"505": "GET / HTTP/7.1\r\nHost: x\r\n\r\n",
		"501": "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
		"417": "GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n",
	}
	const n = 20
	for code, raw := range raws {
		for range n {
			if resp, _, _ := exchange(t, addr, raw); strconv.Itoa(resp.StatusCode) != code {
				t.Fatalf("%.30q: %d, want %s", raw, resp.StatusCode, code)
			}
		}
	}
	// A route's own 417 is the route's, not net/http's.
	for range n {
		if resp, _, _ := exchange(t, addr, "GET /teapot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); resp.StatusCode != 417 {
			t.Fatalf("the teapot route: %d", resp.StatusCode)
		}
	}
	kit.WaitFor(t, 5*time.Second, "every one of net/http's answers counted", func() bool {
		m := p.metrics(t)
		for code := range raws {
			if m.Sum("app_requests_total", "route", "other", "method", "OTHER", "code", code) != n {
				return false
			}
		}
		return m.Sum("app_requests_total", "route", "teapot", "method", "GET", "code", "417") == n
	})
}

// TestBrokenBodiesAreCounted: bodies that break off mid-chunk, under load from several clients,
// are each answered 400 and counted under their route: every answer the API writes is counted.
func TestBrokenBodiesAreCounted(t *testing.T) {
	p := start(t, `{"routes": [{"name": "up", "match": "/up"}]}`)
	addr := strings.TrimPrefix(p.api, "http://")
	const clients, each = 8, 64
	var answered400 atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				// A bad chunk size line: net/http's chunked reader fails, the service answers 400.
				resp, _, _ := exchange(t, addr, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
				if resp.StatusCode == 400 {
					answered400.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if answered400.Load() != clients*each {
		t.Fatalf("%d of %d broken bodies answered 400", answered400.Load(), clients*each)
	}
	kit.WaitFor(t, 5*time.Second, "every 400 counted", func() bool {
		return p.metrics(t).Sum("app_requests_total", "route", "up", "code", "400") == clients*each
	})
}

// TestStatusesWithoutBodies: routes answering 204 and 304 send no body and no Content-Type, are
// counted with the status the client got, and net/http logs no "superfluous" complaint; OPTIONS *
// reaches the service and is counted.
func TestStatusesWithoutBodies(t *testing.T) {
	p := start(t, `{"routes": [{"name": "empty", "match": "/empty", "status": 204}, {"name": "same", "match": "/same", "status": 304}]}`)
	addr := strings.TrimPrefix(p.api, "http://")
	for path, want := range map[string]int{"/empty": 204, "/same": 304} {
		resp, body, _ := exchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != want || body != "" || resp.ContentType != "" {
			t.Errorf("%s: %d, body %q, Content-Type %q", path, resp.StatusCode, body, resp.ContentType)
		}
	}
	resp, body, _ := exchange(t, addr, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	if e, err := kit.ParseEcho(body); resp.StatusCode != 200 || err != nil || e.Path != "*" || e.Route != "other" {
		t.Errorf("OPTIONS *: %d %s (%v)", resp.StatusCode, body, err)
	}
	kit.WaitFor(t, 5*time.Second, "the answers counted by what the clients got", func() bool {
		m := p.metrics(t)
		return m.Sum("app_requests_total", "route", "empty", "code", "204") == 1 && m.Sum("app_requests_total", "route", "same", "code", "304") == 1 &&
			m.Sum("app_requests_total", "method", "OPTIONS", "route", "other") == 1
	})
	if strings.Contains(p.Logs(), "superfluous") {
		t.Errorf("net/http complained:\n%s", p.Logs())
	}
}

// TestHalfCloseIsTreatedAsLeaving: a client that half-closes its side after sending (as nc does)
// is, to net/http, a client that left: a delayed answer is cut at once, answered and counted 499.
// This is the decided behaviour (docs/reliability.md): net/http cannot tell a half-close from a
// close, and answering into a closed connection would hold it for the whole delay.
func TestHalfCloseIsTreatedAsLeaving(t *testing.T) {
	p := start(t, `{"routes": [{"name": "slow", "match": "/slow", "delay": "5s"}]}`)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.api, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	begin := time.Now()
	_, _ = io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(4 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("half-closed client: %v after %v; want 499 at once", err, time.Since(begin))
	}
	resp.Body.Close()
	if resp.StatusCode != 499 || time.Since(begin) > 2*time.Second {
		t.Fatalf("half-closed client: %d after %v; want 499 at once", resp.StatusCode, time.Since(begin))
	}
	kit.WaitFor(t, 5*time.Second, "the 499 counted", func() bool {
		return p.metrics(t).Sum("app_requests_total", "route", "slow", "code", "499") == 1
	})
}

// TestSIGHUPNeverEndsTheService: SIGHUP (a reload of the unchanged file) keeps the process
// serving, a request in flight included.
func TestSIGHUPNeverEndsTheService(t *testing.T) {
	// The in-flight gauge is as old as one flush: flush often, and keep the request in flight for
	// many flushes, so that a loaded machine still sees it before the signals.
	p := start(t, `{"metrics": {"flush_interval": "100ms"}, "routes": [{"name": "slow", "match": "/slow", "delay": "2s"}]}`)
	answer := make(chan int, 1)
	go func() { code, _ := kit.Get(p.api + "/slow"); answer <- code }()
	kit.WaitFor(t, 5*time.Second, "the request in flight", func() bool { return inFlight(p) == 1 })
	for range 3 {
		p.SignalT(t, syscall.SIGHUP)
	}
	if code := <-answer; code != 200 {
		t.Fatalf("the request in flight at SIGHUP got %d", code)
	}
	if ended, err := p.Exited(); ended {
		t.Fatalf("SIGHUP ended the process: %v", err)
	}
	if code, _ := kit.Get(p.api + "/after"); code != 200 {
		t.Fatalf("after SIGHUP: %d", code)
	}
}

// TestListenersUnderDescriptorPressure runs anyroute with 256 file descriptors and floods each
// listener in turn with idle connections, beyond what it may hold: the other listener still
// answers, and neither logs accept errors.
func TestListenersUnderDescriptorPressure(t *testing.T) {
	apiAddr, adminAddr := kit.FreeAddr(t), kit.FreeAddr(t)
	sh := kit.SystemTool(t, "sh")
	p := &proc{
		Proc: kit.StartT(t, kit.Cmd{Name: "anyroute", Path: sh, Env: []string{raceEnv},
			Args: []string{"-c", `ulimit -n 256 && exec "$0" "$@"`, binary, "-http.addr", apiAddr, "-admin.addr", adminAddr}}),
		api: "http://" + apiAddr, admin: "http://" + adminAddr,
	}
	kit.WaitHTTP(t, p.Proc, p.admin+"/readyz", nil, 15*time.Second)
	flood := func(addr string, n int) (closeAll func()) {
		var conns []net.Conn
		for range n {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		closeAll = func() {
			for _, c := range conns {
				c.Close()
			}
		}
		t.Cleanup(closeAll)
		return closeAll
	}
	check := func(what, url string) {
		t.Helper()
		resp, err := kit.NewClient(5 * time.Second).Get(url)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", what, resp.StatusCode)
		}
	}
	unflood := flood(apiAddr, 300) // past what the API holds: 256 less the reserve of 80
	check("admin /healthz with the API flooded", p.admin+"/healthz")
	check("admin /metrics with the API flooded", p.admin+"/metrics")
	unflood()
	flood(adminAddr, 100) // past the admin's 16
	check("the API with the admin port flooded", p.api+"/x")
	if strings.Contains(p.Logs(), "Accept error") {
		t.Fatalf("accept errors under descriptor pressure:\n%s", p.Tail(20))
	}
}
