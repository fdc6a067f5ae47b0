package zones

import (
	"github.com/popdns/popdns/pops"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// bruteLongest is the reference: the longest prefix of entries for pop that
// contains a and is fresh enough.
func bruteLongest(entries []LatencyEntry, pop string, a netip.Addr, now time.Time, maxAge time.Duration) *LatencyEntry {
	var best *LatencyEntry
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

// TestLatencyTableMatchesBruteForce builds random nested tables and checks,
// for random addresses, that Lookup finds the same entry as a linear scan,
// and that the span it reports is one over which the answer cannot change
// and which ScopeWithin fits a prefix into.
func TestLatencyTableMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1_800_000_000, 0)
	for round := range 30 {
		var entries []LatencyEntry
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
			e := LatencyEntry{Prefix: p, PoP: pop, RTTMS: float64(r.IntN(300))}
			if r.IntN(4) == 0 {
				e.Measured = now.Add(-time.Duration(r.IntN(48)) * time.Hour)
			}
			entries = append(entries, e)
		}
		table := newLatencyTable(entries)
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

func latencyPoPs(t testing.TB) *pops.Inventory {
	return testPoPs(t) // fra, iad, sin, hkg
}

func TestParseLatencyFile(t *testing.T) {
	entries, errs := parseLatencyFile("rtt.csv", []byte(`prefix,pop,rtt_ms,timestamp
# measured from RUM beacons
81.2.69.0/24, fra, 12.5, 2026-11-20T10:00:00Z
81.2.69.0/24,iad,95,1763632800
2001:db8::/32,sin,180
`), latencyPoPs(t))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(entries) != 3 || entries[0].RTTMS != 12.5 || entries[0].Line != 3 || entries[1].Measured.Unix() != 1763632800 ||
		!entries[2].Measured.IsZero() || entries[2].Prefix.String() != "2001:db8::/32" {
		t.Errorf("entries %+v", entries)
	}
	yamlEntries, errs := parseLatencyFile("rtt.latency.yaml", []byte("- { prefix: 81.2.69.0/24, pop: fra, rtt_ms: 12 }\n- { prefix: 81.2.0.0/16, pop: iad, rtt_ms: 90, timestamp: 2026-11-20T10:00:00Z }\n"), latencyPoPs(t))
	if len(errs) > 0 || len(yamlEntries) != 2 || yamlEntries[1].Line != 2 {
		t.Errorf("yaml entries %+v, errors %v", yamlEntries, errs)
	}
	for _, tc := range []struct{ file, data, want string }{
		{"a.csv", "81.2.69.1/24,fra,12\n", "a.csv:1: prefix: 81.2.69.1/24 has host bits set"},
		{"a.csv", "81.2.69.0/24,ams,12\n", `a.csv:1: pop: unknown PoP "ams"`},
		{"a.csv", "81.2.69.0/24,fra,fast\n", `a.csv:1: rtt_ms: "fast"`},
		{"a.csv", "81.2.69.0/24,fra,-1\n", "rtt_ms"},
		{"a.csv", "81.2.69.0/24,fra,12,yesterday\n", "a.csv:1: timestamp"},
		{"a.csv", "prefix,pop,rtt_ms\n81.2.69.0/24,fra\n", "a.csv:2: want prefix,pop,rtt_ms[,timestamp], got 2 fields"},
		{"a.csv", "x\"y,fra,1\n", "a.csv:1: invalid CSV"},
		{"b.latency.yaml", "- { prefix: 81.2.69.0/24, pop: fra, rtt: 12 }\n", "b.latency.yaml:1: rtt: unknown key"},
		{"b.latency.yaml", "prefix: 1\n", "b.latency.yaml:1: a latency table is a list"},
		{"b.latency.yaml", "- { prefix: 81.2.69.0/24, pop: fra, pop: iad, rtt_ms: 12 }\n", "b.latency.yaml:1: pop: repeated key (first at line 1)"},
	} {
		_, errs := parseLatencyFile(tc.file, []byte(tc.data), latencyPoPs(t))
		if errs == nil || !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%s %q: errors %v, want %q", tc.file, tc.data, errs, tc.want)
		}
	}
}

