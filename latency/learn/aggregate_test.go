package learn

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// locate is a deterministic GeoIP stand-in: 198.51.x.0/24 lies in a /20
// unless x%3 == 0, and in AS 64500 + x%2 unless x%5 == 0.
func locate(addr netip.Addr) (netip.Prefix, uint32) {
	x := addr.As16()[14]
	if addr.Is4() {
		x = addr.As4()[2]
	}
	var network netip.Prefix
	if x%3 != 0 {
		bits := 20
		if addr.Is6() {
			bits = 40
		}
		network, _ = addr.Prefix(bits)
	}
	var asn uint32
	if x%5 != 0 {
		asn = 64500 + uint32(x%2)
	}
	return network, asn
}

// model is the brute-force reference: it keeps every sample and
// recomputes the decayed sums from scratch, in the definition's terms.
type model struct {
	cfg     Config
	entries map[modelKey]*modelEntry
	seq     int64
}

type modelKey struct {
	cell Cell
	pop  string
}

type modelEntry struct {
	samples   []modelSample
	last, seq int64
}

type modelSample struct {
	t    int64
	w, x float64
}

// sums is Σ w·2^(−(at−t)/H)·x and Σ w·2^(−(at−t)/H) over the samples,
// and n the count MinSamples gates: Σ min(w, 1)·2^(−(at−t)/H), each
// measurement counting at most once whatever its weight.
func (m *model) sums(e *modelEntry, at int64) (sum, wt, n float64) {
	for _, s := range e.samples {
		d := math.Exp2(-float64(at-s.t) / float64(m.cfg.HalfLife))
		sum += s.w * d * s.x
		wt += s.w * d
		n += min(s.w, 1) * d
	}
	return sum, wt, n
}

func (m *model) ingest(ms []Measurement, now time.Time) {
	for _, meas := range ms {
		t := meas.Time
		if t.IsZero() || t.After(now) {
			t = now
		}
		if t.Before(now.Add(-m.cfg.StaleAfter)) {
			continue
		}
		network, asn := locate(meas.Prefix.Addr())
		for _, c := range ClientOf(meas.Prefix.Addr(), network, asn).Cells() {
			m.add(modelKey{c, meas.PoP}, t.UnixNano(), meas.Weight, math.Log(meas.RTTMS))
		}
	}
}

func (m *model) add(k modelKey, t int64, w, x float64) {
	m.seq++
	e := m.entries[k]
	if e == nil {
		e = &modelEntry{last: t, seq: m.seq}
		m.entries[k] = e
		if len(m.entries) > m.cfg.MaxEntries {
			var oldest modelKey
			var o *modelEntry
			for kk, ee := range m.entries {
				if o == nil || ee.last < o.last || ee.last == o.last && ee.seq < o.seq {
					oldest, o = kk, ee
				}
			}
			delete(m.entries, oldest)
			if o == e {
				return
			}
		}
	}
	e.seq = m.seq
	e.last = max(e.last, t)
	if sum, wt, n := m.sums(e, e.last); n >= m.cfg.MinSamples {
		clip := math.Log(m.cfg.ClipFactor)
		x = math.Min(math.Max(x, sum/wt-clip), sum/wt+clip)
	}
	e.samples = append(e.samples, modelSample{t, w, x})
}

