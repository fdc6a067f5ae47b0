package latency

import (
	"strings"
	"testing"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
)

// testInventory holds the PoPs the test tables name: fra, iad, sin, hkg.
func testInventory(t testing.TB) *pops.Inventory {
	t.Helper()
	inv, err := pops.New(
		pops.PoP{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}},
		pops.PoP{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}},
		pops.PoP{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}},
		pops.PoP{Name: "hkg", Point: geo.Point{Lat: 22.31, Lon: 113.91}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestParse(t *testing.T) {
	entries, errs := Parse("rtt.csv", []byte(`prefix,pop,rtt_ms,timestamp
# measured from RUM beacons
81.2.69.0/24, fra, 12.5, 2026-11-20T10:00:00Z
81.2.69.0/24,iad,95,1763632800
2001:db8::/32,sin,180
`), testInventory(t))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(entries) != 3 || entries[0].RTTMS != 12.5 || entries[0].Line != 3 || entries[1].Measured.Unix() != 1763632800 ||
		!entries[2].Measured.IsZero() || entries[2].Prefix.String() != "2001:db8::/32" {
		t.Errorf("entries %+v", entries)
	}
	yamlEntries, errs := Parse("rtt.latency.yaml", []byte("- { prefix: 81.2.69.0/24, pop: fra, rtt_ms: 12 }\n- { prefix: 81.2.0.0/16, pop: iad, rtt_ms: 90, timestamp: 2026-11-20T10:00:00Z }\n"), testInventory(t))
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
		_, errs := Parse(tc.file, []byte(tc.data), testInventory(t))
		if errs == nil || !strings.Contains(errs.Error(), tc.want) {
			t.Errorf("%s %q: errors %v, want %q", tc.file, tc.data, errs, tc.want)
		}
	}
}

// FuzzParse: latency tables come from measurement pipelines, so
// anything may arrive. Property: no panic; every entry is valid; errors
// name the file.
func FuzzParse(f *testing.F) {
	f.Add("rtt.csv", []byte("prefix,pop,rtt_ms,timestamp\n81.2.69.0/24,fra,12.5,2026-11-20T10:00:00Z\n")) // header and a dated entry
	f.Add("rtt.csv", []byte("2001:db8::/32,sin,180\n# comment\n\n81.2.0.0/16,iad,90,1763632800\n"))       // IPv6, comments, Unix time
	f.Add("rtt.csv", []byte("x\"y,fra,1\n"))                                                              // bare quote
	f.Add("rtt.csv", []byte("81.2.69.1/24,fra,12\n81.2.69.0/24\n"))                                       // host bits, short line
	f.Add("t.latency.yaml", []byte("- { prefix: 81.2.69.0/24, pop: fra, rtt_ms: 12 }\n"))                 // YAML form
	f.Add("t.latency.yaml", []byte("- [1, 2]\n- { prefix: ::/0, pop: hkg, rtt_ms: 1e309 }\n"))            // wrong shapes, overflow
	inv := testInventory(f)
	f.Fuzz(func(t *testing.T, file string, data []byte) {
		if !IsFile(file) {
			file = "fuzz.csv"
		}
		entries, errs := Parse(file, data, inv)
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
		table, _ := Merge([][]Entry{entries})
		for _, e := range entries {
			if got, _, _ := table.Lookup(e.PoP, e.Prefix.Addr(), time.Time{}, 0); got == nil {
				t.Fatalf("entry %v not found at its own network", e)
			}
		}
	})
}
