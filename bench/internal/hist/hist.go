// Package hist owns the load generator's latency histogram: log-linear
// buckets (64 per power of two, so about 1.6 % wide) over nanoseconds, cheap
// enough to update for every reply, mergeable across sockets, and read back
// as percentiles.
package hist

import (
	"math/bits"
	"time"
)

const (
	subBits = 6
	sub     = 1 << subBits // buckets per power of two
	// buckets covers values up to 2^(64-subBits) ns and beyond.
	buckets = (64-subBits+1)*sub + sub
)

// Histogram counts durations. The zero value is empty and ready to use.
type Histogram struct {
	counts [buckets]uint64
	n      uint64
	sum    uint64
	max    uint64
}

// index returns v's bucket: values below 2·sub have their own bucket, and
// above that each power of two is split into sub buckets.
func index(v uint64) int {
	if v < 2*sub {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [sub, 2·sub)
	return (e+1)*sub + int(v>>e) - sub
}

// lowest returns the smallest value of bucket i.
func lowest(i int) uint64 {
	if i < 2*sub {
		return uint64(i)
	}
	e := i/sub - 1
	return uint64(i%sub+sub) << e
}

// Record counts one duration.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[index(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the longest duration recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the mean duration, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the duration below which a fraction q (0 to 1) of the
// recorded durations fall: the middle of the bucket that holds it, never
// above Max. It is 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowest(i), lowest(i+1)
			return time.Duration(min(lo+(hi-lo)/2, h.max))
		}
	}
	return time.Duration(h.max)
}
