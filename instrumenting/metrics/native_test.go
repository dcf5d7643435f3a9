package metrics

import (
	"bytes"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

func TestNativeSchemaFollowsTheBuckets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bounds []float64
		schema int32
	}{
		{"default", benchBuckets, 3}, // 62.5 µs to 20 s: 147 buckets
		{"one bound", []float64{1}, 4},
		{"narrow", []float64{0.1, 0.2}, 4},
		{"wide", []float64{1e-6, 1e3}, 2},    // 34 octaves
		{"widest", []float64{1e-9, 1e10}, 1}, // more than 1 ns to 292 years
		{"past the longest duration", []float64{1e12, 1e20}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNativeLayout(tc.bounds)
			if n.schema != tc.schema {
				t.Errorf("schema %d, want %d", n.schema, tc.schema)
			}
			if dense := n.hi - n.lo + 1; dense > maxNativeBuckets && n.schema > minNativeSchema {
				t.Errorf("%d dense buckets", dense)
			}
			if n.zeroThreshold <= 0 || n.zeroThreshold > tc.bounds[0] || n.key(n.zeroThreshold) != n.lo-1 ||
				n.key(math.Nextafter(n.zeroThreshold, math.Inf(1))) != n.lo {
				t.Errorf("zero threshold %g: not the lower bound of bucket %d", n.zeroThreshold, n.lo)
			}
			if n.top < n.hi || n.key(maxSeconds) != n.top {
				t.Errorf("top %d, hi %d", n.top, n.hi)
			}
		})
	}
}

// TestNativeKeysAreUpperInclusive: a bucket's upper bound, as Prometheus computes it, is in the
// bucket; the next float is in the next one.
func TestNativeKeysAreUpperInclusive(t *testing.T) {
	for s := int32(minNativeSchema); s <= maxNativeSchema; s++ {
		n := &nativeLayout{schema: s, fracs: nativeBounds[s]}
		for k := -300; k <= 300; k++ {
			b := n.upperBound(k)
			if n.key(b) != k || n.key(math.Nextafter(b, math.Inf(1))) != k+1 || n.key(math.Nextafter(b, 0)) != k {
				t.Fatalf("schema %d bucket %d, bound %g: keys %d, %d above, %d below", s, k, b,
					n.key(b), n.key(math.Nextafter(b, math.Inf(1))), n.key(math.Nextafter(b, 0)))
			}
		}
	}
}

// observations are durations across every kind of native bucket: the zero bucket (and zero and
// negative durations), the dense ones, the overflow ones up to the longest duration, and exact
// bucket bounds (powers of two seconds are bounds at every schema).
func observations(r *rand.Rand, n int) []time.Duration {
	d := []time.Duration{0, -time.Second, 1, math.MaxInt64, time.Second, time.Second / 2, time.Second / 4, 2 * time.Second,
		64 * time.Second, time.Hour, 1000 * time.Hour}
	for range n {
		// log-uniform over 1 ns to 2 h
		d = append(d, time.Duration(math.Exp(r.Float64()*math.Log(float64(2*time.Hour)))))
	}
	return d
}

// TestNativeBucketsAreExact: the aggregator's histogram, native buckets and classic ones, is the
// one client_golang's own histogram makes of the same observations at the same schema and zero
// threshold, bucket for bucket.
func TestNativeBucketsAreExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, bounds := range [][]float64{benchBuckets, {0.05}, {1e-6, 1e3}, {0.1, 0.2}} {
		agg := NewAggregator("other", nil, bounds, NativeHistograms(true))
		n := agg.native
		factor := math.Pow(2, math.Pow(2, -float64(n.schema))) * 1.001 // client_golang picks schema n.schema
		ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Help: "ref", Buckets: bounds,
			NativeHistogramBucketFactor: factor, NativeHistogramZeroThreshold: n.zeroThreshold})
		for _, d := range observations(r, 20000) {
			agg.End(agg.Begin(), 0, "GET", 200, d)
			ref.Observe(max(d, 0).Seconds())
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewCollector("app", NewFlusher(agg, time.Hour), BuildInfo{}))
		got := gatherFamily(t, reg, "app_request_duration_seconds").GetMetric()[0].GetHistogram()
		var m dto.Metric
		if err := ref.Write(&m); err != nil {
			t.Fatal(err)
		}
		want := m.GetHistogram()
		if got.GetSchema() != want.GetSchema() || got.GetZeroThreshold() != want.GetZeroThreshold() ||
			got.GetZeroCount() != want.GetZeroCount() || got.GetSampleCount() != want.GetSampleCount() ||
			!proto.Equal(&dto.Histogram{PositiveSpan: got.PositiveSpan, PositiveDelta: got.PositiveDelta, Bucket: got.Bucket},
				&dto.Histogram{PositiveSpan: want.PositiveSpan, PositiveDelta: want.PositiveDelta, Bucket: want.Bucket}) {
			t.Errorf("bounds %v: schema %d zero %g×%d count %d spans %v deltas %v buckets %v\nclient_golang: schema %d zero %g×%d count %d spans %v deltas %v buckets %v",
				bounds, got.GetSchema(), got.GetZeroThreshold(), got.GetZeroCount(), got.GetSampleCount(), got.PositiveSpan, got.PositiveDelta, got.Bucket,
				want.GetSchema(), want.GetZeroThreshold(), want.GetZeroCount(), want.GetSampleCount(), want.PositiveSpan, want.PositiveDelta, want.Bucket)
		}
		if math.Abs(got.GetSampleSum()-want.GetSampleSum()) > 1e-6*want.GetSampleSum() {
			t.Errorf("sum %g, client_golang %g", got.GetSampleSum(), want.GetSampleSum())
		}
		if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
			t.Errorf("lint: %v %v", lint, err)
		}
	}
}

