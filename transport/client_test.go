package transport

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

func call(name, url string, timeout time.Duration) service.CallRequest {
	return service.CallRequest{
		Call:  service.Call{Name: name, URL: url, Method: "GET", Timeout: timeout},
		Route: "front", Path: "/orders/a b/7", RequestID: "rid-9", Hops: 3,
	}
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
		wantHops int
	}{
		{"abc-123_x:y.z", "4", "abc-123_x:y.z", 4},
		{"bad id", "-1", "", 0},
		{strings.Repeat("a", 129), "many", "", 0},
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
