package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

func call(name, url string, timeout time.Duration) service.CallRequest {
	return service.CallRequest{
		Call:  service.Call{Name: name, URL: url, Method: "GET", Timeout: timeout},
		Route: "front", Path: "/orders/a b/7", RequestID: "rid-9", Hops: 3,
	}
}

// withPathOf is the call made for a request of this (decoded) path.
func withPathOf(req service.CallRequest, path string) service.CallRequest {
	req.Path = path
	return req
}

func TestCallerSendsAndReports(t *testing.T) {
	var conns atomic.Int64
	var got *http.Request
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write([]byte(`"` + strings.Repeat("x", service.MaxAnswerBytes) + `"`))
		case "/text":
			_, _ = w.Write([]byte("not json"))
		default:
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"route":"inventory"}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewCaller(ClientOptions{})

	res := c.Call(context.Background(), call("inventory", srv.URL+"/items/{path}", time.Second))
	if res.Err != nil || res.Status != 201 || string(res.Answer) != `{"route":"inventory"}` || res.Duration <= 0 {
		t.Fatalf("result %+v", res)
	}
	if got.URL.EscapedPath() != "/items/orders/a%20b/7" || res.URL != srv.URL+"/items/orders/a%20b/7" {
		t.Errorf("called %s (reported %s), want the incoming path in place of {path}", got.URL.EscapedPath(), res.URL)
	}
	if got.Header.Get("X-Request-Id") != "rid-9" || got.Header.Get("X-Anyroute-Hops") != "3" {
		t.Errorf("headers %v", got.Header)
	}
	for range 20 {
		c.Call(context.Background(), call("inventory", srv.URL+"/again", time.Second))
	}
	for _, path := range []string{"/big", "/text"} {
		if res := c.Call(context.Background(), call("x", srv.URL+path, time.Second)); res.Status != 200 || res.Answer != nil {
			t.Errorf("%s: status %d, answer of %d bytes; want no answer kept", path, res.Status, len(res.Answer))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 24 sequential calls: kept-alive connections are not reused", n)
	}
}

func TestCallerFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	c := NewCaller(ClientOptions{})

	if res := c.Call(context.Background(), call("down", closedURL, time.Second)); !errors.Is(res.Err, service.ErrNoAnswer) || res.Status != 0 {
		t.Errorf("closed port: %+v", res)
	}
	begin := time.Now()
	res := c.Call(context.Background(), call("slow", hang.URL, 100*time.Millisecond))
	if !errors.Is(res.Err, service.ErrCallTimeout) || time.Since(begin) > time.Second {
		t.Errorf("hanging upstream with a 100ms timeout: %+v after %v", res, time.Since(begin))
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel(service.ErrStopping) }()
	if res := c.Call(ctx, call("slow", hang.URL, 5*time.Second)); !errors.Is(res.Err, service.ErrStopping) {
		t.Errorf("request cut while calling: %+v, want the request's cause", res)
	}
}

// TestEchoNestsTheCallTree: the encoder writes each call with the upstream's answer nested as
// JSON, and the request id in the body and in X-Request-Id.
func TestEchoNestsTheCallTree(t *testing.T) {
	resp := service.Response{Status: 200, Route: "front", RequestID: "r1", Calls: []service.CallResult{
		{Name: "inv", URL: "http://inv/", Status: 200, Duration: 1500 * time.Microsecond, Answer: []byte(`{"route":"items","calls":[{"name":"db","status":200}]}`)},
		{Name: "pay", URL: "http://pay/", Err: service.ErrCallTimeout, Duration: time.Second},
	}}
	h := NewHTTPHandler(func(context.Context, any) (any, error) {
		return &endpoint.HandleResponse{Response: resp}, nil
	}, Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var e Echo
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s: %v", rec.Body, err)
	}
	if e.RequestID != "r1" || rec.Header().Get("X-Request-Id") != "r1" {
		t.Errorf("request id %q, header %q", e.RequestID, rec.Header().Get("X-Request-Id"))
	}
	if len(e.Calls) != 2 || e.Calls[0].DurationSeconds != 0.0015 || e.Calls[1].Error != "timed out" || e.Calls[1].Answer != nil {
		t.Fatalf("calls %+v", e.Calls)
	}
	var nested Echo
	if err := json.Unmarshal(e.Calls[0].Answer, &nested); err != nil || nested.Route != "items" || len(nested.Calls) != 1 || nested.Calls[0].Name != "db" {
		t.Fatalf("nested answer %s: %+v %v", e.Calls[0].Answer, nested, err)
	}
}

