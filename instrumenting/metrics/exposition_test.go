package metrics

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Accept headers scrapers send: Prometheus 2.42's, with and without protobuf (native histograms
// on), newer Prometheus' with escaping and OpenMetrics versions, and odd ones.
var acceptHeaders = []string{
	"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.1",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=underscores,text/plain;version=0.0.4;q=0.5",
	"application/openmetrics-text;version=0.0.1",
	"application/openmetrics-text;version=2.0.0",
	"text/plain;version=0.0.4",
	"text/plain;escaping=dots",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
	"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
	"*/*",
	"",
	"garbage;;;",
}

var acceptEncodings = []string{"gzip", "", "gzip;q=0", "identity;q=0, gzip", "*", "*;q=0", "deflate", "gzip, deflate, br",
	"gzip;q=0.5, identity;q=0.6", "GZIP", " gzip", "gzip;level=1, identity", "zstd"}

// newLoadedRegistry is a registry with the request metrics of a loaded aggregator (exemplars and
// native buckets too) and a flusher that does not run.
func newLoadedRegistry(t testing.TB) (*prometheus.Registry, *Flusher, *Aggregator) {
	agg := NewAggregator("other", []string{"a", "b"}, benchBuckets, NativeHistograms(true))
	for i := range 300 {
		d := time.Duration(i) * 97 * time.Microsecond
		if i%7 == 0 {
			agg.EndSampled(agg.Begin(), i%3, "GET", 200+i%2, d, monotonic(), fmt.Sprintf("%032x", i))
		} else {
			agg.End(agg.Begin(), i%3, "POST", 500, d)
		}
	}
	f := NewFlusher(agg, time.Hour)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector("app", f, BuildInfo{Version: "v1", Revision: "r"}))
	return reg, f, agg
}

// answer is what a scrape got: its status, headers and body, uncompressed.
type answer struct {
	StatusCode int
	Header     http.Header
}

func scrapeWith(t testing.TB, h http.Handler, target, accept, encoding string) (answer, []byte) {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b := rec.Body.Bytes()
	if rec.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s / %s: gzip: %v", accept, encoding, err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return answer{StatusCode: rec.Code, Header: rec.Header()}, b
}

// TestExpositionIsPromhttps: for every Accept and Accept-Encoding header, the cached exposition
// answers what promhttp.HandlerFor answers over the same registry: status, content type, content
// encoding, Vary, and the same bytes once uncompressed; name[] filters alike.
func TestExpositionIsPromhttps(t *testing.T) {
	reg, f, _ := newLoadedRegistry(t)
	ours := NewExposition(reg, f)
	theirs := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError})
	targets := []string{"/metrics", "/metrics?name[]=app_requests_total&name[]=app_build_info"}
	seen := map[string]bool{}
	for _, target := range targets {
		for _, accept := range acceptHeaders {
			for _, encoding := range acceptEncodings {
				want, wantBody := scrapeWith(t, theirs, target, accept, encoding)
				got, gotBody := scrapeWith(t, ours, target, accept, encoding)
				where := fmt.Sprintf("%s Accept %q Accept-Encoding %q", target, accept, encoding)
				for _, h := range []string{"Content-Type", "Content-Encoding"} {
					if got.Header.Get(h) != want.Header.Get(h) {
						t.Errorf("%s: %s %q, promhttp %q", where, h, got.Header.Get(h), want.Header.Get(h))
					}
				}
				if fmt.Sprint(got.Header.Values("Vary")) != fmt.Sprint(want.Header.Values("Vary")) || got.StatusCode != want.StatusCode {
					t.Errorf("%s: %d Vary %v, promhttp %d %v", where, got.StatusCode, got.Header.Values("Vary"), want.StatusCode, want.Header.Values("Vary"))
				}
				if !bytes.Equal(gotBody, wantBody) {
					t.Errorf("%s: body differs from promhttp's (%d bytes, promhttp %d)", where, len(gotBody), len(wantBody))
				}
				seen[got.Header.Get("Content-Type")+" "+got.Header.Get("Content-Encoding")] = true
				seen["exemplars"] = seen["exemplars"] || bytes.Contains(gotBody, []byte(`# {trace_id="`))
			}
		}
	}
	// The table reaches every format and both encodings, and exemplars.
	if len(seen) < 12 || !seen["exemplars"] || !seen["application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores gzip"] {
		t.Errorf("answers seen: %v", seen)
	}
}

