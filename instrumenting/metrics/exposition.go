package metrics

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Exposition serves /metrics as promhttp.HandlerFor would (with OpenMetrics offered, errors
// handled as ContinueOnError), but encodes each exposition once per flush: the first scrape after a
// flush gathers the registry, and the first scrape of each negotiated format (text 0.0.4,
// OpenMetrics with its exemplars, protobuf with the native histograms; each escaping scheme) and
// content encoding (identity, gzip) encodes it; every other scrape until the next flush is a copy
// of those bytes. A scrape storm then costs the service almost nothing, and needs no limit that
// refuses scrapes.
//
// The price is freshness: everything on the page is as of the first scrape after the last flush,
// so metrics that are not the flusher's (the Go and process collectors, the tracing and panic
// counters, requests in flight) are at most one flush interval old, like the request metrics.
type Exposition struct {
	gatherer prometheus.Gatherer
	flushes  func() uint64 // changes when a flush has published a new snapshot

	mu  sync.Mutex
	gen *generation
	// size is the largest page encoded so far: the next encoding's buffer starts that large, so
	// the page is not copied through a dozen growing buffers.
	size atomic.Int64
}

// NewExposition returns the /metrics handler of g, whose encodings last as long as a flush of f.
func NewExposition(g prometheus.Gatherer, f *Flusher) *Exposition {
	return &Exposition{gatherer: g, flushes: f.flushes.Load}
}

// gzipLevel trades a scrape's size for the CPU of one compression a flush: on the 1,000-series
// page the default level takes about three times as long as the fastest for a page a fifth
// smaller (54 KB against 66 KB). Scrapes are local and the service's CPU is what the cache saves.
const gzipLevel = gzip.BestSpeed

// generation is what the scrapes between two flushes share: one gather, and the bodies encoded so
// far, each made once by the first scrape that asks for it while the others wait for it.
type generation struct {
	flushes uint64
	size    *atomic.Int64 // Exposition.size

	gathered sync.Once
	families []*dto.MetricFamily
	err      error

	mu     sync.Mutex
	bodies map[bodyKey]*body
}

type bodyKey struct {
	format expfmt.Format
	gzip   bool
}

type body struct {
	once sync.Once
	b    []byte
}

func (e *Exposition) current() *generation {
	n := e.flushes()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gen == nil || e.gen.flushes != n {
		e.gen = &generation{flushes: n, size: &e.size, bodies: map[bodyKey]*body{}}
	}
	return e.gen
}

func (g *generation) gather(from prometheus.Gatherer) ([]*dto.MetricFamily, error) {
	g.gathered.Do(func() { g.families, g.err = from.Gather() })
	return g.families, g.err
}

// body returns the exposition of the generation's families in format, gzipped or not.
func (g *generation) body(key bodyKey) []byte {
	g.mu.Lock()
	b := g.bodies[key]
	if b == nil {
		b = &body{}
		g.bodies[key] = b
	}
	g.mu.Unlock()
	b.once.Do(func() {
		if key.gzip {
			b.b = compress(g.body(bodyKey{format: key.format}))
			return
		}
		b.b = encode(g.families, key.format, int(g.size.Load()))
		if n := int64(len(b.b)); n > g.size.Load() {
			g.size.Store(n) // racing encodings of two formats may both store: either size will do
		}
	})
	return b.b
}

// encode writes families in format, into a buffer of size bytes to begin with. A family that fails
// to encode is left out, and the rest written, as promhttp's ContinueOnError does.
func encode(families []*dto.MetricFamily, format expfmt.Format, size int) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, size))
	enc := expfmt.NewEncoder(buf, format)
	for _, mf := range families {
		_ = enc.Encode(mf)
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		_ = closer.Close() // OpenMetrics' final "# EOF"
	}
	return buf.Bytes()
}

// compress gzips b with a writer from gzips: the compressor's state is about a megabyte, which a
// writer per flush would leave to the garbage collector every flush.
func compress(b []byte) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, len(b)/4))
	zw := gzips.Get().(*gzip.Writer)
	zw.Reset(buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	gzips.Put(zw)
	return buf.Bytes()
}

var gzips = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzipLevel) // the level is valid
	return zw
}}

// ServeHTTP negotiates the format from Accept (with its escaping scheme) and the content encoding
// from Accept-Encoding as promhttp does, and writes the generation's body. A request that names
// families (name[]=...) gets only those, encoded for it alone.
func (e *Exposition) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := e.current()
	families, err := g.gather(e.gatherer)
	if err != nil && len(families) == 0 {
		http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	key := bodyKey{format: format, gzip: negotiateEncoding(r.Header) == "gzip"}
	h := w.Header()
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.Set("Content-Type", string(format))
	if key.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	var b []byte
	if names := r.URL.Query()["name[]"]; len(names) > 0 {
		b = encode(only(families, names), format, 0)
		if key.gzip {
			b = compress(b)
		}
	} else {
		b = g.body(key)
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func only(families []*dto.MetricFamily, names []string) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, mf := range families {
		for _, n := range names {
			if mf.GetName() == n {
				out = append(out, mf)
				break
			}
		}
	}
	return out
}

// negotiateEncoding picks the content encoding of the answer among identity and gzip, as promhttp
// does without zstd: the offer of highest quality in Accept-Encoding ("*" matching either), identity
// when none matches or when the best match has quality 0. The header is read the way promhttp's
// parser reads it, which stops at the first parameter that is not q.
func negotiateEncoding(h http.Header) string {
	best, bestQ := "identity", -1.0
	specs := parseAcceptEncoding(h.Values("Accept-Encoding"))
	for _, offer := range []string{"identity", "gzip"} {
		for _, s := range specs {
			if s.q > bestQ && (s.value == "*" || s.value == offer) {
				best, bestQ = offer, s.q
			}
		}
	}
	if bestQ == 0 {
		return "identity" // promhttp's negotiation answers none; it then writes identity
	}
	return best
}

const space = " \t\r\n"

type acceptSpec struct {
	value string
	q     float64
}

func parseAcceptEncoding(lines []string) []acceptSpec {
	var specs []acceptSpec
	for _, s := range lines {
		for {
			spec := acceptSpec{q: 1}
			spec.value, s = token(s)
			if spec.value == "" {
				break
			}
			s = strings.TrimLeft(s, space)
			if strings.HasPrefix(s, ";") {
				s = strings.TrimLeft(s[1:], space)
				if !strings.HasPrefix(s, "q=") {
					break
				}
				if spec.q, s = quality(s[2:]); spec.q < 0 {
					break
				}
			}
			specs = append(specs, spec)
			s = strings.TrimLeft(s, space)
			if !strings.HasPrefix(s, ",") {
				break
			}
			s = strings.TrimLeft(s[1:], space)
		}
	}
	return specs
}

// token splits off a leading HTTP token (slashes allowed, as media types have them).
func token(s string) (string, string) {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || (strings.IndexByte(`"(),:;<=>?@[\]{}`, c) >= 0) {
			break
		}
	}
	return s[:i], s[i:]
}

// quality reads a q value as promhttp's parser does: 0 or 1, then optionally a point and digits.
// It answers -1 for anything else.
func quality(s string) (float64, string) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return -1, ""
	}
	q := float64(s[0] - '0')
	s = s[1:]
	if !strings.HasPrefix(s, ".") {
		return q, s
	}
	s = s[1:]
	i, n, d := 0, 0, 1
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
		d *= 10
	}
	return q + float64(n)/float64(d), s[i:]
}