func TestIncomingHeaders(t *testing.T) {
	var got service.Request
	h := NewHTTPHandler(echoEndpoint(&got), Options{})
	for _, tt := range []struct {
		id, hops string
		wantID   string
		wantHops int32
	}{
		{"abc-123_x:y.z", "4", "abc-123_x:y.z", 4},
		{"bad id", "-1", "", 0},
		{strings.Repeat("a", 129), "many", "", 0},
		{"abc", "4294967297", "abc", math.MaxInt32}, // 2³²+1: held past any max_hops, not wrapped round to 1
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Request-Id", tt.id)
		req.Header.Set("X-Anyroute-Hops", tt.hops)
		req.Header.Set("X-Anyroute-Status", "503")
		req.Header.Set("X-Anyroute-Delay", "1s")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if got.RequestID != tt.wantID || got.Hops != tt.wantHops || got.OverrideStatus != "503" || got.OverrideDelay != "1s" {
			t.Errorf("%q %q: decoded %+v", tt.id, tt.hops, got)
		}
	}
}

// TestCallerDoesNotFollowRedirects: an upstream's redirect is the call's answer. Followed, a 302
// to the caller's own admin port put the whole effective config into the client's echo.
func TestCallerDoesNotFollowRedirects(t *testing.T) {
	var secretHits atomic.Int64
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secretHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"secret":"the effective config"}`))
	}))
	defer secret.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", secret.URL+"/-/config")
			w.WriteHeader(status)
		}))
		res := NewCaller(ClientOptions{}).Call(context.Background(), call("up", redirect.URL+"/", time.Second))
		redirect.Close()
		if res.Err != nil || res.Status != status || strings.Contains(string(res.Answer), "secret") {
			t.Errorf("%d: result %+v, want the %d itself as the call's answer", status, res, status)
		}
	}
	if n := secretHits.Load(); n != 0 {
		t.Errorf("the redirect target was called %d times", n)
	}
}

// TestPathCannotLeaveTheCallURL: {path} is the incoming path as net/http decodes it; a dot segment
// in it, in any encoding, would take the call out of the configured URL's path, so the call is
// not made. Paths with dots that are not dot segments still pass.
func TestPathCannotLeaveTheCallURL(t *testing.T) {
	var hits atomic.Int64
	var gotPath atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotPath.Store(r.URL.EscapedPath())
	}))
	defer srv.Close()
	c := NewCaller(ClientOptions{})
	decoded := func(target string) string { // the path as the API's handler sees it
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		return r.URL.Path
	}
	for _, target := range []string{
		"/..", "/a/../../admin", "/./x", "/a/%2e%2e/x", "/a/%2E%2e/x", "/a/..%2F..%2Fx", "/a/%2e%2e%2f%2e%2e%2fx",
		"/a/..%5Cx", `/a/..\..\x`, "/a/%252e%252e/x", "/a/%25252e%25252e/x", "/a/.%252e/x", "/a/%252e%252e%252fx",
	} {
		res := c.Call(context.Background(), withPathOf(call("up", srv.URL+"/base/{path}", time.Second), decoded(target)))
		if !errors.Is(res.Err, service.ErrUnsafePath) || res.Status != 0 {
			t.Errorf("%s: %+v, want the call refused", target, res)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the upstream was called %d times for paths with dot segments", n)
	}
	for target, want := range map[string]string{
		"/a.b/..c/x...": "/base/a.b/..c/x...", "/v1.2/%2e%2ex": "/base/v1.2/..x", "/a%20b/%25zz": "/base/a%20b/%25zz",
	} {
		res := c.Call(context.Background(), withPathOf(call("up", srv.URL+"/base/{path}", time.Second), decoded(target)))
		if res.Err != nil || res.Status != 200 || gotPath.Load() != want {
			t.Errorf("%s: %+v, upstream saw %v; want %s called", target, res, gotPath.Load(), want)
		}
	}
}

// TestAnswersThatAreNotValidUTF8JSONAreNotNested: json.Valid lets invalid UTF-8 through inside a
// string; nested raw, it made the echo itself invalid. Such an answer, like one that is not JSON or
// too large, is left out with the reason, and the echo stays valid JSON in valid UTF-8.
func TestAnswersThatAreNotValidUTF8JSONAreNotNested(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/latin1":
			_, _ = w.Write([]byte("{\"name\":\"caf\xe9\"}"))
		case "/text":
			_, _ = w.Write([]byte("plain text"))
		case "/big":
			_, _ = w.Write([]byte(`"` + strings.Repeat("x", service.MaxAnswerBytes) + `"`))
		default:
			_, _ = w.Write([]byte(`{"name":"café"}`))
		}
	}))
	defer srv.Close()
	c := NewCaller(ClientOptions{})
	var calls []service.CallResult
	for path, omitted := range map[string]string{"/latin1": "not valid UTF-8", "/text": "not JSON", "/big": "larger than 16384 bytes", "/ok": ""} {
		res := c.Call(context.Background(), call(strings.Trim(path, "/"), srv.URL+path, time.Second))
		if res.AnswerOmitted != omitted || (omitted == "") != (res.Answer != nil) {
			t.Errorf("%s: answer %q omitted %q, want omitted %q", path, res.Answer, res.AnswerOmitted, omitted)
		}
		calls = append(calls, res)
	}
	h := NewHTTPHandler(func(context.Context, any) (any, error) {
		return &endpoint.HandleResponse{Response: service.Response{Status: 200, Route: "front", Calls: calls}}, nil
	}, Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var e Echo
	if !utf8.Valid(rec.Body.Bytes()) || json.Unmarshal(rec.Body.Bytes(), &e) != nil || len(e.Calls) != 4 {
		t.Fatalf("echo is not valid JSON in UTF-8: %q", rec.Body.Bytes())
	}
	for _, c := range e.Calls {
		if (c.Name == "ok") != (c.Answer != nil) || (c.Name == "ok") == (c.AnswerOmitted != "") {
			t.Errorf("call %s in the echo: answer %s, omitted %q", c.Name, c.Answer, c.AnswerOmitted)
		}
	}
}

// TestExpandBuildsOnlyTheURL: {path} is the incoming path escaped segment by segment, everywhere
// the template names it; a path that needs no escaping, the common case, costs the expanded URL's
// allocation alone (allocs -1: not checked).
func TestExpandBuildsOnlyTheURL(t *testing.T) {
	for _, c := range []struct {
		template, path, want string
		allocs               float64
	}{
		{"http://up/base/{path}", "/orders/42", "http://up/base/orders/42", 1},
		{"http://up/{path}?from={path}", "/a/b", "http://up/a/b?from=a/b", 1},
		{"http://up/base/{path}", "/a b/c?d", "http://up/base/a%20b/c%3Fd", -1},
		{"http://up/base/{path}", "/", "http://up/base/", 1},
		{"http://up/fixed", "/a b", "http://up/fixed", 0},
	} {
		got, ok := expand(c.template, c.path)
		if !ok || got != c.want {
			t.Errorf("expand(%q, %q) = %q, %v; want %q", c.template, c.path, got, ok, c.want)
		}
		if c.allocs < 0 {
			continue
		}
		if n := testing.AllocsPerRun(100, func() { expand(c.template, c.path) }); n != c.allocs {
			t.Errorf("expand(%q, %q) allocates %v times, want %v", c.template, c.path, n, c.allocs)
		}
	}
}