// want is what a snapshot at now must hold for k, if anything.
func (m *model) want(k modelKey, now time.Time) (Estimate, bool) {
	e := m.entries[k]
	if e == nil || e.last < now.Add(-m.cfg.StaleAfter).UnixNano() {
		return Estimate{}, false
	}
	sum, wt, n := m.sums(e, now.UnixNano())
	if n < m.cfg.MinSamples {
		return Estimate{}, false
	}
	return Estimate{RTTMS: math.Exp(sum / wt), Cell: k.cell, Samples: n, Weight: math.Min(wt, n), Updated: time.Unix(0, e.last), Age: now.Sub(time.Unix(0, e.last))}, true
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func sameEstimate(got, want Estimate) bool {
	return near(got.RTTMS, want.RTTMS) && near(got.Samples, want.Samples) && near(got.Weight, want.Weight) && got.Cell == want.Cell && got.Updated.Equal(want.Updated) && got.Age == want.Age
}

// TestAggregatorMatchesModel feeds random measurement streams to the
// aggregator and to the model and compares smoothed values, counts,
// eviction and borrowing after every batch.
func TestAggregatorMatchesModel(t *testing.T) {
	pops := []string{"fra", "iad", "sin"}
	evicted, byKind := 0, map[CellKind]int{}
	defer func() {
		// The streams must exercise what they check.
		if evicted == 0 || byKind[CellPrefix] == 0 || byKind[CellNetwork] == 0 || byKind[CellAS] == 0 || byKind[0] == 0 {
			t.Errorf("streams too tame: %d evicted, lookups by cell kind %v", evicted, byKind)
		}
	}()
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 17))
		cfg := Config{HalfLife: 5 * time.Minute, CountHalfLife: 5 * time.Minute, StaleAfter: 30 * time.Minute, MinSamples: 2, ClipFactor: 3, MaxEntries: 40 + rng.IntN(60), MaxNewPerIngest: 1 << 20}
		agg := NewAggregator(cfg)
		ref := &model{cfg: agg.Config(), entries: map[modelKey]*modelEntry{}}
		clock := now
		cellOf := func() netip.Prefix {
			x := byte(rng.IntN(12))
			if rng.IntN(4) == 0 {
				return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: x}), 48)
			}
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, x, 0}), 24)
		}
		for batch := range 30 {
			clock = clock.Add(time.Duration(rng.IntN(240)) * time.Second)
			var ms []Measurement
			for range rng.IntN(40) {
				m := Measurement{Prefix: cellOf(), PoP: pops[rng.IntN(len(pops))], RTTMS: 5 + rng.Float64()*200, Weight: []float64{0.5, 1, 1, 2}[rng.IntN(4)]}
				if rng.IntN(10) == 0 {
					m.RTTMS *= 20 // an outlier
				}
				if rng.IntN(5) > 0 {
					m.Time = clock.Add(-time.Duration(rng.IntN(40*60)) * time.Second) // some stale, most not
				}
				ms = append(ms, m)
			}
			res, err := agg.Ingest(ms, clock, locate)
			if err != nil {
				t.Fatal(err)
			}
			evicted += res.Evicted
			ref.ingest(ms, clock)
			at := clock.Add(time.Duration(rng.IntN(600)) * time.Second)
			snap := agg.Snapshot(at)
			// Every entry the model expects is in the snapshot, with its values,
			// and the snapshot holds nothing else.
			n := 0
			for k := range ref.entries {
				want, ok := ref.want(k, at)
				got, gotOK := snapEntry(snap, k)
				if ok != gotOK || ok && !sameEstimate(got, want) {
					t.Fatalf("seed %d batch %d: %v→%s: got %+v %v, want %+v %v", seed, batch, k.cell, k.pop, got, gotOK, want, ok)
				}
				if ok {
					n++
				}
			}
			if snap.Len() != n {
				t.Fatalf("seed %d batch %d: snapshot holds %d entries, the model %d", seed, batch, snap.Len(), n)
			}
			// The snapshot pruned what was stale at at; the model holds no
			// fewer entries than the aggregator, and no more than the cap.
			if agg.Len() > cfg.MaxEntries {
				t.Fatalf("%d entries, cap %d", agg.Len(), cfg.MaxEntries)
			}
			for k, e := range ref.entries {
				if e.last < at.Add(-cfg.StaleAfter).UnixNano() {
					delete(ref.entries, k)
				}
			}
			if agg.Len() != len(ref.entries) {
				t.Fatalf("seed %d batch %d: %d entries, the model %d", seed, batch, agg.Len(), len(ref.entries))
			}
			// Borrowing: for every client, the finest cell with an estimate.
			for range 30 {
				p := cellOf()
				network, asn := locate(p.Addr())
				c := ClientOf(p.Addr(), network, asn)
				for _, pop := range append(pops, "lhr") {
					want, ok := Estimate{}, false
					for _, cell := range c.Cells() {
						if want, ok = ref.want(modelKey{cell, pop}, at); ok {
							break
						}
					}
					got, gotOK := snap.Lookup(c, pop)
					byKind[got.Cell.Kind]++
					if ok != gotOK || ok && !sameEstimate(got, want) {
						t.Fatalf("seed %d batch %d: lookup %v %s: got %+v %v, want %+v %v", seed, batch, c.Cells(), pop, got, gotOK, want, ok)
					}
				}
			}
		}
	}
}

// snapEntry reads one (cell, PoP) of a snapshot, without borrowing.
func snapEntry(s *Snapshot, k modelKey) (Estimate, bool) {
	var c Client
	c.cells[0], c.keys[0] = k.cell, k.cell.key()
	return s.Lookup(c, k.pop)
}

