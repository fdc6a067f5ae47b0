package udpfast

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/internal/traffic"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
)

// placeTestCounters are traffic counters with two PoPs, fra and iad.
func placeTestCounters(t testing.TB) (c *traffic.Counters, fra, iad *traffic.PoP) {
	t.Helper()
	inv, err := pops.New(pops.PoP{Name: "fra", Point: geo.Point{Lat: 50, Lon: 8}}, pops.PoP{Name: "iad", Point: geo.Point{Lat: 39, Lon: -77}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"t.test.yaml": {Data: []byte(`
origin: t.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.1 }
          iad: { a: 192.0.2.2 }
`)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	c = traffic.New(time.Time{})
	c.SetZones(snap)
	g := snap.Match("t.test.").Geos()[0]
	return c, c.Target(g, 0).PoP, c.Target(g, 1).PoP
}

// TestPlaceCounts: a reader's counts reach the shared counters at the
// flush, every one of them, also past the table's capacity.
func TestPlaceCounts(t *testing.T) {
	c, fra, iad := placeTestCounters(t)
	for _, tc := range []struct {
		name      string
		countries []string
		each      int
	}{
		{"one place", []string{"DE"}, 100},
		{"few places", []string{"DE", "FR", "US", "JP"}, 7},
		{"more places than slots", nil, 3}, // every code AA..ZZ
	} {
		t.Run(tc.name, func(t *testing.T) {
			countries := tc.countries
			if countries == nil {
				for a := 'A'; a <= 'Z'; a++ {
					for b := 'A'; b <= 'Z'; b++ {
						countries = append(countries, string([]rune{a, b}))
					}
				}
			}
			before := c.Report().PoPs
			var pc placeCounts
			for range tc.each {
				for _, code := range countries {
					pl := c.PlaceOf(code, "EU")
					pc.add(fra, pl)
					pc.add(iad, pl)
				}
			}
			pc.flush()
			after := c.Report().PoPs
			for i := range after {
				if got, want := after[i].Total-before[i].Total, uint64(tc.each*len(countries)); got != want {
					t.Errorf("%s: %d answers counted, want %d", after[i].Name, got, want)
				}
			}
			if pc.n != 0 {
				t.Errorf("%d slots in use after the flush", pc.n)
			}
		})
	}
	var pc placeCounts
	pl := c.PlaceOf("DE", "EU")
	if n := testing.AllocsPerRun(100, func() { pc.add(fra, pl); pc.flush() }); n != 0 {
		t.Errorf("%v allocations per count", n)
	}
}


// BenchmarkPlaceCounts is what counting one answer's catchment costs the
// fast path: an add to the reader's table per answer, over 40 places as a
// batch of many clients has, and its flush per batch of 64.
func BenchmarkPlaceCounts(b *testing.B) {
	c, fra, _ := placeTestCounters(b)
	var places []traffic.Place
	for a := 'A'; a < 'A'+40/4; a++ {
		for _, k := range "ABCD" {
			places = append(places, c.PlaceOf(string([]rune{a, k}), "EU"))
		}
	}
	var pc placeCounts
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		pc.add(fra, places[i%len(places)])
		if i++; i%64 == 0 {
			pc.flush()
		}
	}
}