// TestExpositionIsEncodedOncePerFlush: scrapes between two flushes share one gather and one
// encoding per format, and see nothing new; the first scrape after a flush sees every request
// answered before it.
func TestExpositionIsEncodedOncePerFlush(t *testing.T) {
	reg, f, agg := newLoadedRegistry(t)
	g := &gatherCounter{Gatherer: reg}
	h := NewExposition(g, f)
	_, first := scrapeWith(t, h, "/metrics", acceptHeaders[0], "gzip")
	for range 10 {
		for _, accept := range acceptHeaders[:2] {
			scrapeWith(t, h, "/metrics", accept, "gzip")
			scrapeWith(t, h, "/metrics", accept, "")
		}
	}
	agg.End(agg.Begin(), 1, "DELETE", 204, time.Millisecond)
	if _, again := scrapeWith(t, h, "/metrics", acceptHeaders[0], "gzip"); !bytes.Equal(again, first) || g.n.Load() != 1 {
		t.Fatalf("%d gathers before a flush, and the page changed: %v", g.n.Load(), !bytes.Equal(again, first))
	}
	f.Flush()
	_, after := scrapeWith(t, h, "/metrics", acceptHeaders[0], "gzip")
	if g.n.Load() != 2 || !bytes.Contains(after, []byte(`app_requests_total{code="204",method="DELETE",route="a"} 1`)) {
		t.Fatalf("after a flush: %d gathers, the new request not on the page", g.n.Load())
	}
}

// gatherCounter counts the gathers made of a gatherer.
type gatherCounter struct {
	prometheus.Gatherer
	n atomic.Int64
}

func (g *gatherCounter) Gather() ([]*dto.MetricFamily, error) {
	g.n.Add(1)
	return g.Gatherer.Gather()
}

// failing is a collector whose every collect fails.
type failing struct{ desc *prometheus.Desc }

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errors.New("collector failed"))
}

// TestExpositionErrorsAsPromhttp: a failing collector leaves the others served, as promhttp's
// ContinueOnError does; when nothing could be gathered, the answer is promhttp's 500.
func TestExpositionErrorsAsPromhttp(t *testing.T) {
	bad := failing{prometheus.NewDesc("bad", "fails", nil, nil)}
	partial, _, _ := newLoadedRegistry(t)
	partial.MustRegister(bad)
	only := prometheus.NewRegistry()
	only.MustRegister(bad)
	f := NewFlusher(NewAggregator("other", nil, []float64{1}), time.Hour)
	for name, reg := range map[string]*prometheus.Registry{"partial": partial, "nothing": only} {
		want, wantBody := scrapeWith(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true}), "/metrics", "", "")
		got, gotBody := scrapeWith(t, NewExposition(reg, f), "/metrics", "", "")
		if got.StatusCode != want.StatusCode || !bytes.Equal(gotBody, wantBody) {
			t.Errorf("%s: %d %q, promhttp %d %q", name, got.StatusCode, gotBody, want.StatusCode, wantBody)
		}
	}
}

// TestExpositionUnderConcurrentScrapesAndFlushes: scrapes of every format race flushes and requests
// (for the race detector); each answer is whole and its count never goes back.
func TestExpositionUnderConcurrentScrapesAndFlushes(t *testing.T) {
	reg, f, agg := newLoadedRegistry(t)
	h := NewExposition(reg, f)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				agg.End(agg.Begin(), 1, "GET", 200, time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				f.Flush()
			}
		}
	}()
	var scrapers sync.WaitGroup
	for i := range 8 {
		scrapers.Add(1)
		go func() {
			defer scrapers.Done()
			for j := range 50 {
				accept := acceptHeaders[(i+j)%len(acceptHeaders)]
				resp, b := scrapeWith(t, h, "/metrics", accept, acceptEncodings[j%2])
				if resp.StatusCode != 200 || len(b) == 0 || resp.Header.Get("Content-Length") == "" {
					t.Errorf("scrape %d: %d, %d bytes", j, resp.StatusCode, len(b))
				}
			}
		}()
	}
	scrapers.Wait()
	close(stop)
	wg.Wait()
}