func TestDecay(t *testing.T) {
	const h = 10 * time.Minute
	agg := NewAggregator(Config{HalfLife: h, CountHalfLife: h, StaleAfter: 2 * time.Hour, MinSamples: 0.5, ClipFactor: 10})
	c := ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0)
	ms := []Measurement{
		{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 10, Weight: 2, Time: now},
		{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 40, Weight: 2, Time: now.Add(-h)}, // weighs 1 at now
	}
	if _, err := agg.Ingest(ms, now, nil); err != nil {
		t.Fatal(err)
	}
	wantRTT := math.Exp((2*math.Log(10) + math.Log(40)) / 3)
	for _, tt := range []struct {
		at      time.Duration
		samples float64
		ok      bool
	}{
		{0, 1.5, true}, // each line counts 1 whatever its weight, the older half
		{h, 0.75, true},
		{h + h/2, 1.5 / math.Sqrt(8), true},
		{2 * h, 0.375, false},                 // below MinSamples: cannot decide
		{2*time.Hour + time.Second, 0, false}, // stale: evicted
	} {
		got, ok := agg.Snapshot(now.Add(tt.at)).Lookup(c, "fra")
		if ok != tt.ok || ok && (!near(got.Samples, tt.samples) || !near(got.RTTMS, wantRTT) || !got.Updated.Equal(now) || got.Age != tt.at) {
			t.Errorf("at +%v: got %+v %v, want %v samples, %v ms, %v", tt.at, got, ok, tt.samples, wantRTT, tt.ok)
		}
	}
	if agg.Len() != 0 {
		t.Errorf("%d entries left after StaleAfter", agg.Len())
	}
}

func TestClipping(t *testing.T) {
	agg := NewAggregator(Config{MinSamples: 2, ClipFactor: 3})
	in := func(rtt, w float64) {
		if _, err := agg.Ingest([]Measurement{{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: rtt, Weight: w}}, now, nil); err != nil {
			t.Fatal(err)
		}
	}
	in(2000, 1) // not yet established: no mean to clip to
	in(20, 2)   // two measurements: clipping armed from here
	in(0.1, 1)
	mean := (math.Log(2000) + 2*math.Log(20)) / 3
	want := math.Exp((3*mean + (mean - math.Log(3))) / 4)
	got, _ := agg.Snapshot(now).Lookup(ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0), "fra")
	if !near(got.RTTMS, want) {
		t.Errorf("rtt %v, want %v", got.RTTMS, want)
	}
}

func TestBorrowing(t *testing.T) {
	agg := NewAggregator(Config{MinSamples: 2, MaxNewPerIngest: 100})
	net20 := pfx("198.51.96.0/20")
	loc := func(netip.Addr) (netip.Prefix, uint32) { return net20, 64500 }
	var ms []Measurement
	add := func(p, pop string, rtt float64, n int) {
		for range n {
			ms = append(ms, Measurement{Prefix: pfx(p), PoP: pop, RTTMS: rtt, Weight: 1})
		}
	}
	add("198.51.100.0/24", "fra", 10, 2) // the client's own /24
	add("198.51.100.0/24", "iad", 90, 1) // too few of its own: borrows
	add("198.51.101.0/24", "iad", 80, 2) // a neighbour in the same /20
	add("203.0.113.0/24", "sin", 200, 2) // elsewhere in the AS (loc's /20 does not hold it, so it is dropped)
	if _, err := agg.Ingest(ms, now, loc); err != nil {
		t.Fatal(err)
	}
	snap := agg.Snapshot(now)
	c := ClientOf(netip.MustParseAddr("198.51.100.77"), net20, 64500)
	other := ClientOf(netip.MustParseAddr("192.0.2.1"), pfx("192.0.2.0/23"), 64500)
	for _, tt := range []struct {
		client  Client
		pop     string
		cell    string
		samples float64
		rtt     float64
	}{
		{c, "fra", "198.51.100.0/24", 2, 10},
		{c, "iad", "network 198.51.96.0/20", 3, math.Exp((math.Log(90) + 2*math.Log(80)) / 3)},
		{c, "sin", "AS64500", 2, 200},
		{other, "fra", "AS64500", 2, 10},
		{other, "lhr", "", 0, 0},
		{ClientOf(netip.MustParseAddr("192.0.2.1"), netip.Prefix{}, 0), "fra", "", 0, 0},
	} {
		got, ok := snap.Lookup(tt.client, tt.pop)
		if ok != (tt.cell != "") || ok && (got.Cell.String() != tt.cell || !near(got.Samples, tt.samples) || !near(got.RTTMS, tt.rtt)) {
			t.Errorf("%v %s: got %+v (%v) %v, want %s %v samples %v ms", tt.client.Cells(), tt.pop, got, got.Cell, ok, tt.cell, tt.samples, tt.rtt)
		}
	}
}

