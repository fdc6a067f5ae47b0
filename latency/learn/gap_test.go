package learn

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// TestPrefixGap checks PrefixGap against brute force: for random sets of
// learned /24s and /48s, the returned range holds no prefix cell but the
// address's own, and it is the widest such range (its neighbours outside
// it are cells, or it reaches the end of the family's space).
func TestPrefixGap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 50 {
		agg := NewAggregator(Config{MaxEntries: 10_000, MaxNewPerIngest: 10_000, MinSamples: 1})
		var ms []Measurement
		cells4 := map[uint32]bool{}
		cells6 := map[uint64]bool{}
		for range rng.IntN(12) {
			top := uint32(rng.IntN(64)) // few /24s in 0.0.0.0/18 so that gaps are small
			cells4[top] = true
			ms = append(ms, Measurement{Prefix: netip.PrefixFrom(v4Addr(top<<8), 24), PoP: "fra", RTTMS: 10, Weight: 1})
		}
		for range rng.IntN(6) {
			top := uint64(0x20010db80000) | uint64(rng.IntN(32))
			cells6[top] = true
			ms = append(ms, Measurement{Prefix: netip.PrefixFrom(v6Addr(top, false), 48), PoP: "fra", RTTMS: 10, Weight: 1})
		}
		if _, err := agg.Ingest(ms, now, nil); err != nil {
			t.Fatal(err)
		}
		snap := agg.Snapshot(now)
		for range 40 {
			top := uint32(rng.IntN(80))
			addr := v4Addr(top<<8 | uint32(rng.IntN(256)))
			lo, hi := snap.PrefixGap(addr)
			if len(cells4) == 0 {
				if lo.IsValid() {
					t.Fatalf("round %d: %s: no /24 cells, got a gap %s-%s", round, addr, lo, hi)
				}
				continue
			}
			if !lo.IsValid() || lo.Compare(addr) > 0 || hi.Compare(addr) < 0 {
				t.Fatalf("round %d: %s not in its gap %s-%s", round, addr, lo, hi)
			}
			l4, h4 := lo.As4(), hi.As4()
			first := uint32(l4[0])<<16 | uint32(l4[1])<<8 | uint32(l4[2])
			last := uint32(h4[0])<<16 | uint32(h4[1])<<8 | uint32(h4[2])
			if l4[3] != 0 || h4[3] != 0xff {
				t.Fatalf("round %d: gap %s-%s does not cover whole /24s", round, lo, hi)
			}
			for c := first; c <= last && c < 1<<18; c++ {
				if cells4[c] && c != top {
					t.Fatalf("round %d: %s: gap %s-%s holds another cell %s", round, addr, lo, hi, v4Addr(c<<8))
				}
			}
			if cells4[top] && (first != top || last != top) {
				t.Fatalf("round %d: %s: own cell, want exactly it, got %s-%s", round, addr, lo, hi)
			}
			if !cells4[top] && (first > 0 && !cells4[first-1] || last < 1<<24-1 && !cells4[last+1]) {
				t.Fatalf("round %d: %s: gap %s-%s is not the widest", round, addr, lo, hi)
			}
		}
		for range 20 {
			top := uint64(0x20010db80000) | uint64(rng.IntN(40))
			addr := v6Addr(top, false)
			lo, hi := snap.PrefixGap(addr)
			if len(cells6) == 0 {
				if lo.IsValid() {
					t.Fatalf("round %d: %s: no /48 cells, got a gap", round, addr)
				}
				continue
			}
			if lo.Compare(addr) > 0 || hi.Compare(addr) < 0 {
				t.Fatalf("round %d: %s not in its gap %s-%s", round, addr, lo, hi)
			}
			for c := range cells6 {
				if a := v6Addr(c, false); c != top && lo.Compare(a) <= 0 && hi.Compare(a) >= 0 {
					t.Fatalf("round %d: %s: gap %s-%s holds another cell %s", round, addr, lo, hi, a)
				}
			}
		}
	}
}

func TestHasNetworkCell(t *testing.T) {
	agg := NewAggregator(Config{MinSamples: 1})
	locate := func(netip.Addr) (netip.Prefix, uint32) { return netip.MustParsePrefix("198.51.96.0/20"), 0 }
	ms := []Measurement{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), PoP: "fra", RTTMS: 10, Weight: 1}}
	if _, err := agg.Ingest(ms, now, locate); err != nil {
		t.Fatal(err)
	}
	snap := agg.Snapshot(now)
	for _, tt := range []struct {
		p    string
		want bool
	}{
		{"198.51.96.0/20", true},
		{"198.51.100.0/20", true}, // host bits: the same network
		{"198.51.96.0/21", false},
		{"198.51.100.0/24", false}, // a prefix cell, not a network cell
	} {
		if got := snap.HasNetworkCell(netip.MustParsePrefix(tt.p)); got != tt.want {
			t.Errorf("HasNetworkCell(%s) = %v, want %v", tt.p, got, tt.want)
		}
	}
	var none *Snapshot
	if none.HasNetworkCell(netip.MustParsePrefix("198.51.96.0/20")) {
		t.Error("nil snapshot has a network cell")
	}
	if lo, _ := none.PrefixGap(netip.MustParseAddr("198.51.100.1")); lo.IsValid() {
		t.Error("nil snapshot has a prefix gap")
	}
}
