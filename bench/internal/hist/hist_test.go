package hist

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1, 1<<64 - 1} {
		i := index(v)
		if i < prev || i >= buckets {
			t.Fatalf("index(%d) = %d after %d (buckets %d)", v, i, prev, buckets)
		}
		prev = i
		if lo, hi := lowest(i), lowest(i+1); v < lo || (i+1 < buckets && hi != 0 && v >= hi) {
			t.Errorf("%d not in bucket %d [%d, %d)", v, i, lo, hi)
		}
	}
	// Every bucket is at most 1/64 of its value wide.
	for i := 2 * sub; i < buckets-sub-1; i++ {
		lo, hi := lowest(i), lowest(i+1)
		if float64(hi-lo)/float64(lo) > 1.0/sub+1e-12 {
			t.Fatalf("bucket %d [%d, %d) too wide", i, lo, hi)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	for range 100000 {
		d := time.Duration(rng.ExpFloat64() * float64(50*time.Microsecond))
		vals = append(vals, d)
		h.Record(d)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))]
		got := h.Quantile(q)
		if rel := float64(got-want) / float64(want); rel > 0.02 || rel < -0.02 {
			t.Errorf("q%.3f = %v, want %v (±2 %%)", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Quantile(1) > h.Max() {
		t.Errorf("max %v, q1 %v, want %v", h.Max(), h.Quantile(1), vals[len(vals)-1])
	}
	var a, b Histogram
	for i, v := range vals {
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a.Count() != h.Count() || a.Quantile(0.99) != h.Quantile(0.99) || a.Mean() != h.Mean() {
		t.Errorf("merged %d/%v/%v, want %d/%v/%v", a.Count(), a.Quantile(0.99), a.Mean(), h.Count(), h.Quantile(0.99), h.Mean())
	}
}