func TestClientOf(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.7")
	for _, tt := range []struct {
		addr    netip.Addr
		network netip.Prefix
		asn     uint32
		want    string
	}{
		{a, pfx("198.51.96.0/20"), 64500, "[198.51.100.0/24 network 198.51.96.0/20 AS64500]"},
		{a, pfx("198.51.100.0/25"), 0, "[198.51.100.0/24]"},                        // finer than the cell: adds nothing
		{a, pfx("198.51.100.0/24"), 0, "[198.51.100.0/24]"},                        // the cell itself
		{a, pfx("203.0.113.0/24"), 0, "[198.51.100.0/24]"},                         // not around the client
		{a, pfx("198.51.100.7/20"), 0, "[198.51.100.0/24 network 198.51.96.0/20]"}, // masked
		{netip.MustParseAddr("::ffff:198.51.100.7"), pfx("::ffff:198.51.96.0/116"), 0, "[198.51.100.0/24 network 198.51.96.0/20]"},
		{netip.MustParseAddr("2001:db8:1:2::1"), pfx("2001:db8::/32"), 7, "[2001:db8:1::/48 network 2001:db8::/32 AS7]"},
		{netip.Addr{}, pfx("2001:db8::/32"), 7, "[]"},
	} {
		if got := fmtCells(ClientOf(tt.addr, tt.network, tt.asn).Cells()); got != tt.want {
			t.Errorf("ClientOf(%v, %v, %d) = %s, want %s", tt.addr, tt.network, tt.asn, got, tt.want)
		}
	}
}

func fmtCells(cells []Cell) string {
	s := "["
	for i, c := range cells {
		if i > 0 {
			s += " "
		}
		s += c.String()
	}
	return s + "]"
}

// TestBounded inserts twice the cap: the size stays at the cap, and the
// oldest are the ones evicted.
func TestBounded(t *testing.T) {
	const max = 1000
	agg := NewAggregator(Config{MaxEntries: max, MinSamples: 0.5, StaleAfter: 24 * time.Hour, HalfLife: 24 * time.Hour})
	cell := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	evicted := 0
	for b := range 2 * max / 100 {
		var ms []Measurement
		for i := b * 100; i < (b+1)*100; i++ {
			ms = append(ms, Measurement{Prefix: cell(i), PoP: "fra", RTTMS: 10, Weight: 1, Time: now.Add(time.Duration(i) * time.Second)})
		}
		res, err := agg.Ingest(ms, now.Add(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		evicted += res.Evicted
		if agg.Len() > max {
			t.Fatalf("after batch %d: %d entries, cap %d", b, agg.Len(), max)
		}
	}
	if agg.Len() != max || evicted != max {
		t.Fatalf("%d entries, %d evicted; want %d and %d", agg.Len(), evicted, max, max)
	}
	snap := agg.Snapshot(now.Add(time.Hour))
	for i := range 2 * max {
		_, ok := snap.Lookup(ClientOf(cell(i).Addr(), netip.Prefix{}, 0), "fra")
		if ok != (i >= max) {
			t.Fatalf("cell %d (measured at +%ds): present %v, want %v", i, i, ok, i >= max)
		}
	}
	// An old measurement does not evict a newer entry: it is the oldest.
	res, err := agg.Ingest([]Measurement{{Prefix: cell(5000), PoP: "fra", RTTMS: 10, Weight: 1, Time: now}}, now.Add(time.Hour), nil)
	if err != nil || res.Evicted != 1 || agg.Len() != max {
		t.Fatalf("%+v %v, %d entries", res, err, agg.Len())
	}
	if _, ok := agg.Snapshot(now.Add(time.Hour)).Lookup(ClientOf(cell(max).Addr(), netip.Prefix{}, 0), "fra"); !ok {
		t.Error("the oldest entry held was evicted for an older measurement")
	}
}

func TestIngestRefused(t *testing.T) {
	agg := NewAggregator(Config{MaxEntries: 100}) // MaxNewPerIngest 10
	var ms []Measurement
	for i := range 4 {
		ms = append(ms, Measurement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(i), 0}), 24), PoP: "fra", RTTMS: 10, Weight: 1})
	}
	// 4 prefix cells + 1 network + 1 AS per PoP: 6 new entries for fra, 6 for iad.
	loc := func(netip.Addr) (netip.Prefix, uint32) { return pfx("198.51.0.0/16"), 64500 }
	if res, err := agg.Ingest(ms, now, loc); err != nil || res.NewEntries != 6 {
		t.Fatalf("%+v %v", res, err)
	}
	for i := range ms {
		ms[i].PoP = "iad"
	}
	// 6 new for iad, 1 for a new /24 to fra (its network and AS are known),
	// 3 for sin, 1 more /24 to fra: 11.
	ms = append(ms,
		Measurement{Prefix: pfx("198.51.9.0/24"), PoP: "fra", RTTMS: 10, Weight: 1},
		Measurement{Prefix: pfx("198.51.10.0/24"), PoP: "sin", RTTMS: 10, Weight: 1},
		Measurement{Prefix: pfx("198.51.11.0/24"), PoP: "fra", RTTMS: 10, Weight: 1})
	_, err := agg.Ingest(ms, now, loc)
	if !errors.Is(err, ErrTooManyNew) || err.Error() != "learn: too many new cells in one ingest: 11, at most 10" || agg.Len() != 6 {
		t.Fatalf("got %v, %d entries", err, agg.Len())
	}
	if res, err := agg.Ingest(ms[:len(ms)-1], now, loc); err != nil || res.NewEntries != 10 || agg.Len() != 16 {
		t.Fatalf("%+v %v, %d entries", res, err, agg.Len())
	}
}

