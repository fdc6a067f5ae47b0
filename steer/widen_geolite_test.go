//go:build slow

package steer

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/miekg/dns"
	"github.com/popdns/popdns/geo"
	"github.com/popdns/popdns/pops"
	"github.com/popdns/popdns/zones"
	"github.com/rs/zerolog"
)

// demoPoPs are the six PoPs of the embedded demo (cmd/popdns/demo).
var demoPoPs = []pops.PoP{
	{Name: "fra", Point: geo.Point{Lat: 50.11, Lon: 8.68}, Country: "DE", Continent: "EU"},
	{Name: "iad", Point: geo.Point{Lat: 38.95, Lon: -77.45}, Country: "US", Continent: "NA"},
	{Name: "sin", Point: geo.Point{Lat: 1.35, Lon: 103.82}, Country: "SG", Continent: "AS"},
	{Name: "gru", Point: geo.Point{Lat: -23.43, Lon: -46.47}, Country: "BR", Continent: "SA"},
	{Name: "syd", Point: geo.Point{Lat: -33.94, Lon: 151.18}, Country: "AU", Continent: "OC"},
	{Name: "nrt", Point: geo.Point{Lat: 35.77, Lon: 140.39}, Country: "JP", Continent: "AS"},
}

const demoZone = `
origin: example.test.
records:
  "@":
    - soa: ns1 hostmaster 1 7200 3600 1209600 60
    - ns: ns1
  ns1:
    - a: 192.0.2.53
  www:
    - geo:
        targets:
          fra: { a: 192.0.2.10 }
          iad: { a: 192.0.2.20 }
          sin: { a: 192.0.2.30 }
          gru: { a: 192.0.2.40 }
          syd: { a: 192.0.2.50 }
          nrt: { a: 192.0.2.60 }
`

// countingLocator counts networks looked up, for the cost of widening.
type countingLocator struct {
	l *geo.Locator
	n int
}

func (c *countingLocator) Locate(a netip.Addr) geo.Location { return c.l.Locate(a) }

func (c *countingLocator) Network(a netip.Addr) (netip.Prefix, geo.RecordID, bool) {
	c.n++
	return c.l.Network(a)
}

