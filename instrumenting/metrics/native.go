package metrics

import (
	"math"
	"time"
)

// Native histograms: besides the classic buckets, the latency histogram can keep the sparse
// exponential buckets of Prometheus' native histograms. Bucket k of schema s holds the
// observations in (2^((k-1)/2^s), 2^(k/2^s)] seconds; the zero bucket those at or below the zero
// threshold. The aggregator keeps them as it keeps the classic ones: one atomic count per bucket
// and shard, so a request adds one more atomic add and computes its bucket from the float's
// exponent and a search among 2^s fractions.
//
// The schema follows the configured buckets: their range, widened below (four octaves under the
// lowest bound) and above (one octave over the highest), is covered by at most maxNativeBuckets
// dense buckets at the finest schema that allows. The widened range spans five octaves at least,
// so that is schema 4 at the finest (buckets 4.4% wide); the default buckets, 1 ms to 10 s, get
// schema 3 (9%). Faster observations go to the zero bucket; slower ones to overflow buckets up to
// the longest duration, made for a series on its first such observation and not sharded, since
// they are rare. Every observation is counted exactly in the bucket Prometheus defines for it.

const (
	// maxNativeBuckets bounds the dense buckets of a series: OpenTelemetry's default for its
	// exponential histograms, which keeps a series' memory under 2 KiB a shard.
	maxNativeBuckets = 160
	// maxNativeSchema is the finest schema at which 160 buckets span five octaves.
	maxNativeSchema = 4
	// minNativeSchema keeps the search table non-empty; the widest range a duration can span (1 ns
	// to 292 years) fits in 160 buckets of schema 1.
	minNativeSchema = 1
)

// nativeBounds are the upper bounds of one octave's buckets as fractions in [0.5, 1), by schema:
// the table the native histogram format defines, which Prometheus and client_golang share. Some
// are an ulp or two off the nearest float64 to 2^(j/2^s)/2; computing them instead would put an
// observation on a boundary in another bucket than Prometheus does.
var nativeBounds = [maxNativeSchema + 1][]float64{
	{0.5}, // schema 0
	{ // schema 1
		0.5, 0.7071067811865475,
	},
	{ // schema 2
		0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144,
	},
	{ // schema 3
		0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048,
		0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
	},
	{ // schema 4
		0.5, 0.5221368912137069, 0.5452538663326288, 0.5693943173783458,
		0.5946035575013605, 0.620928906036742, 0.6484197773255048, 0.6771277734684463,
		0.7071067811865475, 0.7384130729697496, 0.7711054127039704, 0.805245165974627,
		0.8408964152537144, 0.8781260801866495, 0.9170040432046711, 0.9576032806985735,
	},
}

// nativeLayout is where a latency histogram's native buckets are, for one schema.
type nativeLayout struct {
	schema        int32
	zeroThreshold float64   // upper bound of the zero bucket: the lower bound of bucket lo
	lo, hi        int       // keys of the dense buckets
	top           int       // key of the longest duration: the last overflow bucket
	fracs         []float64 // nativeBounds[schema]
}

// maxSeconds is the longest duration, in seconds.
var maxSeconds = time.Duration(math.MaxInt64).Seconds()

// newNativeLayout chooses the schema for the classic bucket bounds (increasing, positive): the
// finest whose dense buckets span the widened range within maxNativeBuckets.
func newNativeLayout(bounds []float64) *nativeLayout {
	high := min(bounds[len(bounds)-1]*2, maxSeconds)
	low := min(max(bounds[0]/16, 1e-9), high/2)
	for s := int32(maxNativeSchema); ; s-- {
		n := &nativeLayout{schema: s, fracs: nativeBounds[s]}
		n.lo, n.hi, n.top = n.key(low), n.key(high), n.key(maxSeconds)
		if n.hi-n.lo+1 <= maxNativeBuckets || s == minNativeSchema {
			n.zeroThreshold = n.upperBound(n.lo - 1)
			return n
		}
	}
}

// key returns the bucket of v seconds, v > 0 and finite, as client_golang computes it: from v's
// binary exponent and the first fraction of the octave not below v's mantissa. v is normal (a
// duration is at least 1 ns), so its exponent and mantissa are its bits.
func (n *nativeLayout) key(v float64) int {
	bits := math.Float64bits(v)
	exp := int(bits>>52&0x7ff) - 1022                       // v = frac × 2^exp,
	frac := math.Float64frombits(bits&(1<<52-1) | 1022<<52) // frac in [0.5, 1)
	lo, hi := 0, len(n.fracs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.fracs[m] < frac {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo + (exp-1)*len(n.fracs)
}

// upperBound returns the upper bound of bucket k in seconds, as Prometheus computes it.
func (n *nativeLayout) upperBound(k int) float64 {
	size := len(n.fracs)
	exp := k >> n.schema // floor division: k may be negative
	return math.Ldexp(n.fracs[k-exp*size], exp+1)
}

// bucket returns the key of an observation of d; below lo for the zero bucket.
func (n *nativeLayout) bucket(d time.Duration) int {
	if d <= 0 {
		return math.MinInt
	}
	return n.key(d.Seconds())
}
