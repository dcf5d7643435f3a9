package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anyroute/anyroute/endpoint"
	"github.com/anyroute/anyroute/service"
)

// echoEndpoint stands in for the service: it answers what the request carried, so the test sees
// exactly what the decoder produced.
func echoEndpoint(got *service.Request) func(context.Context, any) (any, error) {
	return func(_ context.Context, request any) (any, error) {
		req := request.(*endpoint.HandleRequest)
		*got = req.Request
		req.TraceID = "abc" // as the tracing middleware sets it
		resp := service.Response{Status: 200, Route: "r"}
		switch {
		case req.BodyTooLarge:
			resp.Status, resp.Err = 413, service.ErrBodyTooLarge
		case req.BodyBroken:
			resp.Status, resp.Err = 400, service.ErrBadBody
		}
		return &endpoint.HandleResponse{Response: resp, Request: &req.Request}, nil
	}
}

func TestDecodeCountsBodyAndEnforcesLimit(t *testing.T) {
	var got service.Request
	h := NewHTTPHandler(echoEndpoint(&got), Options{MaxBodyBytes: 10, Instance: "i"})
	tests := []struct {
		body       io.Reader
		length     int64 // -1: unknown, chunked
		wantBytes  int64
		wantStatus int
	}{
		{strings.NewReader("hello"), 5, 5, 200},
		{strings.NewReader("0123456789"), 10, 10, 200},
		{strings.NewReader(strings.Repeat("x", 11)), 11, 0, 413},     // declared too large: never read
		{strings.NewReader(strings.Repeat("x", 1<<20)), -1, 10, 413}, // chunked: read up to the limit only
	}
	for i, tt := range tests {
		req := httptest.NewRequest("POST", "/upload", tt.body)
		req.ContentLength = tt.length
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.wantStatus || got.BodyBytes != tt.wantBytes {
			t.Errorf("case %d: status %d bytes %d, want %d and %d", i, rec.Code, got.BodyBytes, tt.wantStatus, tt.wantBytes)
		}
		if tt.wantStatus == 413 && rec.Header().Get("Connection") != "close" {
			t.Errorf("case %d: a 413 must close the connection rather than drain the body", i)
		}
	}
}

