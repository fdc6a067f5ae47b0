package learn

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// bigSnapshot learns n /24s in 256 /16 networks and 64 ASes, each /24
// measured to some of the PoPs, and the clients to look them up.
func bigSnapshot(tb testing.TB, n int) (*Snapshot, []Client) {
	tb.Helper()
	pops := []string{"ams", "fra", "iad", "lhr", "sin", "syd"}
	agg := NewAggregator(Config{MaxEntries: 8 * n, MaxNewPerIngest: 8 * n, MinSamples: 1})
	loc := func(a netip.Addr) (netip.Prefix, uint32) {
		p, _ := a.Prefix(16)
		return p, 64500 + uint32(a.As4()[1]%64)
	}
	var ms []Measurement
	var clients []Client
	for i := range n {
		a := netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 1})
		for j, pop := range pops {
			if (i+j)%3 != 0 {
				ms = append(ms, Measurement{Prefix: CellOf(a), PoP: pop, RTTMS: float64(5 + (i*7+j*13)%200), Weight: 1})
			}
		}
		network, asn := loc(a)
		clients = append(clients, ClientOf(a, network, asn))
	}
	if _, err := agg.Ingest(ms, now, loc); err != nil {
		tb.Fatal(err)
	}
	return agg.Snapshot(now), clients
}

func TestLookupAllocs(t *testing.T) {
	snap, clients := bigSnapshot(t, 1000)
	miss := ClientOf(netip.MustParseAddr("2001:db8::1"), netip.Prefix{}, 0)
	var nilSnap *Snapshot
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"hit", func() { snap.Lookup(clients[7], "fra") }},
		{"borrow", func() { snap.Lookup(clients[0], "ams") }},
		{"miss", func() { snap.Lookup(miss, "fra") }},
		{"unknown PoP", func() { snap.Lookup(clients[7], "nowhere") }},
		{"nil snapshot", func() { nilSnap.Lookup(clients[7], "fra") }},
		{"find and six PoPs", func() {
			f := snap.Find(clients[9])
			for _, p := range []string{"ams", "fra", "iad", "lhr", "sin", "syd"} {
				f.Estimate(p)
			}
		}},
		{"in one cell", func() { snap.Find(clients[0]).EstimateIn("ams", CellNetwork) }},
		{"leader", func() { snap.Find(clients[0]).LeaderIn(CellNetwork) }},
		{"prefix gap", func() { snap.PrefixGap(netip.MustParseAddr("100.1.2.3")) }},
		{"network cell", func() { snap.HasNetworkCell(netip.MustParsePrefix("100.1.0.0/16")) }},
		{"client", func() { ClientOf(netip.MustParseAddr("100.1.2.3"), netip.MustParsePrefix("100.1.0.0/16"), 64501) }},
	} {
		if a := testing.AllocsPerRun(1000, tt.f); a != 0 {
			t.Errorf("%s: %v allocations per lookup, want 0", tt.name, a)
		}
	}
	if e, ok := snap.Lookup(clients[0], "ams"); !ok || e.Cell.Kind != CellNetwork {
		t.Errorf("client 0 to ams: %+v %v, want borrowed from its network", e, ok)
	}
	f := snap.Find(clients[0])
	for _, kind := range []CellKind{CellPrefix, CellNetwork, CellAS, 0, 9} {
		e, ok := f.EstimateIn("ams", kind)
		want, wantOK := snap.Find(ClientOf(clients[0].cells[0].Prefix.Addr(), netip.Prefix{}, 0)).Estimate("ams")
		switch kind {
		case CellNetwork, CellAS:
			c := clients[0]
			for i := range c.cells {
				if c.cells[i].Kind != kind {
					c.keys[i] = 0
				}
			}
			want, wantOK = snap.Find(c).Estimate("ams")
		case 0, 9:
			want, wantOK = Estimate{}, false
		}
		if e != want || ok != wantOK || (ok && e.Cell.Kind != kind) {
			t.Errorf("EstimateIn(ams, %v) = %+v %v, want %+v %v", kind, e, ok, want, wantOK)
		}
	}
}

func TestSnapshotNil(t *testing.T) {
	var s *Snapshot
	if s.Len() != 0 || !s.At().IsZero() || s.Generation() != 0 {
		t.Error("a nil snapshot is not empty")
	}
	if _, ok := s.Lookup(ClientOf(netip.MustParseAddr("198.51.100.1"), netip.Prefix{}, 0), "fra"); ok {
		t.Error("a nil snapshot found something")
	}
	if s := NewAggregator(Config{}).Snapshot(now); s.Len() != 0 || !s.At().Equal(now) {
		t.Errorf("empty aggregator's snapshot: %d entries at %v", s.Len(), s.At())
	}
}

// BenchmarkLookup looks up one PoP for clients of a snapshot of 100,000
// /24s (about 400,000 entries with their networks and ASes).
func BenchmarkLookup(b *testing.B) {
	snap, clients := bigSnapshot(b, 100_000)
	b.Logf("%d entries", snap.Len())
	for _, pop := range []string{"fra", "ams"} {
		b.Run(fmt.Sprintf("pop=%s", pop), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				snap.Lookup(clients[i%len(clients)], pop)
				i++
			}
		})
	}
	b.Run("find+6pops", func(b *testing.B) {
		b.ReportAllocs()
		pops := []string{"ams", "fra", "iad", "lhr", "sin", "syd"}
		i := 0
		for b.Loop() {
			f := snap.Find(clients[i%len(clients)])
			for _, p := range pops {
				f.Estimate(p)
			}
			i++
		}
	})
}

// TestSnapshotReuse: with nothing measured or evicted since, Snapshot
// hands out its last snapshot again, for at most Config.SnapshotReuse,
// so that an idle table keeps its generation; a measurement makes a new
// one.
func TestSnapshotReuse(t *testing.T) {
	const SnapshotReuse = time.Minute
	agg := NewAggregator(Config{MinSamples: 1, SnapshotReuse: SnapshotReuse})
	m := Measurement{Prefix: netip.MustParsePrefix("198.51.100.0/24"), PoP: "fra", RTTMS: 10, Weight: 1, Time: now}
	if _, err := agg.Ingest([]Measurement{m}, now, nil); err != nil {
		t.Fatal(err)
	}
	first := agg.Snapshot(now)
	if again := agg.Snapshot(now.Add(SnapshotReuse - time.Second)); again != first {
		t.Errorf("idle: generation %d, want the last one, %d", again.Generation(), first.Generation())
	}
	later := agg.Snapshot(now.Add(SnapshotReuse))
	if later == first || later.Generation() <= first.Generation() {
		t.Errorf("after %s: generation %d, want a new one after %d", SnapshotReuse, later.Generation(), first.Generation())
	}
	m.Time = now.Add(SnapshotReuse)
	if _, err := agg.Ingest([]Measurement{m}, m.Time, nil); err != nil {
		t.Fatal(err)
	}
	if next := agg.Snapshot(m.Time); next == later || next.Generation() <= later.Generation() {
		t.Errorf("after a measurement: generation %d, want a new one after %d", next.Generation(), later.Generation())
	}
}