// TestNativeCountsStayConsistentUnderContention: while requests land, every snapshot's native
// buckets add up to its count and no classic bucket exceeds it; at the end the totals are exact.
func TestNativeCountsStayConsistentUnderContention(t *testing.T) {
	agg := NewAggregator("other", []string{"a"}, []float64{0.001, 0.01}, NativeHistograms(true))
	const workers, perWorker = 8, 20000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				agg.End(agg.Begin(), 1, "GET", 200, time.Duration((w*perWorker+i)%30000)*time.Microsecond)
			}
		}()
	}
	check := func(s *Snapshot) uint64 {
		var total uint64
		for _, x := range s.Series {
			sum := x.ZeroCount
			for _, b := range x.Native {
				sum += b.Count
			}
			if sum != x.Count || x.Buckets[len(x.Buckets)-1] > x.Count {
				t.Fatalf("native buckets sum to %d, count %d, classic %v", sum, x.Count, x.Buckets)
			}
			total += x.Count
		}
		return total
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for snapshots := 0; ; snapshots++ {
		select {
		case <-done:
			if got := check(agg.Snapshot()); got != workers*perWorker {
				t.Fatalf("published %d, made %d", got, workers*perWorker)
			}
			t.Logf("%d snapshots taken during the load", snapshots)
			return
		default:
			check(agg.Snapshot())
		}
	}
}

// TestNativeOnlyOverProtobuf: the protobuf exposition carries the native buckets, the text one
// the classic buckets alone, unchanged by native histograms being on.
func TestNativeOnlyOverProtobuf(t *testing.T) {
	encode := func(native bool, format expfmt.Format) []byte {
		agg := NewAggregator("other", nil, []float64{0.01, 0.1}, NativeHistograms(native))
		for _, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, time.Second} {
			agg.End(agg.Begin(), 0, "GET", 200, d)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewCollector("app", NewFlusher(agg, time.Hour), BuildInfo{}))
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		enc := expfmt.NewEncoder(&b, format)
		for _, f := range fams {
			if f.GetName() == "app_request_duration_seconds" {
				if err := enc.Encode(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		return b.Bytes()
	}
	text := expfmt.NewFormat(expfmt.TypeTextPlain)
	if on, off := encode(true, text), encode(false, text); !bytes.Equal(on, off) || !strings.Contains(string(on), `le="0.1"} 2`) {
		t.Errorf("text exposition with native histograms:\n%s\nwithout:\n%s", on, off)
	}
	fams, err := expfmt.NewDecoder(bytes.NewReader(encode(true, expfmt.NewFormat(expfmt.TypeProtoDelim))), expfmt.NewFormat(expfmt.TypeProtoDelim)).(interface {
		Decode(*dto.MetricFamily) error
	}), error(nil)
	if err != nil {
		t.Fatal(err)
	}
	var mf dto.MetricFamily
	if err := fams.Decode(&mf); err != nil {
		t.Fatal(err)
	}
	h := mf.GetMetric()[0].GetHistogram()
	// 1 ms, 20 ms and 1 s at schema 4 (buckets [0.01, 0.1]: 62.5 µs to 0.2 s)
	if h.GetSchema() != 4 || len(h.GetPositiveSpan()) != 3 || !reflect.DeepEqual(h.GetPositiveDelta(), []int64{1, 0, 0}) || len(h.GetBucket()) != 2 {
		t.Errorf("protobuf histogram: %v", h)
	}
}
