package latency

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// bruteLongest is the reference: the longest prefix of entries for pop that
// contains a and is fresh enough.
func bruteLongest(entries []Entry, pop string, a netip.Addr, now time.Time, maxAge time.Duration) *Entry {
	var best *Entry
	for i := range entries {
		e := &entries[i]
		if e.PoP != pop || !e.Prefix.Contains(a) {
			continue
		}
		if maxAge > 0 && !e.Measured.IsZero() && now.Sub(e.Measured) > maxAge {
			continue
		}
		if best == nil || e.Prefix.Bits() > best.Prefix.Bits() {
			best = e
		}
	}
	return best
}

func randomAddr(r *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		// Concentrate on a few /8s so that prefixes nest and collide.
		return netip.AddrFrom4([4]byte{byte(10 + r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
	}
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	b[4], b[5] = byte(r.IntN(3)), byte(r.IntN(256))
	return netip.AddrFrom16(b)
}

// TestTableMatchesBruteForce builds random nested tables and checks,
// for random addresses, that Lookup finds the same entry as a linear scan,
// and that the span it reports is one over which the answer cannot change
// and which ScopeWithin fits a prefix into.
func TestTableMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1_800_000_000, 0)
	for round := range 30 {
		var entries []Entry
		seen := map[string]bool{}
		for range 5 + r.IntN(60) {
			v4 := r.IntN(3) > 0
			a := randomAddr(r, v4)
			bits := 8 + r.IntN(25)
			if !v4 {
				bits = 16 + r.IntN(40)
			}
			p := netip.PrefixFrom(a, bits).Masked()
			pop := []string{"fra", "iad"}[r.IntN(2)]
			if seen[p.String()+pop] {
				continue
			}
			seen[p.String()+pop] = true
			e := Entry{Prefix: p, PoP: pop, RTTMS: float64(r.IntN(300))}
			if r.IntN(4) == 0 {
				e.Measured = now.Add(-time.Duration(r.IntN(48)) * time.Hour)
			}
			entries = append(entries, e)
		}
		table := newTable(entries)
		for range 300 {
			a := randomAddr(r, r.IntN(3) > 0)
			for _, pop := range []string{"fra", "iad", "sin"} {
				maxAge := time.Duration(0)
				if r.IntN(2) == 0 {
					maxAge = 24 * time.Hour
				}
				got, lo, hi := table.Lookup(pop, a, now, maxAge)
				want := bruteLongest(entries, pop, a, now, maxAge)
				if (got == nil) != (want == nil) || got != nil && (got.Prefix != want.Prefix || got.RTTMS != want.RTTMS) {
					t.Fatalf("round %d: Lookup(%s, %s) = %v, want %v", round, pop, a, got, want)
				}
				if pop == "sin" {
					continue // no entries: no span
				}
				if lo.Compare(a) > 0 || hi.Compare(a) < 0 {
					t.Fatalf("round %d: span [%s, %s] does not contain %s", round, lo, hi, a)
				}
				for _, x := range []netip.Addr{lo, hi} {
					if w := bruteLongest(entries, pop, x, now, 0); (w == nil) != (bruteLongest(entries, pop, a, now, 0) == nil) ||
						w != nil && w.Prefix != bruteLongest(entries, pop, a, now, 0).Prefix {
						t.Fatalf("round %d: span edge %s answers differently from %s", round, x, a)
					}
				}
				bits := ScopeWithin(a, 0, lo, hi)
				p, _ := a.Prefix(bits)
				if p.Addr().Compare(lo) < 0 || lastAddr(p).Compare(hi) > 0 {
					t.Fatalf("round %d: scope %s leaves the span [%s, %s]", round, p, lo, hi)
				}
				if bits > 0 {
					wider, _ := a.Prefix(bits - 1)
					if wider.Addr().Compare(lo) >= 0 && lastAddr(wider).Compare(hi) <= 0 {
						t.Fatalf("round %d: scope %s is narrower than needed (%s fits)", round, p, wider)
					}
				}
			}
		}
	}
}