// TestCellKey: a cell's packed key is unique and unpacks to the cell, for
// every shape of cell ClientOf makes.
func TestCellKey(t *testing.T) {
	cells := []Cell{
		{Kind: CellPrefix, Prefix: pfx("198.51.100.0/24")},
		{Kind: CellPrefix, Prefix: pfx("255.255.255.0/24")},
		{Kind: CellPrefix, Prefix: pfx("0.0.0.0/24")},
		{Kind: CellPrefix, Prefix: pfx("2001:db8:ffff::/48")},
		{Kind: CellPrefix, Prefix: pfx("::/48")},
		{Kind: CellNetwork, Prefix: pfx("198.51.96.0/20")},
		{Kind: CellNetwork, Prefix: pfx("198.51.100.0/23")},
		{Kind: CellNetwork, Prefix: pfx("0.0.0.0/0")},
		{Kind: CellNetwork, Prefix: pfx("::/0")},
		{Kind: CellNetwork, Prefix: pfx("2001:db8:fffe::/47")},
		{Kind: CellAS, ASN: 1},
		{Kind: CellAS, ASN: 1<<32 - 1},
	}
	seen := map[uint64]Cell{}
	for _, c := range cells {
		k := c.key()
		if got := cellOfKey(k); got != c {
			t.Errorf("%v: key %#x unpacks to %v", c, k, got)
		}
		if other, dup := seen[k]; dup || k == 0 {
			t.Errorf("%v: key %#x is also %v's (or zero)", c, k, other)
		}
		seen[k] = c
	}
}

// TestIngestInvalid: measurements that did not come through ParseBatch
// are checked again, and a bad one is skipped, not folded into the sums.
func TestIngestInvalid(t *testing.T) {
	good := Measurement{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: 10, Weight: 1}
	for _, tt := range []struct {
		name string
		edit func(*Measurement)
	}{
		{"zero prefix", func(m *Measurement) { m.Prefix = netip.Prefix{} }},
		{"not a cell", func(m *Measurement) { m.Prefix = pfx("198.51.100.0/25") }},
		{"4in6", func(m *Measurement) { m.Prefix = pfx("::ffff:198.51.100.0/48") }},
		{"NaN rtt", func(m *Measurement) { m.RTTMS = math.NaN() }},
		{"negative rtt", func(m *Measurement) { m.RTTMS = -1 }},
		{"tiny rtt", func(m *Measurement) { m.RTTMS = 1e-6 }},
		{"huge rtt", func(m *Measurement) { m.RTTMS = 1e9 }},
		{"zero weight", func(m *Measurement) { m.Weight = 0 }},
		{"inf weight", func(m *Measurement) { m.Weight = math.Inf(1) }},
		{"bad pop", func(m *Measurement) { m.PoP = "" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			agg := NewAggregator(Config{MinSamples: 1})
			bad := good
			tt.edit(&bad)
			res, err := agg.Ingest([]Measurement{good, bad, good}, now, nil)
			if err != nil || res != (IngestResult{Applied: 2, Invalid: 1, NewEntries: 1}) {
				t.Fatalf("%+v %v", res, err)
			}
			e, ok := agg.Snapshot(now).Lookup(ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0), "fra")
			if !ok || !near(e.RTTMS, 10) || e.Samples != 2 {
				t.Errorf("%+v %v, want 10 ms from 2 samples", e, ok)
			}
		})
	}
}

