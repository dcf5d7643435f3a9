// Command bare is the baseline of the load benchmarks: a catch-all net/http server answering the
// same JSON echo as anyroute, written the plain way (encoding/json, no middleware, no metrics),
// with the same server timeouts as anyroute's defaults, as any server facing clients should have:
// they cost two deadlines per request, and the comparison is about what anyroute adds on top.
// Like anyroute it answers each request with a request id (the caller's x-request-id, or a new
// one), in the echo and in the X-Request-Id header.
// anyroute's throughput is reported as a ratio of this server's, measured in the same run.
//
// With -upstream URL every request also makes one upstream call, the baseline of an anyroute
// route with one call: a GET of URL followed by the request's path (without its leading slash,
// each segment escaped, as anyroute's {path} is), carrying x-request-id and the hop count, with
// the client settings of anyroute's (transport/client.go: http.DefaultTransport cloned, no proxy,
// 64 kept-alive connections per upstream host), a 1 s timeout per call, and the upstream's answer
// nested in the echo when it is JSON of at most 16 KiB.
//
// With -metrics ADDR it serves, on that address of its own, the Go runtime's figures the bench
// driver reads from every server (allocations, bytes allocated, GC cycles, heap in use, live
// heap), under the names client_golang's Go collector gives them, read from runtime/metrics by
// hand so that the baseline's live heap does not grow by a metrics library.
//
// With -h2c it also speaks HTTP/2 in clear text with prior knowledge, net/http's own way
// (http.Protocols' UnencryptedHTTP2), with anyroute's default HTTP/2 limits: the baseline of
// anyroute's h2c, which serves the same HTTP/2 server (golang.org/x/net/http2, which net/http's
// is bundled from) on a connection it takes over from its HTTP/1 server (transport/h2c.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/anyroute/anyroute/bench/internal/requestid"
	"github.com/anyroute/anyroute/bench/internal/runtimemetrics"
)

type echo struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Query     string `json:"query"`
	Route     string `json:"route"`
	Status    int    `json:"status"`
	Instance  string `json:"instance"`
	TraceID   string `json:"trace_id"`
	RequestID string `json:"request_id"`
	Calls     []call `json:"calls,omitempty"`
}

type call struct {
	Name            string          `json:"name"`
	URL             string          `json:"url"`
	Status          int             `json:"status"`
	DurationSeconds float64         `json:"duration_seconds"`
	Error           string          `json:"error,omitempty"`
	Answer          json.RawMessage `json:"answer,omitempty"`
}

// The limits of anyroute's calls: the answer kept in the echo, what is read past it to keep the
// connection, and the default timeout of a call.
const (
	maxAnswerBytes = 16 << 10
	maxDrainBytes  = 1 << 20
	callTimeout    = time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	upstream := flag.String("upstream", "", "make one upstream call per request: GET of this URL followed by the request's path")
	metricsAddr := flag.String("metrics", "", "serve the Go runtime's figures on this address (GET /metrics)")
	h2c := flag.Bool("h2c", false, "also serve HTTP/2 in clear text with prior knowledge")
	flag.Parse()
	if *metricsAddr != "" {
		go func() { log.Fatal(http.ListenAndServe(*metricsAddr, http.HandlerFunc(runtimemetrics.Serve))) }()
	}
	instance, _ := os.Hostname()
	h := newHandler(instance)
	if *upstream != "" {
		h = newCallingHandler(instance, *upstream)
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	if *h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		// anyroute's defaults (http.http2 in config/schema.json): 100 streams a connection, 1 MiB
		// frames read, a 4 KiB HPACK table.
		srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100, MaxReadFrameSize: 1 << 20, MaxDecoderHeaderTableSize: 4096}
	}
	log.Fatal(srv.ListenAndServe())
}

func newHandler(instance string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, r, instance, requestID(r), nil)
	})
}

// newCallingHandler answers like newHandler after one call to upstream.
func newCallingHandler(instance, upstream string) http.Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: tr}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestID(r)
		c := call{Name: "up", URL: upstream + escapePath(r.URL.Path)}
		begin := time.Now()
		c.Status, c.Answer, c.Error = get(r.Context(), client, c.URL, id)
		c.DurationSeconds = time.Since(begin).Seconds()
		answer(w, r, instance, id, []call{c})
	})
}

func get(ctx context.Context, client *http.Client, u, id string) (int, json.RawMessage, string) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, http.NoBody)
	if err != nil {
		return 0, nil, err.Error()
	}
	req.Header.Set("X-Request-Id", id)
	req.Header.Set("X-Anyroute-Hops", "1")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err == nil && len(body) > maxAnswerBytes {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))
		body = nil
	}
	if err != nil {
		return resp.StatusCode, nil, err.Error()
	}
	if !json.Valid(body) {
		body = nil
	}
	return resp.StatusCode, body, ""
}

func answer(w http.ResponseWriter, r *http.Request, instance, id string, calls []call) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", id)
	_ = json.NewEncoder(w).Encode(echo{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Route: "other", Status: 200, Instance: instance, RequestID: id, Calls: calls,
	})
}

// requestID is the caller's x-request-id, or a new one of 32 hex digits.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" {
		return id
	}
	return requestid.New()
}

// escapePath is the path without its leading slash, each segment escaped.
func escapePath(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