// TestWidenGeoLite reports the scopes the demo's www gets for 10,000
// located /24s drawn at random from the real GeoLite2 City, before and
// after widening (with DefaultWidenBudget), what widening costs, and
// checks the widened scopes against the brute force on a sample. It
// skips without the database (testdata/geo/README.md).
func TestWidenGeoLite(t *testing.T) {
	dir := os.Getenv("POPDNS_GEOLITE_DIR")
	if dir == "" {
		dir = "../testdata/geo/real"
	}
	path := filepath.Join(dir, "GeoLite2-City.mmdb")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no GeoLite2 City at %s: %v", path, err)
	}
	db, err := geo.Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	defer loc.Close()
	inv, err := pops.New(demoPoPs...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := zones.Load(fstest.MapFS{"example.test.yaml": {Data: []byte(demoZone)}}, inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := geoOf(t, snap, "www.example.test.")
	env := NewEnv(provisioned(t, Options{}), snap, nil, nil, time.Now)

	rng := rand.New(rand.NewPCG(17, 24))
	seen := map[netip.Prefix]bool{}
	var clients []netip.Addr
	for len(clients) < 10000 {
		a := randomAddr(rng, netip.MustParsePrefix("0.0.0.0/0"))
		p, _ := a.Prefix(24)
		if seen[p] {
			continue
		}
		if l := loc.Locate(p.Addr()); !l.Found || !l.HasPoint {
			continue
		}
		seen[p] = true
		clients = append(clients, p.Addr())
	}
	var cands Candidates
	pct := func(v []int, q float64) int {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[int(q*float64(len(s)-1))]
	}
	cl := &countingLocator{l: loc}
	for _, budget := range []int{16, 64, DefaultWidenBudget, 4096} {
		before, after := make([]int, 0, len(clients)), make([]int, 0, len(clients))
		lookups, maxLookups := 0, 0
		start := time.Now()
		for _, c := range clients {
			d := Rank(g, dns.TypeA, c, loc.Locate(c), &env, &cands)
			cl.n = 0
			s := Widen(g, dns.TypeA, c, &d, &env, cl, budget, &cands)
			lookups += cl.n
			maxLookups = max(maxLookups, cl.n)
			before, after = append(before, d.Scope), append(after, s)
		}
		elapsed := time.Since(start)
		t.Logf("budget %4d: %d located /24s, six PoPs: before p10 /%d median /%d p90 /%d; after p10 /%d median /%d p90 /%d; "+
			"%v per decision (Rank + Widen), %.1f lookups on average, at most %d",
			budget, len(clients), pct(before, .1), pct(before, .5), pct(before, .9), pct(after, .1), pct(after, .5), pct(after, .9),
			elapsed/time.Duration(len(clients)), float64(lookups)/float64(len(clients)), maxLookups)
	}

	for _, s := range []string{"85.214.0.0", "85.212.0.0", "81.2.69.0", "8.8.8.0", "1.1.1.0"} {
		c := netip.MustParseAddr(s)
		d := Rank(g, dns.TypeA, c, loc.Locate(c), &env, &cands)
		cl.n = 0
		w := Widen(g, dns.TypeA, c, &d, &env, cl, DefaultWidenBudget, &cands)
		unbounded := Widen(g, dns.TypeA, c, &d, &env, loc, 1<<20, &cands)
		t.Logf("%s/24: /%d before, /%d after (%d lookups), /%d without a budget, answer %s", s, d.Scope, w, cl.n, unbounded,
			g.Targets[d.Ranked[0]].PoP.Name)
	}

	// The brute force on the real database, for a sample: every network
	// in the widened prefix answers alike.
	for _, c := range clients[:200] {
		d := Rank(g, dns.TypeA, c, loc.Locate(c), &env, &cands)
		s := Widen(g, dns.TypeA, c, &d, &env, loc, DefaultWidenBudget, &cands)
		p, _ := c.Prefix(s)
		for a := p.Addr(); p.Contains(a); {
			l := loc.Locate(a)
			if o := Rank(g, dns.TypeA, a, l, &env, &cands); !sameAnswer(&o, &d) {
				t.Fatalf("%s widened to %s, but %s (%s) answers otherwise", c, p, a, l.Prefix)
			}
			if a = lastOf(l.Prefix).Next(); !a.IsValid() {
				break
			}
		}
	}
}

// BenchmarkWidenGeoLite widens the decisions of 1,000 located /24s drawn
// from the real GeoLite2 City, one per op, with DefaultWidenBudget: what
// a decision cache miss would cost on top of Rank.
func BenchmarkWidenGeoLite(b *testing.B) {
	path := filepath.Join(os.Getenv("POPDNS_GEOLITE_DIR"), "GeoLite2-City.mmdb")
	if os.Getenv("POPDNS_GEOLITE_DIR") == "" {
		path = "../testdata/geo/real/GeoLite2-City.mmdb"
	}
	db, err := geo.Open(path, "")
	if err != nil {
		b.Skipf("no GeoLite2 City: %v", err)
	}
	loc := geo.NewLocator(db, zerolog.Nop())
	defer loc.Close()
	inv, _ := pops.New(demoPoPs...)
	snap, err := zones.Load(fstest.MapFS{"example.test.yaml": {Data: []byte(demoZone)}}, inv, nil)
	if err != nil {
		b.Fatal(err)
	}
	g := geoOf(b, snap, "www.example.test.")
	env := NewEnv(provisioned(b, Options{}), snap, nil, nil, time.Now)
	rng := rand.New(rand.NewPCG(17, 24))
	var clients []netip.Addr
	var ds []Decision
	var cands Candidates
	for len(clients) < 1000 {
		p, _ := randomAddr(rng, netip.MustParsePrefix("0.0.0.0/0")).Prefix(24)
		if l := loc.Locate(p.Addr()); l.Found && l.HasPoint {
			clients = append(clients, p.Addr())
			ds = append(ds, Rank(g, dns.TypeA, p.Addr(), l, &env, &cands))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		Widen(g, dns.TypeA, clients[i], &ds[i], &env, loc, DefaultWidenBudget, &cands)
		i = (i + 1) % len(clients)
	}
}