// TestConcurrent runs ingest, snapshots, saves and lookups on published
// snapshots at once, for the race detector.
func TestConcurrent(t *testing.T) {
	agg := NewAggregator(Config{MinSamples: 1, MaxEntries: 500})
	var pub atomic.Pointer[Snapshot]
	pub.Store(agg.Snapshot(now))
	dir := t.TempDir()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(i), 0}), 24)
				if _, err := agg.Ingest([]Measurement{{Prefix: p, PoP: []string{"fra", "iad"}[w], RTTMS: float64(1 + i), Weight: 1}}, now, locate); err != nil {
					t.Error(err)
					return
				}
				if i%20 == 0 {
					pub.Store(agg.Snapshot(now))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 5 {
			if err := agg.Save(dir, now); err != nil {
				t.Error(err)
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := ClientOf(netip.MustParseAddr("198.51.7.1"), pfx("198.51.0.0/20"), 64501)
		for {
			select {
			case <-stop:
				return
			default:
				pub.Load().Lookup(c, "fra")
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	final := agg.Snapshot(now)
	if final.Generation() < 2 || final.Len() == 0 {
		t.Errorf("generation %d, %d entries", final.Generation(), final.Len())
	}
	if _, err := Load(dir, Config{}, now); err != nil {
		t.Error(err)
	}
}

// TestRouteChange pins how fast an entry follows a step from 20 ms to
// 50 ms under a steady stream (one sample every 10 s): half way (in log
// space) after one half-life, within 10 % of 50 ms after log2(1/0.115) ≈
// 3.1 half-lives, since ln(45/20)/ln(50/20) = 0.885 of the weight must be
// new. docs/learned-latency.md quotes these figures.
func TestRouteChange(t *testing.T) {
	const h = 10 * time.Minute
	agg := NewAggregator(Config{HalfLife: h, MinSamples: 3, ClipFactor: 3})
	c := ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0)
	clock := now
	feed := func(rtt float64, d time.Duration) {
		for end := clock.Add(d); clock.Before(end); clock = clock.Add(10 * time.Second) {
			if _, err := agg.Ingest([]Measurement{{Prefix: c.cells[0].Prefix, PoP: "fra", RTTMS: rtt, Weight: 1, Time: clock}}, clock, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	feed(20, 2*time.Hour)
	var half, within time.Duration
	for step := time.Duration(0); within == 0 && step < 2*time.Hour; step += 10 * time.Second {
		feed(50, 10*time.Second)
		e, _ := agg.Snapshot(clock).Lookup(c, "fra")
		if half == 0 && e.RTTMS >= math.Sqrt(20*50) {
			half = step + 10*time.Second
		}
		if e.RTTMS >= 45 {
			within = step + 10*time.Second
		}
	}
	t.Logf("half way after %v, within 10 %% after %v", half, within)
	if half < h-time.Minute || half > h+time.Minute || within < 30*time.Minute || within > 33*time.Minute {
		t.Errorf("half way after %v, within 10 %% after %v; want about %v and 31 min", half, within, h)
	}
}

// TestCountHalfLife: with a count half-life longer than the mean's, a
// sparse entry keeps deciding between its samples, and its mean still
// follows a change at the mean's half-life.
func TestCountHalfLife(t *testing.T) {
	c := ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0)
	ms := func(rtt float64, at time.Time) []Measurement {
		return []Measurement{{Prefix: c.cells[0].Prefix, PoP: "fra", RTTMS: rtt, Weight: 1, Time: at}}
	}
	tests := []struct {
		name   string
		count  time.Duration
		decide bool
	}{{"count decays with the mean", time.Minute, false}, {"count decays slower (the default)", 0, true}}
	for _, tc := range tests {
		agg := NewAggregator(Config{HalfLife: time.Minute, CountHalfLife: tc.count, MinSamples: 3})
		for i := range 5 {
			if _, err := agg.Ingest(ms(20, now.Add(time.Duration(i)*time.Second)), now.Add(time.Duration(i)*time.Second), nil); err != nil {
				t.Fatal(err)
			}
		}
		// Ten minutes on, 5 samples count 5·2^(-10) with the mean's
		// half-life and 5·2^(-1/3) ≈ 3.97 with a 30 min count half-life.
		later := now.Add(10 * time.Minute)
		e, ok := agg.Snapshot(later).Lookup(c, "fra")
		if ok != tc.decide || (ok && (math.Abs(e.RTTMS-20) > 1e-9 || math.Abs(e.Samples-5*math.Exp2(-10.0/30)) > 0.01)) {
			t.Errorf("%s: lookup %+v, %v; want deciding %v", tc.name, e, ok, tc.decide)
		}
		// A step to 50 ms, a sample every 10 s: within 10 % after about
		// 3.1 of the mean's half-lives whatever the count's.
		clock := later
		for range 19 {
			clock = clock.Add(10 * time.Second)
			if _, err := agg.Ingest(ms(50, clock), clock, nil); err != nil {
				t.Fatal(err)
			}
		}
		if e, _ := agg.Snapshot(clock).Lookup(c, "fra"); e.RTTMS < 45 {
			t.Errorf("%s: %.1f ms after 190 s of 50 ms, want ≥ 45", tc.name, e.RTTMS)
		}
	}
}

// TestLongSilence: after a silence of a thousand half-lives an entry's
// mean has no weight left while its count, on the longer count
// half-life, still lets it decide. The next sample starts the mean over:
// the estimate stays a number, and the table can still be saved and
// loaded.
func TestLongSilence(t *testing.T) {
	// MinSamples so low that the count, decaying on its own half-life,
	// still arms clipping after the mean's weight underflowed.
	cfg := Config{HalfLife: 10 * time.Second, MinSamples: 0.01}
	a := NewAggregator(cfg)
	t0 := time.Unix(1_800_000_000, 0)
	p := netip.MustParsePrefix("198.51.100.0/24")
	for i := range 3 {
		if _, err := a.Ingest([]Measurement{{Prefix: p, PoP: "fra", RTTMS: 20, Weight: 1000}}, t0.Add(time.Duration(i)*time.Second), nil); err != nil {
			t.Fatal(err)
		}
	}
	t1 := t0.Add(3*time.Hour + 10*time.Minute)
	if _, err := a.Ingest([]Measurement{{Prefix: p, PoP: "fra", RTTMS: 25, Weight: 1}}, t1, nil); err != nil {
		t.Fatal(err)
	}
	e, ok := a.Snapshot(t1).Lookup(ClientOf(p.Addr(), netip.Prefix{}, 0), "fra")
	if !ok || math.IsNaN(e.RTTMS) || math.Abs(e.RTTMS-25) > 1e-6 {
		t.Errorf("estimate after the silence: %v (found %v), want 25", e.RTTMS, ok)
	}
	dir := t.TempDir()
	if err := a.Save(dir, t1); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if _, err := Load(dir, cfg, t1); err != nil {
		t.Errorf("Load of what was saved: %v", err)
	}
}

// TestWeightCountsOnce: MinSamples counts measurements, not weight, so
// that one line of weight 1000 cannot decide a client's PoP alone, while
// weight still weights the mean (review M2).
func TestWeightCountsOnce(t *testing.T) {
	client := ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0)
	m := func(rtt, w float64) Measurement {
		return Measurement{Prefix: pfx("198.51.100.0/24"), PoP: "fra", RTTMS: rtt, Weight: w, Time: now}
	}
	tests := []struct {
		name    string
		ms      []Measurement
		decides bool
		rtt     float64 // geometric mean, weighted
		samples float64
	}{
		{"one heavy line", []Measurement{m(10, MaxWeight)}, false, 0, 0},
		{"two heavy lines", []Measurement{m(10, MaxWeight), m(10, MaxWeight)}, false, 0, 0},
		{"three lines", []Measurement{m(10, 1), m(10, 1), m(10, 1)}, true, 10, 3},
		{"weight weights the mean", []Measurement{m(10, 2), m(40, 1), m(40, 1)}, true, 20, 3},
		{"light lines count less", []Measurement{m(10, 0.5), m(10, 1), m(10, 1)}, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg := NewAggregator(Config{MinSamples: 3, ClipFactor: 100})
			if _, err := agg.Ingest(tt.ms, now, nil); err != nil {
				t.Fatal(err)
			}
			e, ok := agg.Snapshot(now).Lookup(client, "fra")
			if ok != tt.decides {
				t.Fatalf("decides %v (%+v), want %v", ok, e, tt.decides)
			}
			if ok && (!near(e.RTTMS, tt.rtt) || !near(e.Samples, tt.samples)) {
				t.Errorf("%.6g ms from %.6g samples, want %g from %g", e.RTTMS, e.Samples, tt.rtt, tt.samples)
			}
		})
	}
}

// TestNewBudget: with NewWindow, MaxNewPerIngest holds across ingests
// (refilled over the window), so that many small batches cannot flush
// the table where one large one may not; samples for entries held always
// pass (review M4).
func TestNewBudget(t *testing.T) {
	batch := func(from, n int) []Measurement {
		var ms []Measurement
		for i := from; i < from+n; i++ {
			ms = append(ms, Measurement{Prefix: pfx(fmt.Sprintf("198.51.%d.0/24", i)), PoP: "fra", RTTMS: 10, Weight: 1})
		}
		return ms
	}
	type step struct {
		at      time.Duration
		from, n int
		refused bool
		entries int
	}
	for _, tt := range []struct {
		name   string
		window time.Duration
		steps  []step
	}{
		{"per ingest only", 0, []step{{0, 0, 6, false, 6}, {0, 6, 6, false, 12}, {0, 12, 6, false, 18}, {0, 18, 11, true, 18}}},
		{"per window", time.Minute, []step{
			{0, 0, 6, false, 6},
			{0, 6, 6, true, 6},                  // 4 left
			{0, 0, 6, false, 6},                 // held entries: no budget needed
			{30 * time.Second, 6, 6, false, 12}, // 4 + 5 refilled
			{30 * time.Second, 12, 4, true, 12}, // 3 left
			{30 * time.Second, 12, 3, false, 15},
			{10 * time.Minute, 15, 10, false, 25}, // full again, never more
			{10 * time.Minute, 25, 1, true, 25},
			{5 * time.Minute, 25, 1, true, 25}, // a clock that went back refills nothing
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			agg := NewAggregator(Config{MaxNewPerIngest: 10, NewWindow: tt.window})
			for i, st := range tt.steps {
				_, err := agg.Ingest(batch(st.from, st.n), now.Add(st.at), nil)
				if refused := err != nil; refused != st.refused || agg.Len() != st.entries {
					t.Fatalf("step %d: %v, %d entries; want refused %v, %d entries", i, err, agg.Len(), st.refused, st.entries)
				}
				if err != nil && !errors.Is(err, ErrNewBudget) && !errors.Is(err, ErrTooManyNew) {
					t.Errorf("step %d: %v", i, err)
				}
			}
		})
	}
}

// TestIngestSharedBudget: a fleet peer's measurements are not charged to
// the new-cell budget (their origin charged its own), so they neither
// wait behind this instance's ingests nor spend its budget.
func TestIngestSharedBudget(t *testing.T) {
	agg := NewAggregator(Config{MaxEntries: 100, MaxNewPerIngest: 5, NewWindow: time.Minute, MinSamples: 1})
	cells := func(from, n int) []Measurement {
		var ms []Measurement
		for i := from; i < from+n; i++ {
			ms = append(ms, Measurement{Prefix: pfx(fmt.Sprintf("198.51.%d.0/24", i)), PoP: "fra", RTTMS: 10, Weight: 1})
		}
		return ms
	}
	if _, err := agg.Ingest(cells(0, 5), now, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := agg.Ingest(cells(5, 1), now, nil); !errors.Is(err, ErrNewBudget) {
		t.Fatalf("a 6th new cell at once: %v, want ErrNewBudget", err)
	}
	if res, err := agg.IngestShared(cells(5, 5), now, nil); err != nil || res.Applied != 5 {
		t.Fatalf("a peer's 5 new cells: %+v, %v; want applied, budget or not", res, err)
	}
	if _, err := agg.IngestShared(cells(10, 6), now, nil); !errors.Is(err, ErrTooManyNew) {
		t.Errorf("a peer's batch of 6 new cells: %v, want ErrTooManyNew (MaxNewPerIngest still holds)", err)
	}
}