func TestBrokenBodyIs400WithoutDetails(t *testing.T) {
	var got service.Request
	h := NewHTTPHandler(echoEndpoint(&got), Options{MaxBodyBytes: 100})
	req := httptest.NewRequest("POST", "/x", iotest.ErrReader(errors.New("secret internal detail")))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if !got.BodyBroken {
		t.Fatal("the decoder did not mark the body broken")
	}
	if rec.Code != 400 || strings.Contains(rec.Body.String(), "secret") || rec.Header().Get("Connection") != "close" {
		t.Fatalf("got %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	var e Echo
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != service.ErrBadBody.Error() {
		t.Fatalf("echo %q does not name the broken body: %v", rec.Body.String(), err)
	}
}

// TestBodilessStatuses: 204, 205 and 304 are answered with no body (net/http would refuse one and
// log each refusal); other statuses carry the echo.
func TestBodilessStatuses(t *testing.T) {
	for status, bodiless := range map[int]bool{200: false, 201: false, 204: true, 205: true, 304: true, 404: false} {
		ep := func(context.Context, any) (any, error) {
			return &endpoint.HandleResponse{Response: service.Response{Status: status, Route: "r", Padding: 10}}, nil
		}
		srv := httptest.NewServer(NewHTTPHandler(ep, Options{}))
		resp, err := http.Get(srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != status || (len(body) == 0) != bodiless {
			t.Errorf("status %d: got %d with %d body bytes", status, resp.StatusCode, len(body))
		}
	}
}

// TestRiskyFramingClosesTheConnection: a chunked body, or any body on HTTP/1.0, is answered with
// Connection: close; a plain request keeps its connection.
func TestRiskyFramingClosesTheConnection(t *testing.T) {
	var got service.Request
	h := NewHTTPHandler(echoEndpoint(&got), Options{MaxBodyBytes: 100})
	for _, tt := range []struct {
		name      string
		req       func() *http.Request
		wantClose bool
	}{
		{"plain GET", func() *http.Request { return httptest.NewRequest("GET", "/x", nil) }, false},
		{"Content-Length body", func() *http.Request { return httptest.NewRequest("POST", "/x", strings.NewReader("abc")) }, false},
		{"chunked body", func() *http.Request {
			r := httptest.NewRequest("POST", "/x", strings.NewReader("abc"))
			r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
			return r
		}, true},
		{"HTTP/1.0 with a body", func() *http.Request {
			r := httptest.NewRequest("POST", "/x", strings.NewReader("abc"))
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
			return r
		}, true},
		{"HTTP/1.0 without a body", func() *http.Request {
			r := httptest.NewRequest("GET", "/x", nil)
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
			return r
		}, false},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, tt.req())
		if closed := rec.Header().Get("Connection") == "close"; closed != tt.wantClose || rec.Code != 200 {
			t.Errorf("%s: status %d, Connection: close %v, want %v", tt.name, rec.Code, closed, tt.wantClose)
		}
	}
}

func TestEchoIsValidJSONForAnyPath(t *testing.T) {
	paths := []string{"/plain", "/quote\"back\\slash", "/ctl\x01\x1f\x7f", "/nl\n\t\r", "/héllo/日本", "/bad\xff\xfeutf8", "/<script>&"}
	for _, p := range paths {
		var got service.Request
		h := NewHTTPHandler(echoEndpoint(&got), Options{MaxBodyBytes: 1, Instance: "pod-1"})
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = p
		req.URL.RawQuery = "a=1&b=\"2\""
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var echo map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &echo); err != nil {
			t.Fatalf("path %q: echo %q is not JSON: %v", p, rec.Body.String(), err)
		}
		var wantPath string // what encoding/json makes of the same string
		if b, err := json.Marshal(p); err != nil || json.Unmarshal(b, &wantPath) != nil {
			t.Fatal(err)
		}
		if echo["path"] != wantPath || echo["method"] != "GET" || echo["query"] != "a=1&b=\"2\"" ||
			echo["instance"] != "pod-1" || echo["trace_id"] != "abc" || echo["route"] != "r" || echo["status"] != 200.0 {
			t.Errorf("path %q: echo %v", p, echo)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

// TestEncoderWritesTheEchoShape holds the hand-written encoder to Echo: its output decodes into Echo
// with no unknown key, to the values the response carried, and has exactly the keys encoding/json
// writes for the same Echo (omitempty included).
func TestEncoderWritesTheEchoShape(t *testing.T) {
	req := service.Request{Method: "PURGE", Path: "/a/\"b\"", Query: "x=1"}
	traced := req
	traced.TraceID = "4bf9"
	for _, tt := range []struct {
		resp endpoint.HandleResponse
		want Echo
	}{
		{endpoint.HandleResponse{Response: service.Response{Status: 200, Route: "r"}, Request: &req},
			Echo{Method: "PURGE", Path: "/a/\"b\"", Query: "x=1", Route: "r", Status: 200, Instance: "pod"}},
		{endpoint.HandleResponse{Response: service.Response{Status: 201, Route: "r", Padding: 3}, Request: &traced},
			Echo{Method: "PURGE", Path: "/a/\"b\"", Query: "x=1", Route: "r", Status: 201, Instance: "pod", TraceID: "4bf9", Padding: "xxx"}},
		{endpoint.HandleResponse{Response: service.Response{Status: 503, Route: "other", Err: service.ErrInjected}, Request: &req},
			Echo{Method: "PURGE", Path: "/a/\"b\"", Query: "x=1", Route: "other", Status: 503, Instance: "pod", Error: "injected failure"}},
	} {
		ep := func(context.Context, any) (any, error) { r := tt.resp; return &r, nil }
		rec := httptest.NewRecorder()
		NewHTTPHandler(ep, Options{Instance: "pod"}).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		var got Echo
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: not an Echo: %v", rec.Body.String(), err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("echo %+v\nwant %+v", got, tt.want)
		}
		wantJSON, err := json.Marshal(tt.want)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := keys(t, rec.Body.Bytes()), keys(t, wantJSON); !slices.Equal(g, w) {
			t.Errorf("keys %v, encoding/json writes %v", g, w)
		}
	}
}

func keys(t *testing.T, doc []byte) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}

func TestBusinessErrorsAreNamedOthersAreNot(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		want   string
	}{
		{service.ErrInjected, 503, "injected failure"},
		{context.Canceled, 499, "context canceled"},
		{errors.New("db password is hunter2"), 500, "Internal Server Error"},
	} {
		ep := func(_ context.Context, request any) (any, error) {
			return &endpoint.HandleResponse{Response: service.Response{Status: tt.status, Route: "r", Err: tt.err, Padding: 5}}, nil
		}
		rec := httptest.NewRecorder()
		NewHTTPHandler(ep, Options{}).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		var echo map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &echo); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tt.status || echo["error"] != tt.want {
			t.Errorf("%v: got %d %v", tt.err, rec.Code, echo)
		}
		if echo["padding"] != "xxxxx" {
			t.Errorf("padding = %v", echo["padding"])
		}
	}
}

func TestAdminHandler(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "A probe."})
	reg.MustRegister(c)
	c.Add(3)
	ready := &atomic.Bool{}
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	h := NewAdminHandler(AdminOptions{Gatherer: reg, Ready: ready})
	if code, body := get(h, "/metrics"); code != 200 || !strings.Contains(body, "probe_total 3") {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, _ := get(h, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(h, "/readyz"); code != 503 {
		t.Errorf("/readyz before ready: %d", code)
	}
	ready.Store(true)
	if code, _ := get(h, "/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, _ := get(h, "/debug/pprof/"); code != 404 {
		t.Errorf("pprof is off by default, got %d", code)
	}
	if code, _ := get(NewAdminHandler(AdminOptions{Gatherer: reg, PProf: true}), "/debug/pprof/"); code != 200 {
		t.Errorf("pprof enabled: %d", code)
	}
}