func TestLoadLatency(t *testing.T) {
	zone := zoneFile("a.test.", "192.0.2.1")
	fs1 := fstest.MapFS{
		"a.yaml":              zone,
		"rum.csv":             {Data: []byte("81.2.69.0/24,fra,12\n")},
		"probes.latency.yaml": {Data: []byte("- { prefix: 81.2.0.0/16, pop: iad, rtt_ms: 90 }\n")},
		"notes.txt":           {Data: []byte("not a table")},
	}
	snap, err := Load(fs1, latencyPoPs(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Latency().Len() != 2 || len(snap.Zones()) != 1 {
		t.Fatalf("latency entries %d, zones %d; want 2 and 1 (a latency YAML is not a zone)", snap.Latency().Len(), len(snap.Zones()))
	}
	// A broken table keeps its last good version.
	fs2 := fstest.MapFS{
		"a.yaml":              zone,
		"rum.csv":             {Data: []byte("81.2.69.0/24,fra,oops\n")},
		"probes.latency.yaml": {Data: []byte("- { prefix: 81.2.0.0/16, pop: iad, rtt_ms: 90 }\n")},
	}
	next, err := Load(fs2, latencyPoPs(t), snap)
	if err == nil || !strings.Contains(err.Error(), "rum.csv:1: rtt_ms") {
		t.Fatalf("errors %v", err)
	}
	e, _, _ := next.Latency().Lookup("fra", netip.MustParseAddr("81.2.69.7"), time.Time{}, 0)
	if e == nil || e.RTTMS != 12 || e.File != "rum.csv" {
		t.Errorf("after a broken reload fra entry %v, want rum.csv's 12 ms", e)
	}
	if next.FileError("rum.csv") == nil {
		t.Error("no FileError for the broken table")
	}
	// The same measurement in two files: the first file by name keeps it.
	fs3 := fstest.MapFS{
		"a.yaml":              zone,
		"rum.csv":             {Data: []byte("81.2.69.0/24,fra,12\n")},
		"probes.latency.yaml": {Data: []byte("- { prefix: 81.2.69.0/24, pop: fra, rtt_ms: 1 }\n")},
	}
	third, err := Load(fs3, latencyPoPs(t), next)
	if err == nil || !strings.Contains(err.Error(), "rum.csv:1: prefix: 81.2.69.0/24 to fra is already measured at probes.latency.yaml:1") {
		t.Fatalf("errors %v", err)
	}
	if e, _, _ := third.Latency().Lookup("fra", netip.MustParseAddr("81.2.69.7"), time.Time{}, 0); e == nil || e.RTTMS != 1 {
		t.Errorf("fra entry %v, want probes.latency.yaml's 1 ms", e)
	}
}

// FuzzParseLatencyFile: latency tables come from measurement pipelines, so
// anything may arrive. Property: no panic; every entry is valid; errors
// name the file.
func FuzzParseLatencyFile(f *testing.F) {
	f.Add("rtt.csv", []byte("prefix,pop,rtt_ms,timestamp\n81.2.69.0/24,fra,12.5,2026-11-20T10:00:00Z\n")) // header and a dated entry
	f.Add("rtt.csv", []byte("2001:db8::/32,sin,180\n# comment\n\n81.2.0.0/16,iad,90,1763632800\n"))       // IPv6, comments, Unix time
	f.Add("rtt.csv", []byte("x\"y,fra,1\n"))                                                              // bare quote
	f.Add("rtt.csv", []byte("81.2.69.1/24,fra,12\n81.2.69.0/24\n"))                                       // host bits, short line
	f.Add("t.latency.yaml", []byte("- { prefix: 81.2.69.0/24, pop: fra, rtt_ms: 12 }\n"))                 // YAML form
	f.Add("t.latency.yaml", []byte("- [1, 2]\n- { prefix: ::/0, pop: hkg, rtt_ms: 1e309 }\n"))            // wrong shapes, overflow
	inv := testPoPs(f)
	f.Fuzz(func(t *testing.T, file string, data []byte) {
		if !IsLatencyFile(file) {
			file = "fuzz.csv"
		}
		entries, errs := parseLatencyFile(file, data, inv)
		for _, e := range errs {
			if e.File != file {
				t.Fatalf("error without the file: %v", e)
			}
		}
		for _, e := range entries {
			if !e.Prefix.IsValid() || e.Prefix.Masked() != e.Prefix || inv.Get(e.PoP) == nil || e.RTTMS < 0 {
				t.Fatalf("invalid entry accepted: %+v", e)
			}
		}
		table, _ := mergeLatency([][]LatencyEntry{entries})
		for _, e := range entries {
			if got, _, _ := table.Lookup(e.PoP, e.Prefix.Addr(), time.Time{}, 0); got == nil {
				t.Fatalf("entry %v not found at its own network", e)
			}
		}
	})
}
