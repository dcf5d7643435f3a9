// Command bare is the baseline of the load benchmarks: a catch-all net/http server answering the
// same JSON echo as anyroute, written the plain way (encoding/json, no middleware, no metrics),
// with the same server timeouts as anyroute's defaults, as any server facing clients should have:
// they cost two deadlines per request, and the comparison is about what anyroute adds on top.
// anyroute's throughput is reported as a ratio of this server's, measured in the same run.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"time"
)

type echo struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	Query    string `json:"query"`
	Route    string `json:"route"`
	Status   int    `json:"status"`
	Instance string `json:"instance"`
	TraceID  string `json:"trace_id"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()
	instance, _ := os.Hostname()
	srv := &http.Server{
		Addr:              *addr,
		Handler:           newHandler(instance),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	log.Fatal(srv.ListenAndServe())
}

func newHandler(instance string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Route: "other", Status: 200, Instance: instance,
		})
	})
}
